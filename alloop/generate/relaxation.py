"""Generated defect motifs relaxed by the label uMLIP before they are labelled, then perturbed, as DP-GEN's init
step does. An unrelaxed insertion is not a defect anyone simulates: in bcc W the crowdion site sits 1.37 Å and
the octahedral site 1.59 Å from a neighbour, and such a cell reached DFT at U = 620 eV/Å and +13 eV. A capped
FIRE is cheap next to the DFT or the fit the cell goes on to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from alloop.errors import UnphysicalStructureError
from alloop.schema import unit
from alloop.structures import config_hash, validate_atoms

# the kinds whose geometry is the point are left as built: strained and rattled bulk, short-range cells
# (dimers, trimers, compressed pairs), stacking faults (a relaxation slides them back) and cracks
RELAXED_KINDS = ("vacancy", "interstitial", "surface", "grain_boundary", "dislocation", "vacancy_cluster", "interstitial_cluster")


class RelaxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="relax the selected motifs of `kinds` with the label uMLIP before labelling")
    kinds: list[str] = Field(default_factory=lambda: list(RELAXED_KINDS), description="motif kinds that are relaxed")
    max_steps: int = Field(40, ge=1, description="FIRE steps at most (a capped relaxation: a cell need not converge)")
    fmax: float = Field(0.05, gt=0, json_schema_extra=unit("eV/Å"), description="stop when every force is below this")
    jitter_stdev: float = Field(0.03, ge=0, le=0.2, json_schema_extra=unit("Å"),
                                description="Gaussian displacement added after the relaxation (DP-GEN's perturbation)")


def relax_motifs(structures: Sequence[Atoms], calculator: Any, settings: RelaxSettings, min_distance: float,
                 by: str) -> list[Atoms | str]:
    """Each structure relaxed at fixed cell by `calculator` and perturbed, with the relaxation recorded in
    info["generator"]["relaxed"]; or the reason it was rejected (the calculator failed, or atoms closer than
    `min_distance` after relaxing). The perturbation is seeded by the unrelaxed cell, so a rerun is the same."""
    from ase.optimize import FIRE

    out: list[Atoms | str] = []
    for atoms in structures:
        work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = calculator
        try:
            e0 = float(work.get_potential_energy())
            opt = FIRE(work, maxstep=0.1, logfile=None)
            converged = bool(opt.run(fmax=settings.fmax, steps=settings.max_steps))
            e1 = float(work.get_potential_energy())
            fmax = float(np.sqrt((work.get_forces() ** 2).sum(axis=1)).max())
        except Exception as exc:  # the uMLIP on a geometry it cannot handle: the cell is not a candidate
            out.append(f"the relaxation by {by} failed: {type(exc).__name__}: {exc}")
            continue
        if not (np.isfinite(e1) and np.isfinite(fmax)):
            out.append(f"the relaxation by {by} gave a non-finite energy or force")
            continue
        rng = np.random.default_rng(int(config_hash(atoms)[:12], 16))
        relaxed = Atoms(numbers=work.numbers, positions=work.positions + rng.normal(0.0, settings.jitter_stdev, (len(work), 3)),
                        cell=work.cell, pbc=work.pbc, info={k: v for k, v in atoms.info.items() if k != "generator"})
        relaxed.info["generator"] = {**atoms.info.get("generator", {}), "relaxed": {
            "by": by, "steps": int(opt.nsteps), "converged": converged, "fmax": round(fmax, 4),
            "energy_change_eV": round(e1 - e0, 4), "jitter_stdev": settings.jitter_stdev}}
        try:
            validate_atoms(relaxed, min_distance)
        except UnphysicalStructureError as exc:
            out.append(f"unphysical after the relaxation by {by}: {exc}")
            continue
        out.append(relaxed)
    return out
