"""The γ rule: which MD frames become candidates and when a trajectory stops.

For every evaluated frame with g = max over atoms of the extrapolation grade γ:

- g <= gamma_lo: interpolation, nothing kept.
- gamma_lo < g <= gamma_hi: candidate with info["gamma_band"] = "extrapolation".
- gamma_hi < g <= gamma_halt: candidate with info["gamma_band"] = "high"; the run goes on, as in
  pacemaker's LAMMPS recipe, which dumps frames above gamma_hi and halts only above gamma_halt.
- g > gamma_halt: the trajectory stops at this frame (LAMMPS `fix halt`). The frame is still a
  candidate, with info["gamma_band"] = "halt": it is where the potential breaks down, and a start
  structure that is already past gamma_halt (a surface for a bulk-only potential) is only
  returned this way. With the ASE engine γ is tested every step, so this frame is the first one
  past the threshold, not a configuration the wild forces have already wrecked.

Frames are evaluated every `sample_interval` steps (step 0 included with the ASE engine) plus the
halting frame; the halt test runs every step with the ASE engine (γ comes with every force call)
and every `sample_interval` steps with LAMMPS. Extrapolative frames whose atoms come closer than
`min_distance` are counted as rejected instead of returned.
When there are more than `max_candidates`, trajectories take turns giving up their highest-γ
frame, so a single runaway trajectory cannot crowd out the others.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from alloop.errors import UnphysicalStructureError
from alloop.explore.settings import ExploreSettings
from alloop.structures import validate_atoms


class Band(enum.Enum):
    INTERPOLATION = "interpolation"
    EXTRAPOLATION = "extrapolation"
    HIGH = "high"
    HALT = "halt"


def classify(gamma_max: float, s: ExploreSettings) -> Band:
    if gamma_max > s.gamma_halt:
        return Band.HALT
    if gamma_max > s.gamma_hi:
        return Band.HIGH
    if gamma_max > s.gamma_lo:
        return Band.EXTRAPOLATION
    return Band.INTERPOLATION


@dataclass
class TrajectorySummary:
    index: int  # position of the start structure in `starts`
    start_kind: str
    steps_run: int
    halted: bool
    reason: str  # "completed" or "gamma_halt"
    gamma_max: float  # over the frames evaluated
    n_candidates: int  # before the max_candidates cap
    n_rejected: int  # extrapolative frames dropped for atoms closer than min_distance


@dataclass
class ExploreResult:
    candidates: list[Atoms]
    gamma_max_all: np.ndarray  # max γ of every evaluated frame, trajectory after trajectory
    trajectories: list[TrajectorySummary]


@dataclass
class TrajectoryRecorder:
    """Applies the rule to the frames of one trajectory, in step order."""

    index: int
    start: Atoms
    settings: ExploreSettings
    gammas: list[float] = field(default_factory=list)
    candidates: list[Atoms] = field(default_factory=list)
    steps_run: int = 0
    halted: bool = False
    n_rejected: int = 0

    @property
    def start_kind(self) -> str:
        return str(self.start.info.get("kind", "unknown"))

    def record(self, step: int, gamma_max: float, frame: Atoms | None = None, gamma: np.ndarray | None = None) -> bool:
        """Log one evaluated frame. `frame` is None where the engine kept no coordinates (LAMMPS dumps
        only frames above gamma_lo). Returns True when the trajectory must stop."""
        self.steps_run = step
        self.gammas.append(float(gamma_max))
        band = classify(gamma_max, self.settings)
        if band is not Band.INTERPOLATION and frame is not None:
            self._keep(step, float(gamma_max), band, frame, gamma)
        self.halted = band is Band.HALT
        return self.halted

    def _keep(self, step: int, gamma_max: float, band: Band, frame: Atoms, gamma: np.ndarray | None) -> None:
        cand = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=self.start.pbc)
        if self.start.pbc.all():
            cand.wrap()
        try:
            validate_atoms(cand, self.settings.min_distance)
        except UnphysicalStructureError:
            self.n_rejected += 1
            return
        if gamma is not None:
            cand.arrays["gamma"] = np.asarray(gamma, dtype=float).copy()
        cand.info.update(
            gamma_max=gamma_max,
            gamma_band=band.value,
            source="md",
            start_kind=self.start_kind,
            start_index=self.index,
            md_step=step,
            temperature=self.settings.temperature,
            ensemble=self.settings.ensemble,
        )
        self.candidates.append(cand)

    def summary(self) -> TrajectorySummary:
        return TrajectorySummary(
            index=self.index,
            start_kind=self.start_kind,
            steps_run=self.steps_run,
            halted=self.halted,
            reason="gamma_halt" if self.halted else "completed",
            gamma_max=max(self.gammas, default=float("nan")),
            n_candidates=len(self.candidates),
            n_rejected=self.n_rejected,
        )


def cap_candidates(per_trajectory: list[list[Atoms]], max_candidates: int) -> list[Atoms]:
    """Round-robin over trajectories, each giving its frames in order of decreasing γ."""
    queues = [sorted(c, key=lambda a: -a.info["gamma_max"]) for c in per_trajectory]
    out: list[Atoms] = []
    depth = 0
    while len(out) < max_candidates and any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[:max_candidates]


def collect(recorders: list[TrajectoryRecorder], max_candidates: int) -> ExploreResult:
    return ExploreResult(
        candidates=cap_candidates([r.candidates for r in recorders], max_candidates),
        gamma_max_all=np.array([g for r in recorders for g in r.gammas], dtype=float),
        trajectories=[r.summary() for r in recorders],
    )
