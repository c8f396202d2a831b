"""Candidate structures without a potential: random motifs for the first training set and the
starting cells for γ-driven MD exploration.

Every structure is fully periodic, has at most `max_atoms` atoms, passes
`alloop.structures.validate_atoms(atoms, settings.min_distance)` and carries
`info["kind"]` (one of the `KindCounts` fields, or bulk/vacancy/interstitial/surface for starts)
and `info["generator"]` (the JSON-serialisable parameters that made it). The output depends only on
the arguments, so a seeded `rng` reproduces it exactly.

Multi-element systems get the same motifs with species drawn at random per site
(`settings.decoration == "random"`); dimers enumerate every species pair instead. A D-optimal
(MaxVol) decoration would be another `decoration` value handled in `lattice.decorate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms

from alloop.errors import ConfigError
from alloop.generate import motifs
from alloop.generate.lattice import decorate, element_pairs, insert_interstitial, lattice_constant, perfect_bulk
from alloop.generate.settings import GeneratorSettings, KindCounts
from alloop.generate.sources import SourceSettings, source_candidates, source_entries
from alloop.structures import validate_atoms

__all__ = [
    "GeneratorSettings",
    "KindCounts",
    "SourceSettings",
    "generate_candidates",
    "source_candidates",
    "source_entries",
    "starting_structures",
]

# The lowest-energy self-interstitial of each lattice (W, Mo: <111>; Cu, Al: <100> dumbbell)
_GROUND_STATE_INTERSTITIAL = {"bcc": "dumbbell_111", "fcc": "dumbbell_100"}


def _check_elements(elements: Sequence[str]) -> list[str]:
    els = list(elements)
    if not els or len(set(els)) != len(els):
        raise ConfigError([f"elements must be a non-empty list without repeats, got {els}"], "generate")
    return els


def _finish(atoms: Atoms, kind: str, params: dict, settings: GeneratorSettings) -> Atoms:
    atoms.info["kind"] = kind
    atoms.info["generator"] = params
    validate_atoms(atoms, settings.min_distance)
    return atoms


def generate_candidates(elements: Sequence[str], settings: GeneratorSettings, rng: np.random.Generator) -> list[Atoms]:
    """`settings.counts` structures of each kind, in the order of the `KindCounts` fields."""
    els = _check_elements(elements)
    s = settings
    a = lattice_constant(els, s.lattice, s.lattice_constant)
    builders: dict[str, Callable[[int], tuple[Atoms, dict]]] = {
        "strained_bulk": lambda i: motifs.strained_bulk(s, a, rng),
        "rattled_bulk": lambda i: motifs.rattled_bulk(s, a, rng),
        "vacancy": lambda i: motifs.vacancy(s, a, rng),
        "interstitial": lambda i: motifs.interstitial(s, a, rng),
        "surface": lambda i: motifs.surface(s, a, rng, i),
        "compressed": lambda i: motifs.compressed(s, a, rng),
    }
    out: list[Atoms] = []
    for kind, count in s.counts.model_dump().items():
        if kind == "dimer":
            out.extend(_dimers(els, s, count))
            continue
        for i in range(count):
            atoms, params = builders[kind](i)
            atoms = decorate(atoms, els, rng, s.decoration)
            out.append(_finish(atoms, kind, params | {"decoration": s.decoration}, s))
    return out


def _dimers(elements: list[str], s: GeneratorSettings, count: int) -> list[Atoms]:
    """An evenly spaced distance grid; species pairs take turns along it so each pair spans the range."""
    pairs = element_pairs(elements)
    out = []
    for i, d in enumerate(np.linspace(*s.dimer_distances, count)):
        atoms, params = motifs.dimer(s, d)
        atoms.symbols = list(pairs[i % len(pairs)])
        out.append(_finish(atoms, "dimer", params | {"pair": list(pairs[i % len(pairs)])}, s))
    return out


def starting_structures(elements: Sequence[str], settings: GeneratorSettings, rng: np.random.Generator) -> list[Atoms]:
    """Unperturbed cells for MD exploration: perfect bulk, a vacancy, the ground-state
    self-interstitial and one slab per low-index facet (MD supplies the disorder)."""
    els = _check_elements(elements)
    s = settings
    a = lattice_constant(els, s.lattice, s.lattice_constant)
    bulk, reps = perfect_bulk(s.lattice, a, s.max_atoms, motifs.PLACEHOLDER)
    base = {"lattice": s.lattice, "a": a, "supercell": list(reps)}
    vac = bulk.copy()
    del vac[0]
    inter_bulk, inter_reps = perfect_bulk(s.lattice, a, s.max_atoms - 1, motifs.PLACEHOLDER)
    kind = _GROUND_STATE_INTERSTITIAL[s.lattice]
    inter = insert_interstitial(inter_bulk, s.lattice, a, kind)
    starts = [
        ("bulk", bulk, base),
        ("vacancy", vac, base | {"removed_site": 0}),
        ("interstitial", inter, base | {"supercell": list(inter_reps), "interstitial": kind}),
    ]
    for facet in sorted(motifs.SURFACES[s.lattice]):
        slab, params = motifs.slab(s, a, facet)
        starts.append(("surface", slab, params))
    return [
        _finish(decorate(atoms, els, rng, s.decoration), kind, params | {"decoration": s.decoration}, s)
        for kind, atoms, params in starts
    ]
