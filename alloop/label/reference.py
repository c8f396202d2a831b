"""Per-element energy references between label sources.

Total energies from different codes or models differ by a constant per atom of each element (other PAW
setups, other training references): GPAW vs VASP-PBE, OMat- vs MP-compatible uMLIPs. Mixing them in one
training set without alignment makes the ACE learn the offsets. Forces need no alignment.

Model: E_target ≈ E_source + Σ_el n_el · δ_el, fitted by least squares on configurations labelled by
both sources, on energies per atom (each configuration weighs the same, as in an ACE energy loss,
instead of the largest cells dominating). With fewer independent compositions than elements the δ_el
are not identifiable; the fit then falls back to one shared per-atom offset δ (the mean per-atom
difference) and says so in the log, or raises FitError with `fallback="raise"`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from alloop.errors import FitError
from alloop.schema import unit

log = logging.getLogger(__name__)


class EnergyReferenceSettings(BaseModel):
    """How DFT energies are put on the energy member's scale before DFT and uMLIP labels are mixed."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["fit", "none"] = Field(
        "fit", description="fit: per-element offsets on configurations where both sources are trustworthy (U < U_c "
        "and labelled by both), frozen with the first potential; none: mix as labelled, for DFT and uMLIPs on one "
        "reference (VASP-PBE vs OMat/MP-compatible models, as in the paper)")
    calibration: bool = Field(True, description="label each element's bulk ground state (and, for alloys, a few "
                              "random bulk compositions) by DFT in the first iteration, whatever their U")
    strains: list[float] = Field(default_factory=lambda: [-0.01, 0.0, 0.01], min_length=1,
                                 description="isotropic strains of the calibration bulk cells")
    n_alloy: int = Field(3, ge=0, description="random-composition calibration cells for alloys")
    outlier_scale: float = Field(0.05, gt=0, description="residuals beyond this weigh less (soft-L1 loss)",
                                 json_schema_extra=unit("eV/atom"))


@dataclass(frozen=True)
class EnergyReference:
    """The offsets mapping DFT energies onto the energy member's scale, as recorded with every potential."""

    method: str  # fit | none
    offsets: dict[str, float]  # eV/atom per element, added to DFT energies per atom of that element
    energy_scale: str  # the scale the training labels (and so the potential) are on
    n_pairs: int = 0  # configurations the offsets were fitted on
    residual_rms: float | None = None  # eV/atom, after the fit
    n_outliers: int = 0  # pairs with a residual beyond 3 outlier scales
    frozen: bool = True  # False until there is something to fit: later potentials then fit their own

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EnergyReference:
        return cls(**{k: d[k] for k in ("method", "offsets", "energy_scale", "n_pairs", "residual_rms", "n_outliers", "frozen") if k in d})


def fit_energy_reference(
    settings: EnergyReferenceSettings,
    energy_member: str,
    compositions: Compositions,
    e_dft: Sequence[float] | np.ndarray,
    e_member: Sequence[float | None] | np.ndarray,
    u: Sequence[float | None] | np.ndarray,
    u_c: float,
    elements: Sequence[str],
) -> EnergyReference:
    """Offsets from the DFT-labelled configurations that are also trustworthy for the energy member
    (U < U_c, a prediction present): never from the high-U ones DFT was run for, where the uMLIP energy
    is least reliable. FitError when no such configuration exists."""
    if settings.method == "none":
        return EnergyReference("none", {}, f"as labelled: DFT and {energy_member} energies mixed without offsets")
    e_m = np.array([np.nan if e is None else float(e) for e in e_member])
    uu = np.array([np.nan if x is None else float(x) for x in u])
    counts, _ = composition_matrix(compositions, elements)
    keep = np.isfinite(e_m) & np.isfinite(uu) & (uu < u_c)
    if not keep.any():
        raise FitError(
            f"no DFT-labelled configuration has U < U_c = {u_c:g} eV/Å and a {energy_member} energy, so the DFT "
            "energy reference cannot be fitted: keep labels.energy_reference.calibration on (and check that its DFT "
            "jobs succeeded), or set labels.energy_reference.method: none if DFT and the uMLIPs share a reference")
    e_src = np.asarray(e_dft, dtype=np.float64)[keep]
    offsets = fit_element_offsets(counts[keep], e_src, e_m[keep], elements, robust_scale=settings.outlier_scale)
    n = counts[keep].sum(axis=1)
    resid = (e_m[keep] - np.asarray(apply_offsets(counts[keep], e_src, offsets, elements))) / n
    return EnergyReference(
        "fit", offsets, f"{energy_member} (DFT energies shifted by per-element offsets)", int(keep.sum()),
        float(np.sqrt(np.mean(resid**2))), int(np.sum(np.abs(resid) > 3 * settings.outlier_scale)),
    )

def training_reference(
    settings: EnergyReferenceSettings,
    energy_member: str,
    structures: Sequence[Atoms],
    sources: Sequence[str],
    energies: Sequence[float],
    e_member: Sequence[float | None],
    u: Sequence[float | None],
    u_c: float,
    elements: Sequence[str],
    dft_backend: str,
    replay: Any = None,
) -> EnergyReference:
    """The reference for a training set of mixed labels (`sources` "dft" or "umlip"): offsets fitted on the
    DFT-labelled configurations the energy member also predicts well, plus, with a replay DFT set (`replay`,
    its ReplaySettings), the replayed DFT of the uMLIP-labelled ones, which costs nothing. Not frozen while
    there is nothing to align (no DFT yet, or only DFT labels); FitError when uMLIP labels would have to be
    mixed with DFT but no trustworthy pair exists."""
    dft = [k for k, s in enumerate(sources) if s == "dft"]
    e_dft = {k: float(energies[k]) for k in dft}
    if settings.method == "fit" and replay is not None:
        from alloop.label.replay import replayed_energies

        low = [k for k, s in enumerate(sources) if s == "umlip"]
        found = replayed_energies(replay, [structures[k] for k in low])
        e_dft.update({k: float(e) for k, e in zip(low, found) if np.isfinite(e)})
    if settings.method == "fit" and not e_dft:
        return EnergyReference("fit", {}, f"{energy_member} (no DFT labels yet)", frozen=False)
    pairs = sorted(e_dft)
    try:
        return fit_energy_reference(settings, energy_member, [structures[k] for k in pairs], [e_dft[k] for k in pairs],
                                    [e_member[k] for k in pairs], [u[k] for k in pairs], u_c, elements)
    except FitError:
        if any(s == "umlip" for s in sources):
            raise
        return EnergyReference("fit", {}, f"DFT ({dft_backend}; no uMLIP labels to align yet)", frozen=False)


