"""Chemical decoration of a genome topology: compositions spread over the simplex, exact site counts, and
the choice of the decorations that most enlarge the ACE active set (alloop.train.select_maxvol)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms

from alloop.errors import ConfigError
from alloop.generate.genome.settings import DecorationSettings

Selector = Callable[[list[Atoms], int], list[int]]  # (decorations, how many) -> indices, best first
_MAX_REDRAWS = 10_000


def draw_compositions(elements: Sequence[str], deco: DecorationSettings, n: int, rng: np.random.Generator,
                      n_species: int | None = None) -> list[dict[str, float]]:
    """`n` compositions {element: fraction}: cycled from the given list, or drawn on the simplex: how many
    species (`n_species`, else 1..len(elements) uniformly), which, and their fractions (Dirichlet(1) on
    that face), redrawn until inside `deco.bounds`."""
    els = list(elements)
    stray_bounds = set(deco.bounds) - set(els)
    if stray_bounds:
        raise ConfigError([f"bounds name {sorted(stray_bounds)}, which are not among the elements {els}"], "generate.genome.decoration")
    if isinstance(deco.compositions, list):
        stray = {el for comp in deco.compositions for el in comp} - set(els)
        if stray:
            raise ConfigError([f"compositions name {sorted(stray)}, which are not among the elements {els}"], "generate.genome.decoration")
        return [_normalised(deco.compositions[i % len(deco.compositions)], els) for i in range(n)]
    out = []
    for _ in range(n):
        for _ in range(_MAX_REDRAWS):
            k = n_species or int(rng.integers(1, len(els) + 1))
            present = rng.choice(len(els), size=k, replace=False)
            x = np.zeros(len(els))
            x[present] = rng.dirichlet(np.ones(k))
            comp = dict(zip(els, x.round(6).tolist()))
            if _inside(comp, deco.bounds):
                out.append(comp)
                break
        else:
            raise ConfigError([f"no composition within bounds {deco.bounds} after {_MAX_REDRAWS} draws: widen them"],
                              "generate.genome.decoration")
    return out


def _normalised(comp: dict[str, float], elements: list[str]) -> dict[str, float]:
    total = sum(comp.values())
    return {el: round(comp.get(el, 0.0) / total, 6) for el in elements}


def _inside(comp: dict[str, float], bounds: dict[str, tuple[float, float]]) -> bool:
    return all(lo <= comp.get(el, 0.0) <= hi for el, (lo, hi) in bounds.items())


def site_counts(composition: dict[str, float], n_sites: int) -> dict[str, int]:
    """Integer species counts summing to `n_sites`, nearest to the fractions (largest remainder)."""
    els = list(composition)
    exact = np.array([composition[el] for el in els]) * n_sites
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_sites - counts.sum()]] += 1
    return {el: int(c) for el, c in zip(els, counts) if c}


def decorations(atoms: Atoms, compositions: list[dict[str, float]], rng: np.random.Generator) -> list[tuple[Atoms, dict[str, int]]]:
    """One copy of `atoms` per composition with exactly those counts on randomly permuted sites."""
    out = []
    for comp in compositions:
        counts = site_counts(comp, len(atoms))
        symbols = np.repeat(list(counts), list(counts.values()))
        copy = atoms.copy()
        copy.symbols = rng.permutation(symbols).tolist()
        out.append((copy, counts))
    return out


def choose(structures: list[Atoms], keep: int, method: str, select: Selector | None) -> list[int]:
    """Indices of the kept decorations, best first: MaxVol's choice or simply the first `keep` draws."""
    if method == "random" or len(structures) <= 1:
        return list(range(min(keep, len(structures))))
    if select is None:
        raise ConfigError(["maxvol decoration needs an ACE basis: pass the campaign's train settings"], "generate.genome.decoration")
    return select(structures, keep)
