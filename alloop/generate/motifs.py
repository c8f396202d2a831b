"""One builder per candidate kind. Each returns geometry on a placeholder species plus the
parameters that produced it; `generate_candidates` decorates, labels and validates."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bcc100, bcc110, fcc100, fcc110, fcc111

from alloop.errors import ConfigError
from alloop.generate.lattice import INTERSTITIALS, insert_interstitial, perfect_bulk
from alloop.generate.settings import GeneratorSettings

Params = dict[str, Any]
# Placeholder species while building: decoration replaces it. Any element with a bcc/fcc builder works.
PLACEHOLDER = "W"
_MAX_LAYERS = 12

SURFACES = {
    "bcc": {"100": bcc100, "110": bcc110},
    "fcc": {"100": fcc100, "111": fcc111, "110": fcc110},
}


def _jitter(atoms: Atoms, stdev: float, rng: np.random.Generator) -> None:
    if stdev > 0:
        atoms.positions += rng.normal(0.0, stdev, size=atoms.positions.shape)


def _bulk(s: GeneratorSettings, a: float, max_atoms: int | None = None) -> tuple[Atoms, Params]:
    atoms, reps = perfect_bulk(s.lattice, a, max_atoms or s.max_atoms, PLACEHOLDER)
    return atoms, {"lattice": s.lattice, "a": a, "supercell": list(reps)}


def strained_bulk(s: GeneratorSettings, a: float, rng: np.random.Generator) -> tuple[Atoms, Params]:
    """Homogeneous random strain: symmetric ε with components uniform in ±strain_max."""
    atoms, params = _bulk(s, a)
    e = rng.uniform(-s.strain_max, s.strain_max, size=(3, 3))
    eps = 0.5 * (e + e.T)
    atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    _jitter(atoms, s.jitter_stdev, rng)
    return atoms, params | {"strain": eps.round(6).tolist(), "jitter_stdev": s.jitter_stdev}


def rattled_bulk(s: GeneratorSettings, a: float, rng: np.random.Generator) -> tuple[Atoms, Params]:
    atoms, params = _bulk(s, a)
    stdev = float(rng.uniform(*s.rattle_stdev))
    _jitter(atoms, stdev, rng)
    return atoms, params | {"rattle_stdev": round(stdev, 6)}


def vacancy(s: GeneratorSettings, a: float, rng: np.random.Generator) -> tuple[Atoms, Params]:
    atoms, params = _bulk(s, a)
    site = int(rng.integers(len(atoms)))
    del atoms[site]
    _jitter(atoms, s.jitter_stdev, rng)
    return atoms, params | {"removed_site": site, "jitter_stdev": s.jitter_stdev}


def interstitial(s: GeneratorSettings, a: float, rng: np.random.Generator) -> tuple[Atoms, Params]:
    """A self-interstitial of a random geometry in the largest bulk cell that leaves room for it."""
    atoms, params = _bulk(s, a, max_atoms=s.max_atoms - 1)
    kinds = sorted(INTERSTITIALS[s.lattice])
    kind = kinds[int(rng.integers(len(kinds)))]
    atoms = insert_interstitial(atoms, s.lattice, a, kind)
    _jitter(atoms, s.jitter_stdev, rng)
    return atoms, params | {"interstitial": kind, "jitter_stdev": s.jitter_stdev}


def slab(s: GeneratorSettings, a: float, facet: str) -> tuple[Atoms, Params]:
    """The thickest-and-largest orthogonal slab of `facet` within max_atoms, periodic in all three
    directions with `vacuum` Å of empty space between the slab and its image along z."""
    build = SURFACES[s.lattice][facet]
    best: tuple[tuple[int, int], tuple[int, int, int]] | None = None
    for nx, ny in itertools.product((1, 2), (1, 2)):
        try:
            per_layer = len(build(PLACEHOLDER, size=(nx, ny, s.min_layers), a=a, orthogonal=True)) // s.min_layers
        except ValueError:  # this facet needs an even lateral repetition for an orthogonal cell
            continue
        layers = min(_MAX_LAYERS, s.max_atoms // per_layer)
        key = (per_layer * layers, layers)
        if layers >= s.min_layers and (best is None or key > best[0]):
            best = (key, (nx, ny, layers))
    if best is None:
        raise ConfigError(
            [f"max_atoms={s.max_atoms} is too small for a {s.lattice}({facet}) slab of {s.min_layers} layers"],
            "generate",
        )
    size = best[1]
    atoms = build(PLACEHOLDER, size=size, a=a, vacuum=s.vacuum / 2, orthogonal=True)
    atoms.pbc = True
    return atoms, {"lattice": s.lattice, "a": a, "facet": facet, "size": list(size), "vacuum": s.vacuum}


def surface(s: GeneratorSettings, a: float, rng: np.random.Generator, index: int) -> tuple[Atoms, Params]:
    facets = sorted(SURFACES[s.lattice])
    atoms, params = slab(s, a, facets[index % len(facets)])
    _jitter(atoms, s.jitter_stdev, rng)
    return atoms, params | {"jitter_stdev": s.jitter_stdev}


def dimer(s: GeneratorSettings, distance: float) -> tuple[Atoms, Params]:
    """Two atoms along x in a cubic box whose edge leaves `vacuum` Å to every periodic image."""
    box = s.dimer_distances[1] + s.vacuum
    centre = np.full(3, box / 2)
    offset = np.array([distance / 2, 0.0, 0.0])
    atoms = Atoms(f"{PLACEHOLDER}2", positions=[centre - offset, centre + offset], cell=np.eye(3) * box, pbc=True)
    return atoms, {"distance": round(float(distance), 6), "box": box}


def compressed(s: GeneratorSettings, a: float, rng: np.random.Generator) -> tuple[Atoms, Params]:
    """Short-range pair in bulk (Byggmästar-style repulsion data): one atom moved along the bond
    toward a nearest neighbour until the pair is `compressed_distances` apart."""
    atoms, params = _bulk(s, a, max_atoms=min(s.max_atoms, s.compressed_max_atoms))
    _jitter(atoms, s.jitter_stdev, rng)
    i = int(rng.integers(len(atoms)))
    d = atoms.get_distances(i, range(len(atoms)), mic=True, vector=True)
    r = np.linalg.norm(d, axis=1)
    r[i] = np.inf
    shells = np.flatnonzero(r < r.min() + 0.3)  # the (jittered) first-neighbour shell
    j = int(shells[rng.integers(len(shells))])
    target = float(rng.uniform(*s.compressed_distances))
    bond = d[j] / r[j]
    atoms.positions[i] += bond * (r[j] - target)
    atoms.wrap()
    return atoms, params | {"pair": [i, j], "distance": round(target, 6), "jitter_stdev": s.jitter_stdev}
