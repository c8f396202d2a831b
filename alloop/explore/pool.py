"""An iteration's candidate pool: the data-set sources' share, the generator's motifs and, once a potential
exists, the frames γ-driven MD with it found extrapolative. The campaign's generate and evaluate stages
run this (as a Dask task), and so does `alloop generate` to preview them.

Each (seed, iteration, stream) has its own random streams, so a resumed run regenerates exactly the
pool an interrupted one had.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from alloop.explore.settings import ExploreSettings
from alloop.generate import GeneratorSettings, generate_candidates, source_candidates, starting_structures

log = logging.getLogger(__name__)


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
) -> list[Atoms]:
    """Candidates of `iteration`; `potential` is (potential.yaml, active set .asi) of the latest fit, if any;
    `sources`: include the data-set sources' entries for this iteration; `n_max`: a seeded draw of at most
    that many."""

    def rng(offset: int) -> np.random.Generator:
        return np.random.default_rng([seed, iteration, stream + offset])

    pool = generate_candidates(elements, generate, rng(0))
    if sources:
        pool = source_candidates(generate.sources, iteration) + pool
    if explore_settings is not None and potential is not None:
        from alloop.explore import explore

        starts = starting_structures(elements, generate, rng(10))
        res = explore(potential[0], potential[1], starts, explore_settings, rng(20))
        log.info("exploration from %d starts gave %d candidates", len(starts), len(res.candidates))
        pool = list(res.candidates) + pool
    if n_max is not None and len(pool) > n_max:
        keep = rng(30).choice(len(pool), size=n_max, replace=False)
        pool = [pool[i] for i in sorted(keep)]
    return pool
