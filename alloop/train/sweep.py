"""The paper's Fig. 4b as a computation: for each threshold U_c, the mixed label set (uMLIP labels for
U < U_c, DFT for the rest), an ACE fit on it, and its errors against DFT.

Inputs are plain arrays of one campaign's configurations that all have DFT labels and the label
members' predictions; `alloop sweep` reads them from the database and records every fit there, so an
interrupted sweep resumes without refitting. The same held-out test split, chosen once by seed, is
kept out of every fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alloop.label.mixing import corrected_energies, label_frame
from alloop.label.reference import EnergyReference
from alloop.train.evaluate import error_metrics
from alloop.train.settings import FitSettings
from alloop.uq import partition

#: The keys of every sweep row (energies meV/atom, forces eV/Å, shares 0..1).
ROW_KEYS = (
    "u_c", "seed", "n_configs", "n_train", "n_test", "dft_share_configs", "dft_share_atoms",
    "label_rmse_e", "label_rmse_f", "train_rmse_e", "train_rmse_f", "all_rmse_e", "all_rmse_f",
    "test_rmse_e", "test_rmse_f",
)


@dataclass(frozen=True)
class SweepData:
    """n configurations with DFT labels, the label members' predictions and U (campaign variant)."""

    structures: list[Atoms]
    u: np.ndarray  # (n,) eV/Å, NaN where not computable (always DFT)
    e_dft: np.ndarray  # (n,) total eV
    f_dft: list[np.ndarray]
    e_umlip: np.ndarray  # (n,) the energy member's total energies
    f_umlip: list[np.ndarray]  # the force member's forces
    reference: EnergyReference

    @property
    def n_atoms(self) -> np.ndarray:
        return np.array([len(a) for a in self.structures], dtype=np.float64)


def held_out_split(n: int, fraction: float, seed: int) -> np.ndarray:
    """(n,) bool: the held-out configurations, the same for every U_c and fit seed."""
    test = np.zeros(n, dtype=bool)
    k = int(round(fraction * n))
    if k:
        test[np.random.default_rng([seed, 4242]).choice(n, size=k, replace=False)] = True
    return test


def uses_dft(data: SweepData, u_c: float) -> np.ndarray:
    """(n,) bool: labelled by DFT at this U_c: not `alloop.uq.partition`'s strict U < U_c, the rule the
    loop routes by (a NaN U goes to DFT)."""
    return ~partition(data.u, u_c)


def sweep_frame(data: SweepData, u_c: float, train: np.ndarray) -> Any:
    """The pacemaker frame of the mixed label set at `u_c`, on the training configurations."""
    dft = uses_dft(data, u_c)
    idx = np.flatnonzero(train)
    energies = np.where(dft, data.e_dft, data.e_umlip)[idx]
    forces = [data.f_dft[i] if dft[i] else data.f_umlip[i] for i in idx]
    return label_frame([data.structures[i] for i in idx], energies, forces, dft[idx], data.reference)


def fit_settings(settings: FitSettings, seed: int, maxiter: int | None) -> FitSettings:
    """The campaign's fit settings for sweep fit `seed`: no internal test split (the sweep holds its own
    out), one committee member, and optionally a capped optimizer."""
    update: dict[str, Any] = {"seed": settings.seed + seed, "test_fraction": 0.0, "committee": 1}
    if maxiter is not None:
        update["maxiter"] = maxiter
    return settings.model_copy(update=update)


