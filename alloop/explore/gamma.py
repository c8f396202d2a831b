"""The γ rule: which MD frames become candidates and when a trajectory stops.

For every evaluated frame with g = max over atoms of the extrapolation grade γ:

- g <= gamma_lo: interpolation, nothing kept.
- gamma_lo < g <= gamma_hi: the trust window. The frame is a candidate, with
  info["gamma_band"] = "extrapolation": the potential extrapolates, but mildly enough that the MD
  that produced the frame is still physical.
- gamma_hi < g <= gamma_halt: the potential is no longer trusted ("high"). The run goes on, as in
  pacemaker's LAMMPS recipe, but the frame is only counted (`n_above`), never labelled: its
  geometry is the untrusted potential's, and in a campaign such frames held atoms 1.2 Å apart.
- g > gamma_halt: the trajectory stops at this frame (LAMMPS `fix halt`), which is counted above
  the window too. With the ASE engine γ is tested every step.

Frames are evaluated every `sample_interval` steps (step 0 included with the ASE engine) plus the
halting frame; the halt test runs every step with the ASE engine (γ comes with every force call)
and every `sample_interval` steps with LAMMPS. Window frames whose atoms come closer than
`min_distance` are counted as rejected instead of returned.
When there are more than `max_candidates`, trajectories share the cap in turns, and each gives
frames spread evenly over its run rather than its highest-γ ones: which of them is worth labelling
is decided after, by MaxVol against the active set.
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
    n_candidates: int  # window frames, before the max_candidates cap
    n_rejected: int  # window frames dropped for atoms closer than min_distance
    n_above: int = 0  # frames above gamma_hi (the halting one included): counted, not labelled


@dataclass
class ExploreResult:
    candidates: list[Atoms]
    gamma_max_all: np.ndarray  # max γ of every evaluated frame, trajectory after trajectory
    trajectories: list[TrajectorySummary]
    # max γ of the frames every sample_interval steps, whatever their γ, a halted trajectory's frames never reached
    # counted as +inf: the sample the convergence test grades (alloop.explore.convergence)
    gamma_sample: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_above(self) -> int:
        return sum(t.n_above for t in self.trajectories)

    @property
    def n_halted(self) -> int:
        return sum(t.halted for t in self.trajectories)


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
    n_above: int = 0
    sampled: list[float] = field(default_factory=list)  # max γ at the steps divisible by sample_interval

    def sample(self) -> list[float]:
        """The evenly spaced frames' max γ; where γ_halt stopped the run, its unreached frames count as +inf."""
        if not self.halted:
            return list(self.sampled)
        expected = self.settings.steps // self.settings.sample_interval + 1
        return [*self.sampled, *[float("inf")] * max(expected - len(self.sampled), 1)]

    @property
    def start_kind(self) -> str:
        return str(self.start.info.get("kind", "unknown"))

    def record(self, step: int, gamma_max: float, frame: Atoms | None = None, gamma: np.ndarray | None = None) -> bool:
        """Log one evaluated frame. `frame` is None where the engine kept no coordinates (LAMMPS dumps
        only frames above gamma_lo). Returns True when the trajectory must stop."""
        self.steps_run = step
        self.gammas.append(float(gamma_max))
        if step % self.settings.sample_interval == 0:
            self.sampled.append(float(gamma_max))
        band = classify(gamma_max, self.settings)
        if band is Band.EXTRAPOLATION and frame is not None:
            self._keep(step, float(gamma_max), band, frame, gamma)
        elif band in (Band.HIGH, Band.HALT):
            self.n_above += 1
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
            n_above=self.n_above,
        )


def cap_candidates(per_trajectory: list[list[Atoms]], max_candidates: int) -> list[Atoms]:
    """At most `max_candidates` frames: the trajectories take turns for a share of the cap, and each gives its
    share spread evenly over its frames in step order (its first and last included)."""
    quota = [0] * len(per_trajectory)
    while sum(quota) < max_candidates and any(q < len(c) for q, c in zip(quota, per_trajectory)):
        for i, c in enumerate(per_trajectory):
            if quota[i] < len(c) and sum(quota) < max_candidates:
                quota[i] += 1
    out: list[Atoms] = []
    for q, frames in zip(quota, per_trajectory):
        if q:
            ordered = sorted(frames, key=lambda a: a.info.get("md_step", 0))
            out += [ordered[int(i)] for i in np.unique(np.linspace(0, len(ordered) - 1, q).round().astype(int))]
    return out


def collect(recorders: list[TrajectoryRecorder], max_candidates: int) -> ExploreResult:
    return ExploreResult(
        candidates=cap_candidates([r.candidates for r in recorders], max_candidates),
        gamma_max_all=np.array([g for r in recorders for g in r.gammas], dtype=float),
        trajectories=[r.summary() for r in recorders],
        gamma_sample=np.array([g for r in recorders for g in r.sample()], dtype=float),
    )
