"""Heterogeneous-ensemble force uncertainty U (Liu et al. 2026, Eqs. 1-5) and accuracy-coverage tools.

Array layout, shared with the W npz: the forces of K ensemble members on a batch of configurations are
stacked as (K, N, 3), N being the total number of atoms; `offsets` (n_configs + 1,) makes configuration
i the atoms `offsets[i]:offsets[i+1]`. Reductions over the atoms of a configuration use
`ufunc.reduceat` on the offsets, so no Python loop runs over configurations. Arithmetic is float64
whatever the input dtype (uMLIPs often return float32).

Variants (all in eV/Å):
  0  U⁽⁰⁾: equal weights w_k = 1/K, plain member mean (rmse is ignored);
  1  U⁽¹⁾ (Eq. 1, the paper's U): w_k ∝ 1/RMSE_k (Eq. 2), plain member mean;
  2  U⁽²⁾ (Eqs. 3-4): w_k ∝ 1/RMSE_k both in the mean and in the sum.
With rmse=None variants 1 and 2 fall back to equal weights, i.e. to U⁽⁰⁾.

Non-finite forces raise UQInputError naming the member and configurations (nan_policy="raise"), or
give NaN for just the configurations concerned (nan_policy="propagate"); `partition` never sends a
NaN-U configuration to the uMLIP side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from alloop.errors import AlloopError

Variant = Literal[0, 1, 2]
NanPolicy = Literal["raise", "propagate"]

# How many offending indices an error message lists before it summarises.
_SHOWN = 10


class UQInputError(AlloopError, ValueError):
    """Forces, offsets, RMSEs or errors handed to alloop.uq are inconsistent or not finite."""


def _few(values: np.ndarray) -> str:
    head = ", ".join(str(v) if isinstance(v, int) else f"{v:.6g}" for v in values[:_SHOWN].tolist())
    more = f" and {values.size - _SHOWN} more" if values.size > _SHOWN else ""
    return f"[{head}]{more}"


# ---------------------------------------------------------------------------------------------------
# input checks


def _check_offsets(offsets: ArrayLike, n_atoms: int) -> np.ndarray:
    off = np.asarray(offsets)
    if off.ndim != 1 or off.size < 2:
        raise UQInputError(f"offsets must be 1-D with n_configs + 1 >= 2 entries, got shape {off.shape}")
    if not np.issubdtype(off.dtype, np.integer):
        raise UQInputError(f"offsets must be integers, got dtype {off.dtype}")
    off = off.astype(np.intp, copy=False)
    if off[0] != 0 or off[-1] != n_atoms:
        raise UQInputError(
            f"offsets must run from 0 to the number of atoms in the forces ({n_atoms}), "
            f"got {int(off[0])} .. {int(off[-1])}"
        )
    sizes = np.diff(off)
    bad = np.flatnonzero(sizes <= 0)
    if bad.size:
        # reduceat would silently return a neighbour's atom for an empty slice.
        raise UQInputError(
            f"offsets must increase strictly (every configuration needs at least one atom): "
            f"configuration(s) {_few(bad)} have {_few(sizes[bad])} atoms"
        )
    return off


def _member_forces(forces: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    if isinstance(forces, (list, tuple)):
        shapes = [np.shape(f) for f in forces]
        odd = [k for k, s in enumerate(shapes) if s != shapes[0]]
        if odd:
            raise UQInputError(
                f"member forces differ in shape: member 0 has {shapes[0]}, "
                + ", ".join(f"member {k} has {shapes[k]}" for k in odd[:_SHOWN])
            )
    f = np.asarray(forces, dtype=np.float64)
    if f.ndim != 3 or f.shape[2] != 3:
        raise UQInputError(f"member forces must be shaped (K members, N atoms, 3), got {f.shape}")
    if f.shape[0] < 2:
        # One member has no spread: U would be 0 everywhere and accept every configuration.
        raise UQInputError(f"an ensemble needs at least 2 members, got {f.shape[0]}")
    return f


def _atom_forces(forces: ArrayLike, name: str) -> np.ndarray:
    f = np.asarray(forces, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise UQInputError(f"{name} must be shaped (N atoms, 3), got {f.shape}")
    return f


def _per_config(values: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise UQInputError(f"{name} must be 1-D (one value per configuration), got shape {v.shape}")
    if n is not None and v.size != n:
        raise UQInputError(f"{name} has {v.size} values for {n} configurations")
    return v


def finite_mask(forces: ArrayLike, offsets: ArrayLike) -> np.ndarray:
    """(K, n_configs) bool: True where member k's forces on configuration i are all finite.

    `forces` is (K, N, 3) (or (N, 3) for one force set, giving (n_configs,)). A caller that wants to
    keep a batch in which one member failed on some configurations drops the columns where
    `finite_mask(...).all(axis=0)` is False.
    """
    f = np.asarray(forces)
    if f.ndim not in (2, 3) or f.shape[-1] != 3:
        raise UQInputError(f"forces must be shaped (K, N, 3) or (N, 3), got {f.shape}")
    off = _check_offsets(offsets, f.shape[-2])
    ok_atom = np.isfinite(f).all(axis=-1)
    return np.logical_and.reduceat(ok_atom, off[:-1], axis=-1)


def _raise_nonfinite(sources: dict[str, np.ndarray], off: np.ndarray, bad_cfg: np.ndarray) -> None:
    """Raise UQInputError describing which member/array has non-finite values where."""
    lines = []
    for name, arr in sources.items():
        ok = finite_mask(arr, off)
        if ok.ndim == 1:
            if not ok.all():
                lines.append(f"{name}: non-finite forces in configuration(s) {_few(np.flatnonzero(~ok))}")
            continue
        for k in np.flatnonzero(~ok.all(axis=1)):
            lines.append(f"member {k}: non-finite forces in configuration(s) {_few(np.flatnonzero(~ok[k]))}")
    if not lines:
        lines.append(f"forces too large to square in float64 in configuration(s) {_few(np.flatnonzero(bad_cfg))}")
    raise UQInputError(
        "cannot compute the uncertainty:\n  "
        + "\n  ".join(lines)
        + "\n  (pass nan_policy='propagate' to get NaN for these configurations instead)"
    )


def _reduce_checked(
    per_atom: np.ndarray,
    off: np.ndarray,
    nan_policy: NanPolicy,
    sources: dict[str, np.ndarray],
    ufunc: np.ufunc = np.maximum,
) -> np.ndarray:
    """Max (or sum) over each configuration's atoms of `per_atom` (..., N) -> (..., n_configs).

    Non-finite inputs always reach the result (np.maximum and np.add propagate NaN), so checking the
    small reduced array is enough; the forces are only re-scanned to name the culprits.
    """
    if nan_policy not in ("raise", "propagate"):
        raise UQInputError(f"nan_policy must be 'raise' or 'propagate', got {nan_policy!r}")
    red = ufunc.reduceat(per_atom, off[:-1], axis=-1)
    bad_cfg = ~np.isfinite(red)
    if red.ndim == 2:
        bad_cfg = bad_cfg.any(axis=0)
    if bad_cfg.any():
        if nan_policy == "raise":
            _raise_nonfinite(sources, off, bad_cfg)
        red[..., bad_cfg] = np.nan
    return red


# ---------------------------------------------------------------------------------------------------
# weights and deviations


def weights_from_rmse(rmse: ArrayLike | None, n_members: int | None = None) -> np.ndarray:
    """Eq. (2): w_k = (1/RMSE_k) / Σ_k' (1/RMSE_k'); equal weights 1/n_members when rmse is None."""
    if rmse is None:
        if n_members is None or n_members < 1:
            raise UQInputError("equal weights need the number of members (n_members >= 1)")
        return np.full(n_members, 1.0 / n_members)
    r = np.asarray(rmse, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise UQInputError(f"rmse must be a non-empty 1-D array (one value per member), got shape {r.shape}")
    if n_members is not None and r.size != n_members:
        raise UQInputError(f"{r.size} RMSE values given for {n_members} ensemble members")
    bad = np.flatnonzero(~np.isfinite(r) | (r <= 0))
    if bad.size:
        raise UQInputError(f"RMSE must be finite and > 0; member(s) {_few(bad)} have {_few(r[bad])}")
    inv = 1.0 / r
    return inv / inv.sum()


def _variant_weights(variant: int, rmse: ArrayLike | None, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(weights of the sum over members, weights of the mean force or None for the plain mean)."""
    if variant not in (0, 1, 2):
        raise UQInputError(f"variant must be 0, 1 or 2, got {variant!r}")
    w = weights_from_rmse(rmse, k)  # validates rmse even where variant 0 then ignores it
    if variant == 0:
        return weights_from_rmse(None, k), None
    return w, (w if variant == 2 else None)


