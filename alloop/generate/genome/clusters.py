"""Point-defect clusters in bulk: compact vacancy clusters (a site and its nearest neighbours removed) and
self-interstitial clusters (parallel ground-state dumbbells, <111> in bcc and <100> in fcc, on neighbouring
sites of one plane normal to the dumbbell axis, the nucleus of an interstitial loop)."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from alloop.generate.genome.cell import PLACEHOLDER, Crystal, Topology
from alloop.generate.lattice import INTERSTITIALS, perfect_bulk

_DUMBBELL = {"bcc": "dumbbell_111", "fcc": "dumbbell_100"}


def vacancy_clusters(crystal: Crystal) -> list[Topology]:
    return [_vacancies(crystal, n) for n in crystal.genome.vacancy_cluster_sizes]


def interstitial_clusters(crystal: Crystal) -> list[Topology]:
    return [_interstitials(crystal, n) for n in crystal.genome.interstitial_cluster_sizes]


def _bulk(crystal: Crystal, extra: int) -> tuple[Atoms, tuple[int, int, int], int]:
    atoms, reps = perfect_bulk(crystal.lattice, crystal.a, crystal.max_atoms - extra, PLACEHOLDER)
    centre = atoms.cell.sum(axis=0) / 2
    order = np.argsort(np.linalg.norm(atoms.positions - centre, axis=1), kind="stable")
    return atoms, reps, int(order[0])


def _vacancies(crystal: Crystal, n: int) -> Topology:
    atoms, reps, site = _bulk(crystal, 0)
    d = atoms.get_distances(site, range(len(atoms)), mic=True)
    removed = np.argsort(d, kind="stable")[:n]
    del atoms[removed]
    return "vacancy_cluster", atoms, crystal.base_params() | {"vacancies": n, "supercell": list(reps), "removed_sites": sorted(removed.tolist())}


def _interstitials(crystal: Crystal, n: int) -> Topology:
    atoms, reps, site = _bulk(crystal, n)
    kind = _DUMBBELL[crystal.lattice]
    offset = np.asarray(INTERSTITIALS[crystal.lattice][kind][1]) * crystal.a
    axis = offset / np.linalg.norm(offset)
    vec = atoms.get_distances(site, range(len(atoms)), mic=True, vector=True)
    in_plane = np.flatnonzero(np.abs(vec @ axis) < 1e-6)
    sites = in_plane[np.argsort(np.linalg.norm(vec[in_plane], axis=1), kind="stable")[:n]]
    centres = atoms.positions[sites].copy()
    atoms.positions[sites] = centres + offset
    atoms.extend(Atoms([PLACEHOLDER] * n, positions=centres - offset))
    atoms.wrap()
    return "interstitial_cluster", atoms, crystal.base_params() | {
        "interstitials": n, "dumbbell": kind, "supercell": list(reps), "sites": sites.tolist()}
