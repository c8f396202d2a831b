"""An iteration's candidate pool: the data-set sources' share, the generator's motifs and, once a potential
exists, the frames γ-driven MD with it found extrapolative. The campaign's generate and evaluate stages
run this (as a Dask task), and so does `alloop generate` to preview them.

Each (seed, iteration, stream) has its own random streams, so a resumed run regenerates exactly the
pool an interrupted one had.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.io.jsonio import decode, encode

from alloop.explore.settings import ExploreSettings
from alloop.generate import GeneratorSettings, generate_candidates, source_candidates, starting_structures
from alloop.structures import atoms_from_json, atoms_to_json
from alloop.train.settings import FitSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplorationCounts:
    """What one iteration's γ-driven MD found: frames in the trust window (candidates), frames above it (counted,
    not labelled), trajectories stopped at γ_halt of those run, at the stage's temperature (K) and steps."""

    window: int
    above: int
    halted: int
    trajectories: int
    temperature: float
    steps: int


@dataclass(frozen=True)
class CandidatePool:
    """An iteration's candidates, with what the γ-driven MD that made some of them found (None where no MD ran)
    and that MD's evenly spaced frames' max γ, whatever their γ (the convergence sample; empty without MD)."""

    candidates: list[Atoms]
    exploration: ExplorationCounts | None = None
    gamma_sample: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def motifs(self) -> list[Atoms]:
        """The candidates that are not MD frames: the generator's motifs and the sources' entries."""
        return [a for a in self.candidates if a.info.get("source") != "md"]

    def to_json(self) -> str:
        """The pool as stored in the database when drawn, so a resume (on any machine) labels the same candidates."""
        return json.dumps({"candidates": [[atoms_to_json(a), encode(a.info)] for a in self.candidates],
                           "exploration": None if self.exploration is None else asdict(self.exploration),
                           "gamma_sample": [None if not np.isfinite(g) else float(g) for g in self.gamma_sample]})

    @classmethod
    def from_json(cls, text: str) -> CandidatePool:
        d = json.loads(text)
        return cls([_with_info(atoms_from_json(a), decode(info)) for a, info in d["candidates"]],
                   None if d["exploration"] is None else ExplorationCounts(**d["exploration"]),
                   np.array([np.inf if g is None else g for g in d["gamma_sample"]], dtype=float))


def _with_info(atoms: Atoms, info: dict) -> Atoms:
    atoms.info.update(info)
    return atoms


def _rng(seed: int, iteration: int, stream: int, offset: int) -> np.random.Generator:
    return np.random.default_rng([seed, iteration, stream + offset])


def exploration_starts(elements: Sequence[str], generate: GeneratorSettings, explore_settings: ExploreSettings, seed: int,
                       iteration: int, stream: int) -> list[Atoms]:
    """The cells `iteration`'s γ-driven MD starts from, as built: perfect bulk, a vacancy, an interstitial, the
    slabs (generate.starting_structures), of the stage's start_kinds. The campaign relaxes the defect ones with the
    label uMLIP before handing them to `candidate_pool`: the bcc W interstitial as built (a <111> dumbbell 1.79 Å
    apart, 2.20 Å relaxed) had γ = 944 in its first frame, and its trajectory stopped there in every iteration."""
    stage = explore_settings.stage_of(iteration)
    starts = starting_structures(elements, generate, _rng(seed, iteration, stream, 10))
    if stage.start_kinds is not None:
        starts = [a for a in starts if a.info["kind"] in stage.start_kinds]
    return starts


def candidate_pool(
    elements: Sequence[str],
    generate: GeneratorSettings,
    explore_settings: ExploreSettings | None,
    potential: tuple[str, str] | None,
    seed: int,
    iteration: int,
    stream: int,
    n_max: int | None = None,
    sources: bool = False,
    fit: FitSettings | None = None,
    explore: bool = True,
    starts: Sequence[Atoms] | None = None,
) -> CandidatePool:
    """Candidates of `iteration`; `potential` is (potential.yaml, active set .asi) of the latest fit, if any;
    `sources`: include the data-set sources' entries for this iteration; `n_max`: a seeded draw of at most
    that many; `fit`: the campaign's fit settings (the untrained basis the genome's MaxVol decoration scores
    against before the first fit); `explore`: False leaves out the MD frames (a preview); `starts`: the MD's
    starting cells (default: `exploration_starts` as built)."""

    def rng(offset: int) -> np.random.Generator:
        return _rng(seed, iteration, stream, offset)

    pot, asi = potential if potential is not None else (None, None)
    exploration, sample = None, np.zeros(0)
    pool = generate_candidates(elements, generate, rng(0), fit=fit, potential=pot, active_set=asi)
    if sources:
        pool = source_candidates(generate.sources, iteration) + pool
    if explore and explore_settings is not None and potential is not None:
        from alloop.explore import explore

        stage = explore_settings.stage_of(iteration)
        if starts is None:
            starts = exploration_starts(elements, generate, explore_settings, seed, iteration, stream)
        starts = list(starts)
        log.info("iteration %d explores at %g K (%s%s), %d steps from %d starts", iteration, stage.temperature, stage.ensemble,
                 f", {stage.pressure:g} GPa" if stage.ensemble == "npt" else "", stage.steps, len(starts))
        res = explore(potential[0], potential[1], starts, stage, rng(20))
        log.info("exploration from %d starts: %d candidates in the trust window (γ_lo %g < γ ≤ γ_hi %g), %d frames above it "
                 "counted and not labelled, %d of %d trajectories stopped at γ_halt %g", len(starts), len(res.candidates),
                 stage.gamma_lo, stage.gamma_hi, res.n_above, res.n_halted, len(res.trajectories), stage.gamma_halt)
        for frame in res.candidates:  # what the database and `alloop status` count them as
            frame.info["kind"] = f"md:{frame.info.get('start_kind', 'unknown')}"
        pool = list(res.candidates) + pool
        exploration = ExplorationCounts(len(res.candidates), res.n_above, res.n_halted, len(res.trajectories),
                                        stage.temperature, stage.steps)
        sample = res.gamma_sample
    if n_max is not None and len(pool) > n_max:
        keep = rng(30).choice(len(pool), size=n_max, replace=False)
        pool = [pool[i] for i in sorted(keep)]
    return CandidatePool(pool, exploration, sample)