def _sq_deviation(f: np.ndarray, mean_weights: np.ndarray | None) -> np.ndarray:
    """(K, N) squared norms |F_jk - <F_j>|²."""
    # inf - inf warnings are noise: non-finite results are caught and reported by _reduce_checked.
    with np.errstate(invalid="ignore", over="ignore"):
        mean = f.mean(axis=0) if mean_weights is None else np.tensordot(mean_weights, f, axes=1)
        d = f - mean
        d *= d
        return d.sum(axis=-1)


def combine_deviations(deviation: ArrayLike, weights: ArrayLike) -> np.ndarray:
    """sqrt(Σ_k w_k d_k²) over the member axis 0 of `deviation` ((K, ...) -> (...)).

    Applied to `max_deviation` it is Eq. (1)/(3); applied to `atom_deviation` it gives a per-atom
    analogue for display.
    """
    d = np.asarray(deviation, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or d.ndim < 1 or d.shape[0] != w.size:
        raise UQInputError(f"{w.size} weights for deviations shaped {d.shape} (members first)")
    return np.sqrt(np.tensordot(w, d * d, axes=1))


def max_deviation(
    forces: ArrayLike,
    offsets: ArrayLike,
    rmse: ArrayLike | None = None,
    variant: Variant = 1,
    nan_policy: NanPolicy = "raise",
) -> np.ndarray:
    """(K, n_configs): per member, max over a configuration's atoms of |F_jk - <F_j>| (eV/Å).

    <F_j> is the plain member mean for variants 0 and 1 and the Eq. (4) weighted mean for variant 2.
    """
    f = _member_forces(forces)
    off = _check_offsets(offsets, f.shape[1])
    _, mean_w = _variant_weights(variant, rmse, f.shape[0])
    return np.sqrt(_reduce_checked(_sq_deviation(f, mean_w), off, nan_policy, {"forces": f}))


def atom_deviation(
    forces: ArrayLike,
    offsets: ArrayLike,
    rmse: ArrayLike | None = None,
    variant: Variant = 1,
    nan_policy: NanPolicy = "raise",
) -> np.ndarray:
    """(K, N): per member and atom, |F_jk - <F_j>| (eV/Å); NaN on every atom of a configuration with
    non-finite forces under nan_policy="propagate"."""
    f = _member_forces(forces)
    off = _check_offsets(offsets, f.shape[1])
    _, mean_w = _variant_weights(variant, rmse, f.shape[0])
    sq = _sq_deviation(f, mean_w)
    red = _reduce_checked(sq, off, nan_policy, {"forces": f})
    bad_atom = np.repeat(np.isnan(red).any(axis=0), np.diff(off))
    sq[:, bad_atom] = np.nan
    return np.sqrt(sq)


def uncertainty(
    forces: ArrayLike,
    offsets: ArrayLike,
    rmse: ArrayLike | None = None,
    variant: Variant = 1,
    nan_policy: NanPolicy = "raise",
) -> np.ndarray:
    """(n_configs,) ensemble uncertainty U⁽ᵛᵃʳⁱᵃⁿᵗ⁾ in eV/Å (Eqs. 1-4).

    forces: (K members, N atoms, 3) eV/Å, or a list of K (N, 3) arrays; offsets: (n_configs + 1,);
    rmse: (K,) each member's force RMSE (eV/Å) on a common benchmark (the paper: OMat24).
    """
    f = _member_forces(forces)
    off = _check_offsets(offsets, f.shape[1])
    w, mean_w = _variant_weights(variant, rmse, f.shape[0])
    md = np.sqrt(_reduce_checked(_sq_deviation(f, mean_w), off, nan_policy, {"forces": f}))
    return combine_deviations(md, w)


# ---------------------------------------------------------------------------------------------------
# errors against a reference


def _predicted(forces_pred: ArrayLike, n_atoms: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Prediction (N, 3): the plain member mean of (K, N, 3), or (N, 3) as given."""
    p = np.asarray(forces_pred, dtype=np.float64)
    if p.ndim == 3 and p.shape[2] == 3 and p.shape[1] == n_atoms:
        return p.mean(axis=0), {"forces_pred": p}
    if p.shape != (n_atoms, 3):
        raise UQInputError(f"predicted forces must be shaped ({n_atoms}, 3) or (K, {n_atoms}, 3), got {p.shape}")
    return p, {"forces_pred": p}


def force_error(
    forces_ref: ArrayLike, forces_pred: ArrayLike, offsets: ArrayLike, nan_policy: NanPolicy = "raise"
) -> np.ndarray:
    """Eq. (5): ΔF_i = max_j |F_ref,ij - F_pred,ij| (n_configs,) in eV/Å.

    forces_pred is one force set (N, 3) or the members' forces (K, N, 3), whose plain mean is used.
    """
    ref = _atom_forces(forces_ref, "forces_ref")
    pred, sources = _predicted(forces_pred, ref.shape[0])
    off = _check_offsets(offsets, ref.shape[0])
    with np.errstate(invalid="ignore", over="ignore"):
        d = ref - pred
        d *= d
    return np.sqrt(_reduce_checked(d.sum(axis=-1), off, nan_policy, {"forces_ref": ref, **sources}))


def force_sq_errors(
    forces_ref: ArrayLike, forces_pred: ArrayLike, offsets: ArrayLike, nan_policy: NanPolicy = "raise"
) -> tuple[np.ndarray, np.ndarray]:
    """Per configuration: (Σ over atoms and x,y,z of (F_ref - F_pred)², number of components 3·n_atoms).

    This is the input of the coverage functions, whose force RMSE is therefore per component and
    atom-weighted over the retained set (the RMSE a fitting code reports). forces_pred and nan_policy
    as in `force_error`.
    """
    ref = _atom_forces(forces_ref, "forces_ref")
    pred, sources = _predicted(forces_pred, ref.shape[0])
    off = _check_offsets(offsets, ref.shape[0])
    with np.errstate(invalid="ignore", over="ignore"):
        d = ref - pred
        d *= d
    sq = _reduce_checked(d.sum(axis=-1), off, nan_policy, {"forces_ref": ref, **sources}, np.add)
    return sq, 3 * np.diff(off)


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation ρ of two per-configuration arrays; pairs with a NaN are left out."""
    from scipy.stats import spearmanr

    x = _per_config(a, "a")
    y = _per_config(b, "b", x.size)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        raise UQInputError(f"Spearman's rho needs at least 2 pairs without NaN, got {int(keep.sum())}")
    return float(spearmanr(x[keep], y[keep]).statistic)


# ---------------------------------------------------------------------------------------------------
# selection and accuracy-coverage


def partition(u: ArrayLike, uc: float) -> np.ndarray:
    """Boolean mask of configurations the uMLIP labels: the paper's strict U < U_c.

    NaN U is never below U_c, so a configuration whose uncertainty could not be computed goes to DFT.
    U_c may be inf (everything with a finite U is uMLIP-labelled).
    """
    if np.isnan(uc):
        raise UQInputError("U_c must not be NaN")
    return _per_config(u, "u") < uc


def _coverage_inputs(
    u: ArrayLike, sq_err_sum: ArrayLike, counts: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U sorted ascending (NaN last) with the cumulative squared error and count of each prefix."""
    uu = _per_config(u, "u")
    sq = _per_config(sq_err_sum, "sq_err_sum", uu.size)
    c = _per_config(counts, "counts", uu.size)
    if uu.size == 0:
        raise UQInputError("no configurations given")
    bad = np.flatnonzero(~np.isfinite(sq) | (sq < 0))
    if bad.size:
        raise UQInputError(f"squared errors must be finite and >= 0; configuration(s) {_few(bad)} are not")
    bad = np.flatnonzero(~(c > 0))
    if bad.size:
        raise UQInputError(f"counts must be > 0; configuration(s) {_few(bad)} are not")
    order = np.argsort(uu, kind="stable")
    return uu[order], np.cumsum(sq[order]), np.cumsum(c[order])


def coverage_curve(u: ArrayLike, sq_err_sum: ArrayLike, counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy-coverage curve (paper Figs. 2e-f, 3c/e/g): drop the most uncertain configurations first.

    sq_err_sum[i] is configuration i's sum of squared errors over counts[i] values: for forces
    `force_sq_errors` (3·n_atoms components, so the RMSE is atom-weighted); for energies per atom
    pass (ΔE/atom)² and 1. Returns (coverage, rmse), both (n_configs,): coverage = m / n_configs
    (fraction of configurations retained) and rmse = sqrt(Σ sq / Σ counts) over the m
    configurations of lowest U. NaN U counts as the most uncertain.
    """
    _, cs, cc = _coverage_inputs(u, sq_err_sum, counts)
    return np.arange(1, cs.size + 1) / cs.size, np.sqrt(cs / cc)


def rmse_vs_uc(
    u: ArrayLike, sq_err_sum: ArrayLike, counts: ArrayLike, uc_grid: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, rmse) of the retained set {U < U_c} for each U_c of uc_grid (paper Figs. 3d/f/h).

    Inputs as in `coverage_curve`. rmse is NaN where nothing is retained.
    """
    su, cs, cc = _coverage_inputs(u, sq_err_sum, counts)
    grid = np.asarray(uc_grid, dtype=np.float64)
    if np.isnan(grid).any():
        raise UQInputError("uc_grid must not contain NaN")
    m = np.searchsorted(su, grid, side="left")  # number of configurations with U < U_c
    last = np.maximum(m - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.where(m > 0, np.sqrt(cs[last] / cc[last]), np.nan)
    return m / su.size, rmse


def uc_for_target_rmse(u: ArrayLike, sq_err_sum: ArrayLike, counts: ArrayLike, target: float) -> float:
    """Largest U_c whose retained set {U < U_c} has RMSE <= target (eV/Å for forces).

    Inputs as in `coverage_curve`. The RMSE need not grow monotonically with U_c, so a smaller U_c can
    exceed the target. Returns inf when every configuration with a finite U qualifies, and the smallest
    U (nothing retained: everything goes to DFT) when no non-empty retained set does.
    """
    if not target > 0:
        raise UQInputError(f"target RMSE must be > 0, got {target}")
    su, cs, cc = _coverage_inputs(u, sq_err_sum, counts)
    n_finite = int(np.isfinite(su).sum())  # inf and NaN U are never retained
    if n_finite == 0:
        raise UQInputError("no configuration has a finite uncertainty")
    su, cs, cc = su[:n_finite], cs[:n_finite], cc[:n_finite]
    # A retained set {U < U_c} never splits tied U values: prefix m (m configurations) is reachable
    # only where su[m] > su[m-1], and then by any U_c in (su[m-1], su[m]].
    reachable = np.append(su[1:] > su[:-1], True)
    ok = np.flatnonzero(reachable & (np.sqrt(cs / cc) <= target))
    if ok.size == 0:
        return float(su[0])
    m = int(ok[-1]) + 1
    return float("inf") if m == n_finite else float(su[m])
