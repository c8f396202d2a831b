"""Mixed label sets: DFT labels for the uncertain configurations, uMLIP labels for the rest, with the DFT
energies moved onto the energy member's scale. The campaign's fit and `alloop sweep` build their
training data here, so both mix labels the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from alloop.label.reference import EnergyReference, apply_offsets, composition_matrix

if TYPE_CHECKING:
    import pandas as pd


def corrected_energies(structures: Sequence[Atoms], energies: np.ndarray, is_dft: np.ndarray, reference: EnergyReference) -> np.ndarray:
    """Total energies on the training scale: DFT ones shifted by the reference's offsets, others as they are."""
    out = np.asarray(energies, dtype=np.float64).copy()
    dft = np.asarray(is_dft, dtype=bool)
    if reference.offsets and dft.any():
        counts, elements = composition_matrix([structures[i] for i in np.flatnonzero(dft)])
        out[dft] = apply_offsets(counts, out[dft], reference.offsets, elements)
    return out


def label_frame(
    structures: Sequence[Atoms],
    energies: np.ndarray,
    forces: Sequence[np.ndarray],
    is_dft: np.ndarray,
    reference: EnergyReference,
) -> pd.DataFrame:
    """The pacemaker training frame (ase_atoms, energy, forces, energy_corrected, source)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "ase_atoms": list(structures),
            "energy": np.asarray(energies, dtype=np.float64),
            "forces": list(forces),
            "energy_corrected": corrected_energies(structures, energies, is_dft, reference),
            "source": np.where(np.asarray(is_dft, dtype=bool), "dft", "umlip"),
        }
    )
