"""What every genome builder shares: the crystal and size limits it builds within, and cell geometry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.lattice.cubic import BodyCenteredCubic, FaceCenteredCubic

from alloop.generate.genome.settings import ElasticConstants, GenomeSettings

Params = dict[str, Any]
Topology = tuple[str, Atoms, Params]  # kind, geometry on the placeholder species, parameters
# Placeholder species while building (decoration replaces it); any element with bcc/fcc builders works.
PLACEHOLDER = "W"
_ORIENTED = {"bcc": BodyCenteredCubic, "fcc": FaceCenteredCubic}


@dataclass(frozen=True)
class Crystal:
    """The lattice every topology is cut from, and the limits it is built within (lengths in Å)."""

    lattice: str
    a: float
    cutoff: float
    vacuum: float
    max_atoms: int
    elastic: ElasticConstants
    elastic_source: str
    genome: GenomeSettings

    @property
    def nearest_neighbour(self) -> float:
        return self.a * (np.sqrt(3) / 2 if self.lattice == "bcc" else 1 / np.sqrt(2))

    def base_params(self) -> Params:
        return {"lattice": self.lattice, "a": self.a}

    def elastic_params(self) -> Params:
        return {"elastic_constants_GPa": self.elastic.model_dump(), "elastic_source": self.elastic_source}

    def oriented(self, directions: list[list[int]], size: tuple[int, int, int]) -> Atoms:
        """The crystal with x, y, z along `directions` (orthogonal Miller directions), repeated `size`."""
        atoms = _ORIENTED[self.lattice](directions=directions, size=size, symbol=PLACEHOLDER, latticeconstant=self.a, pbc=True)
        return Atoms(atoms)


def height(cell: np.ndarray, axis: int) -> float:
    """Distance between the two cell faces that are not spanned by `axis` (the periodic repeat normal to them)."""
    cell = np.asarray(cell)
    others = [cell[i] for i in range(3) if i != axis]
    normal = np.cross(*others)
    return float(abs(np.dot(cell[axis], normal)) / np.linalg.norm(normal))


def pad_with_vacuum(atoms: Atoms, axes: tuple[int, ...], vacuum: float) -> Atoms:
    """Orthogonal cell around `atoms` along `axes` with `vacuum` Å of empty space to the images; pbc stays
    True everywhere (pyace needs fully periodic cells)."""
    out = atoms.copy()
    cell = np.array(out.cell)
    pos = out.positions
    for ax in axes:
        lo, hi = pos[:, ax].min(), pos[:, ax].max()
        cell[ax] = 0.0
        cell[ax, ax] = hi - lo + vacuum
        pos[:, ax] += vacuum / 2 - lo
    out.positions = pos
    out.set_cell(cell)
    out.pbc = True
    return out