Compositions = Sequence[Mapping[str, int]] | Sequence[Atoms] | np.ndarray


def composition_matrix(compositions: Compositions, elements: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(n_configs, n_elements) atom counts and the element order. A count matrix needs `elements`."""
    if isinstance(compositions, np.ndarray):
        if elements is None or compositions.ndim != 2 or compositions.shape[1] != len(elements):
            raise FitError("a count matrix needs `elements`, one per column")
        return compositions.astype(np.float64), list(elements)
    dicts = [_as_counts(c) for c in compositions]
    if elements is None:
        elements = sorted({el for d in dicts for el in d})
    col = {el: j for j, el in enumerate(elements)}
    counts = np.zeros((len(dicts), len(elements)))
    for i, d in enumerate(dicts):
        for el, n in d.items():
            if el not in col:
                raise FitError(f"element {el} of configuration {i} is not among {list(elements)}")
            counts[i, col[el]] = n
    return counts, list(elements)


def _as_counts(c: Mapping[str, int] | Atoms) -> dict[str, int]:
    if isinstance(c, Atoms):
        symbols, counts = np.unique(c.get_chemical_symbols(), return_counts=True)
        return {str(s): int(n) for s, n in zip(symbols, counts)}
    return {str(k): int(v) for k, v in c.items()}


def fit_element_offsets(
    compositions: Compositions,
    e_source: Sequence[float] | np.ndarray,
    e_target: Sequence[float] | np.ndarray,
    elements: Sequence[str] | None = None,
    fallback: Literal["shared", "raise"] = "shared",
    robust_scale: float | None = None,
) -> dict[str, float]:
    """Per-element offsets δ_el (eV/atom) such that e_source + Σ n_el δ_el ≈ e_target (total energies).

    With `robust_scale` (eV/atom), a soft-L1 loss bounds the pull of configurations whose per-atom
    residual exceeds it (a uMLIP far off on one configuration must not move every label)."""
    counts, elements = composition_matrix(compositions, elements)
    src, tgt = np.asarray(e_source, dtype=np.float64), np.asarray(e_target, dtype=np.float64)
    if not (len(src) == len(tgt) == len(counts)):
        raise FitError(f"{len(counts)} compositions, {len(src)} source and {len(tgt)} target energies: lengths differ")
    if len(counts) == 0:
        raise FitError("no configuration labelled by both sources: cannot fit energy offsets")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(tgt))):
        raise FitError("non-finite energies among the configurations used to fit energy offsets")
    n_atoms = counts.sum(axis=1)
    if np.any(n_atoms <= 0):
        raise FitError("a configuration without atoms among those used to fit energy offsets")
    per_atom_residual = (tgt - src) / n_atoms
    fractions = counts / n_atoms[:, None]
    rank = np.linalg.matrix_rank(fractions)
    if rank >= len(elements):
        delta, *_ = np.linalg.lstsq(fractions, per_atom_residual, rcond=None)
        if robust_scale is not None and len(counts) > len(elements):
            from scipy.optimize import least_squares

            delta = least_squares(lambda d: fractions @ d - per_atom_residual, delta, loss="soft_l1", f_scale=robust_scale).x
        return {el: float(d) for el, d in zip(elements, delta)}
    why = (f"{rank} independent composition(s) for {len(elements)} elements {elements}: per-element offsets "
           "are not identifiable")
    if fallback == "raise":
        raise FitError(why + "; label configurations of more compositions by both sources")
    shared = float(np.median(per_atom_residual) if robust_scale is not None else per_atom_residual.mean())
    log.warning("%s; using one shared offset of %.6f eV/atom for all elements", why, shared)
    return {el: shared for el in elements}


def apply_offsets(
    compositions: Mapping[str, int] | Atoms | Compositions,
    energies: float | Sequence[float] | np.ndarray,
    offsets: Mapping[str, float],
    elements: Sequence[str] | None = None,
) -> float | np.ndarray:
    """Energies moved onto the target scale: E + Σ n_el δ_el. One composition and one energy give a
    float; a list (or count matrix) of compositions and an array of energies give an array."""
    if isinstance(compositions, (Mapping, Atoms)):
        counts = _as_counts(compositions)
        return float(energies) + sum(n * _offset(offsets, el) for el, n in counts.items())  # type: ignore[arg-type]
    matrix, elements = composition_matrix(compositions, elements)
    delta = np.array([_offset(offsets, el) if matrix[:, j].any() else 0.0 for j, el in enumerate(elements)])
    return np.asarray(energies, dtype=np.float64) + matrix @ delta


def _offset(offsets: Mapping[str, float], element: str) -> float:
    if element not in offsets:
        raise FitError(f"no energy offset for element {element} (offsets known for {sorted(offsets)}): "
                       "fit them on configurations that contain it")
    return float(offsets[element])