def sweep_row(
    data: SweepData,
    u_c: float,
    seed: int,
    train: np.ndarray,
    e_ace: np.ndarray,
    f_ace: Sequence[np.ndarray],
) -> dict[str, Any]:
    """One row of the table from the ACE predictions on every configuration."""
    n = data.n_atoms
    dft = uses_dft(data, u_c)
    all_dft = np.ones_like(dft)
    e_ref = corrected_energies(data.structures, data.e_dft, all_dft, data.reference) / n  # DFT on the training scale
    e_lab = corrected_energies(data.structures, np.where(dft, data.e_dft, data.e_umlip), dft, data.reference) / n
    f_lab = [data.f_dft[i] if dft[i] else data.f_umlip[i] for i in range(len(n))]
    e_pred = np.asarray(e_ace) / n

    def err(mask: np.ndarray, e_target: np.ndarray, f_target: Sequence[np.ndarray], e_model: np.ndarray, f_model: Sequence[np.ndarray]) -> tuple[float | None, float | None]:
        if not mask.any():
            return None, None
        idx = np.flatnonzero(mask)
        m = error_metrics(e_target[idx], e_model[idx], np.concatenate([f_target[i] for i in idx]), np.concatenate([f_model[i] for i in idx]))
        return m["energy_rmse"], m["force_rmse"]

    test = ~train
    label = err(train, e_ref, data.f_dft, e_lab, f_lab)
    fit = err(train, e_lab, f_lab, e_pred, f_ace)
    everything = err(np.ones_like(train), e_ref, data.f_dft, e_pred, f_ace)
    held = err(test, e_ref, data.f_dft, e_pred, f_ace)
    return {
        "u_c": u_c, "seed": seed, "n_configs": int(len(n)), "n_train": int(train.sum()), "n_test": int(test.sum()),
        "dft_share_configs": float(dft[train].mean()),
        "dft_share_atoms": float(n[train & dft].sum() / n[train].sum()),
        "label_rmse_e": label[0], "label_rmse_f": label[1], "train_rmse_e": fit[0], "train_rmse_f": fit[1],
        "all_rmse_e": everything[0], "all_rmse_f": everything[1], "test_rmse_e": held[0], "test_rmse_f": held[1],
    }


def fit_dir(root: Path, u_c: float, seed: int) -> Path:
    return Path(root) / f"uc-{format_uc(u_c)}" / f"seed-{seed}"


def format_uc(u_c: float) -> str:
    return "inf" if math.isinf(u_c) else f"{u_c:g}"


def mean_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows averaged over seeds, one per U_c (ascending), with n_seeds."""
    out = []
    for u_c in sorted({r["u_c"] for r in rows}):
        group = [r for r in rows if r["u_c"] == u_c]
        mean: dict[str, Any] = {"u_c": u_c, "n_seeds": len(group)}
        for key in ROW_KEYS[2:]:
            values = [r[key] for r in group if r.get(key) is not None]
            mean[key] = float(np.mean(values)) if values else None
        out.append(mean)
    return out


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Text table of `mean_rows` output."""
    head = (f"{'U_c':>6} {'seeds':>5} {'DFT cfg':>8} {'DFT atoms':>9} | {'label E':>8} {'label F':>8} | "
            f"{'train E':>8} {'train F':>8} | {'all E':>8} {'all F':>8} | {'test E':>8} {'test F':>8}")
    units = f"{'eV/Å':>6} {'':>5} {'share':>8} {'share':>9} | {'meV/at':>8} {'eV/Å':>8} | " + " | ".join([f"{'meV/at':>8} {'eV/Å':>8}"] * 3)

    def f(x: float | None, fmt: str) -> str:
        return f"{x:{fmt}}" if x is not None else f"{'-':>8}"

    lines = [head, units]
    for r in rows:
        lines.append(
            f"{format_uc(r['u_c']):>6} {r['n_seeds']:>5} {r['dft_share_configs']:>8.4f} {r['dft_share_atoms']:>9.5f} | "
            f"{f(r['label_rmse_e'], '8.2f')} {f(r['label_rmse_f'], '8.4f')} | {f(r['train_rmse_e'], '8.2f')} "
            f"{f(r['train_rmse_f'], '8.4f')} | {f(r['all_rmse_e'], '8.2f')} {f(r['all_rmse_f'], '8.4f')} | "
            f"{f(r['test_rmse_e'], '8.2f')} {f(r['test_rmse_f'], '8.4f')}"
        )
    return "\n".join(lines)
