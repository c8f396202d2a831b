"""The defect genome of a campaign: every topology of the chosen families, decorated across the composition
space (alloop.generate.genome.decorate) and checked like any other candidate."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from alloop.generate.genome import clusters, cracks, dislocations, grain_boundaries, stacking_faults, surfaces
from alloop.generate.genome.cell import Crystal, Topology
from alloop.generate.genome.decorate import Selector, choose, decorations, draw_compositions
from alloop.generate.genome.dimers_trimers import dimers, trimers
from alloop.generate.genome.elastic import elastic_constants
from alloop.generate.lattice import lattice_constant

if TYPE_CHECKING:
    from alloop.generate.settings import GeneratorSettings
    from alloop.train.settings import FitSettings

log = logging.getLogger(__name__)


def crystal_for(elements: Sequence[str], settings: GeneratorSettings) -> Crystal:
    g = settings.genome
    assert g is not None
    els = list(elements)
    needs_elastic = {"dislocation", "crack"} & set(g.families)
    elastic, source = elastic_constants(els, g.elastic_constants) if needs_elastic else (None, "")
    return Crystal(
        lattice=settings.lattice, a=lattice_constant(els, settings.lattice, settings.lattice_constant),
        cutoff=settings.cutoff, vacuum=settings.vacuum, max_atoms=g.max_atoms, elastic=elastic,  # type: ignore[arg-type]
        elastic_source=source, genome=g,
    )


def topologies(elements: Sequence[str], settings: GeneratorSettings, rng: np.random.Generator) -> list[Topology]:
    """The undecorated lattice topologies of the enabled families, in the order of `genome.families`."""
    crystal = crystal_for(elements, settings)
    builders = {
        "grain_boundary": lambda: grain_boundaries.build(crystal),
        "dislocation": lambda: dislocations.build(crystal),
        "crack": lambda: cracks.build(crystal, rng),
        "stacking_fault": lambda: stacking_faults.build(crystal),
        "surface": lambda: surfaces.build(crystal),
        "vacancy_cluster": lambda: clusters.vacancy_clusters(crystal),
        "interstitial_cluster": lambda: clusters.interstitial_clusters(crystal),
    }
    out: list[Topology] = []
    for family in settings.genome.families:  # type: ignore[union-attr]
        for kind, atoms, params in builders.get(family, list)():
            if len(atoms) > crystal.max_atoms:  # the smallest cell that keeps the defect a cutoff from its images
                log.warning("skipping a %s of %d atoms (more than generate.genome.max_atoms=%d): %s", kind, len(atoms),
                            crystal.max_atoms, {k: v for k, v in params.items() if k not in ("lattice", "a")})
                continue
            out.append((kind, atoms, params))
    return out


def genome_candidates(
    elements: Sequence[str],
    settings: GeneratorSettings,
    rng: np.random.Generator,
    fit: FitSettings | None = None,
    potential: str | Path | None = None,
    active_set: str | Path | None = None,
) -> list[tuple[str, Atoms, dict]]:
    """(kind, atoms, parameters) for the whole genome. MaxVol decoration scores against `potential` and its
    `active_set` when given, else against an untrained basis of shape `fit` (the campaign's train settings)."""
    g = settings.genome
    assert g is not None
    els = list(elements)
    deco = g.decoration
    select: Selector | None = None
    if fit is not None and len(els) > 1:
        from alloop.train.select import select_maxvol

        def select(structures: list[Atoms], keep: int) -> list[int]:
            return select_maxvol(structures, keep, potential=potential, active_set=active_set, elements=els, settings=fit)

    out: list[tuple[str, Atoms, dict]] = []
    n_draws = deco.draws if len(els) > 1 else 1
    strata: list[int | None] = list(range(1, len(els) + 1)) if deco.stratify and len(els) > 1 else [None]
    for kind, atoms, params in topologies(els, settings, rng):
        for n_species in strata:
            n = n_draws if n_species is None else max(deco.keep, n_draws // len(strata))
            comps = draw_compositions(els, deco, n, rng, n_species)
            decorated = decorations(atoms, comps, rng)
            chosen = choose([a for a, _ in decorated], deco.keep, deco.method, select)
            if len(chosen) < deco.keep and len(els) > 1:
                log.info("%s %s: %d of %d decorations add to the active set", kind, params.get("sigma", ""), len(chosen), deco.keep)
            for rank, i in enumerate(chosen):
                info = {"composition": comps[i], "counts": decorated[i][1],
                        "decoration": {"method": deco.method, "draws": n, "draw": int(i), "rank": rank, "n_species": n_species}}
                out.append((kind, decorated[i][0], params | info))
    distances = settings.dimer_distances
    if "dimer" in g.families:
        out.extend(dimers(els, g.dimers_per_pair, distances, settings.vacuum, rng))
    if "trimer" in g.families:
        out.extend(trimers(els, g.trimers_per_triple, distances, settings.vacuum, rng))
    return out
