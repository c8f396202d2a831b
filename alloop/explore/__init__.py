"""γ-driven exploration: short MD with the current ACE potential, keeping the frames whose
extrapolation grade γ (pacemaker's MaxVol active set) says the potential is extrapolating.

The candidate/halt rule is documented in `alloop.explore.gamma`. Candidates keep the start cell's
periodicity and carry info["gamma_max"], info["gamma_band"], info["source"] = "md",
info["start_kind"], info["start_index"], info["md_step"], and arrays["gamma"] (per-atom γ).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from alloop.errors import ConfigError, MissingFileError
from alloop.explore.gamma import ExploreResult, TrajectoryRecorder, TrajectorySummary, collect
from alloop.explore.settings import ExploreSettings
from alloop.structures import validate_atoms

__all__ = ["ExploreResult", "ExploreSettings", "TrajectorySummary", "explore", "potential_elements"]


def potential_elements(potential_yaml: Path | str) -> list[str]:
    """Elements of a pacemaker B-basis potential (.yaml)."""
    from pyace import ACEBBasisSet

    return list(ACEBBasisSet(str(potential_yaml)).elements_name)


def _check_inputs(potential_yaml: Path, active_set_asi: Path, starts: Sequence[Atoms], s: ExploreSettings) -> None:
    for path, what in ((potential_yaml, "ACE potential (.yaml)"), (active_set_asi, "active set (.asi)")):
        if not path.is_file():
            raise MissingFileError(path, what, "fit the potential and build its active set first (pace_activeset)")
    known = set(potential_elements(potential_yaml))
    problems = []
    for i, atoms in enumerate(starts):
        validate_atoms(atoms, s.min_distance)
        missing = set(atoms.get_chemical_symbols()) - known
        if missing:
            problems.append(f"start {i} contains {sorted(missing)}, which the potential {potential_yaml.name} lacks")
        if not atoms.pbc.all() and (s.ensemble == "npt" or s.strain_rate):
            problems.append(f"start {i} is not periodic: NPT and strain need a periodic cell")
    if problems:
        raise ConfigError(problems, source="explore")


def explore(
    potential_yaml: Path | str,
    active_set_asi: Path | str,
    starts: Sequence[Atoms],
    settings: ExploreSettings,
    rng: np.random.Generator | None = None,
    workdir: Path | str | None = None,
) -> ExploreResult:
    """Run one trajectory per start structure and return the extrapolative frames.

    `rng` defaults to one seeded with `settings.seed`; each trajectory draws from its own child
    generator, so results do not depend on how far earlier trajectories got. `workdir` keeps the
    LAMMPS run directories (default: a temporary directory, removed afterwards); the ASE engine
    writes nothing.
    """
    s = settings
    potential_yaml, active_set_asi = Path(potential_yaml), Path(active_set_asi)
    _check_inputs(potential_yaml, active_set_asi, starts, s)
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    child_rngs = rng.spawn(len(starts))
    recorders = [TrajectoryRecorder(i, start, s) for i, start in enumerate(starts)]
    if s.engine == "ase":
        from alloop.explore import ase_engine

        calc = ase_engine.load_calculator(potential_yaml, active_set_asi)
        for start, child, rec in zip(starts, child_rngs, recorders, strict=True):
            ase_engine.run_trajectory(calc, start, s, child, rec)
    else:
        from alloop.explore import lammps_engine

        with tempfile.TemporaryDirectory(prefix="alloop-explore-") as tmp:
            root = Path(workdir) if workdir is not None else Path(tmp)
            for start, child, rec in zip(starts, child_rngs, recorders, strict=True):
                seed = int(child.integers(1, 2**31 - 2))  # LAMMPS seeds: positive 32-bit
                lammps_engine.run_trajectory(
                    potential_yaml, active_set_asi, start, s, seed, root / f"traj_{rec.index:04d}", rec
                )
    return collect(recorders, s.max_candidates)
