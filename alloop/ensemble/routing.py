"""Where each scored configuration's label comes from: the paper's strict U < U_c goes to the uMLIP
(energies of the energy member, forces of the force member), everything else to DFT.

U is `EnsemblePredictions.uncertainty`, the same computation `alloop score` writes: only the members
with `in_u`, Eq. (2) weights from their RMSEs (equal weights only when the ensemble gives none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alloop.ensemble.results import EnsemblePredictions
from alloop.uq import partition


@dataclass(frozen=True)
class Routing:
    u: dict[int, np.ndarray]  # variant 0/1/2 -> (n,) eV/Å, NaN where not computable
    to_umlip: np.ndarray  # (n,) bool
    energies: np.ndarray  # (n,) the energy member's total energies, eV
    forces: list[np.ndarray]  # the force member's forces, eV/Å
    reasons: list[str | None]  # why a configuration goes to DFT other than its U
    forced: np.ndarray | None = None  # (n,) bool: labelled by DFT whatever its U (energy-reference calibration)
    too_large: np.ndarray | None = None  # (n,) bool: DFT-bound by U but above dft_max_atoms: left unlabelled
    over_budget: np.ndarray | None = None  # (n,) bool: DFT-bound by U beyond the iteration's dft_budget_atoms: left unlabelled

    def skipped(self, k: int) -> bool:
        return any(a is not None and bool(a[k]) for a in (self.too_large, self.over_budget))


def route(
    preds: EnsemblePredictions,
    u_c: float,
    variant: int,
    energy_member: str,
    force_member: str,
    force_dft: Sequence[str | None] | np.ndarray | None = None,
    dft_max_atoms: int | None = None,
    dft_budget_atoms: int | None = None,
) -> Routing:
    """Route every configuration of `preds`; `force_dft` gives, per configuration, why it needs DFT whatever its U
    (dft_by_kind), or None; a boolean array marks energy-reference calibration cells. A configuration that U
    sends to DFT but has more than `dft_max_atoms` atoms is left unlabelled (`too_large`, with its reason): the
    DFT budget goes to cells it can afford; cells sent by kind or for calibration are exempt (they are small on
    purpose). `dft_budget_atoms` caps the iteration's DFT in atoms: the forced cells count first, then the cells
    U sends go by U, highest first (U not computable counts as highest), each taken while it still fits; the
    rest are left unlabelled (`over_budget`, with the reason)."""
    n = preds.n_structures
    u = {v: preds.uncertainty(v) for v in (0, 1, 2)}
    e_k, f_k = preds.index(energy_member), preds.index(force_member)
    off = preds.offsets
    energies = preds.energies[e_k]
    forces = [preds.forces[f_k, off[i] : off[i + 1]] for i in range(n)]
    labels_ok = np.isfinite(energies) & np.array([np.isfinite(f).all() for f in forces], dtype=bool)
    if force_dft is None:
        why_forced: list[str | None] = [None] * n
    elif isinstance(force_dft, np.ndarray) and force_dft.dtype == bool:
        why_forced = [CALIBRATION_REASON if f else None for f in force_dft]
    else:
        why_forced = list(force_dft)
    forced = np.array([w is not None for w in why_forced], dtype=bool)
    to_umlip = partition(u[variant], u_c) & labels_ok & ~forced
    reasons: list[str | None] = []
    for i in range(n):
        errors = preds.structure_errors(i)
        if forced[i]:
            reasons.append(why_forced[i])
        elif not np.isfinite(u[variant][i]):
            reasons.append("U not computable (" + "; ".join(errors or ["missing predictions"]) + "): sent to DFT")
        elif not labels_ok[i] and u[variant][i] < u_c:
            reasons.append("label members failed (" + "; ".join(errors or ["no prediction"]) + "): sent to DFT")
        else:
            reasons.append(None)
    n_atoms = np.diff(off)
    too_large = ~to_umlip & ~forced & (n_atoms > dft_max_atoms) if dft_max_atoms is not None else np.zeros(n, dtype=bool)
    for i in np.flatnonzero(too_large):
        reasons[i] = (f"U = {u[variant][i]:.2f} eV/Å needs DFT, but its {n_atoms[i]} atoms exceed selection.dft_max_atoms = "
                      f"{dft_max_atoms}: not labelled")
    over_budget = np.zeros(n, dtype=bool)
    if dft_budget_atoms is not None:
        left = dft_budget_atoms - int(n_atoms[forced].sum())
        by_u = np.flatnonzero(~to_umlip & ~forced & ~too_large)
        for i in by_u[np.argsort(-np.nan_to_num(u[variant][by_u], nan=np.inf), kind="stable")]:
            if n_atoms[i] <= left:
                left -= int(n_atoms[i])
            else:
                over_budget[i] = True
                reasons[i] = (f"U = {u[variant][i]:.2f} eV/Å needs DFT, but its {n_atoms[i]} atoms do not fit in what is left of "
                              f"selection.dft_budget_atoms = {dft_budget_atoms} this iteration (higher U first): not labelled")
    return Routing(u, to_umlip, energies, forces, reasons, forced, too_large, over_budget)


CALIBRATION_REASON = "energy-reference calibration: labelled by DFT whatever its U"


def dft_by_kind(kinds: Sequence[str], dft_kinds: Sequence[str], calibration_kind: str) -> list[str | None]:
    """Per configuration, why its kind goes to DFT whatever its U, or None: the energy-reference calibration cells,
    and the kinds of uncertainty.dft_kinds (a force-based U cannot judge a nearly force-free dimer)."""
    out: list[str | None] = []
    for kind in kinds:
        if kind == calibration_kind:
            out.append(CALIBRATION_REASON)
        elif kind in dft_kinds:
            out.append(f"a {kind}: a kind a force-based U cannot judge, labelled by DFT whatever its U (uncertainty.dft_kinds)")
        else:
            out.append(None)
    return out


# ---------------------------------------------------------------------- what stops an iteration before DFT
@dataclass(frozen=True)
class MemberFailure:
    """A member that cannot be trusted to run: it failed on a whole batch (it could not load or raised on
    everything: a missing or corrupt checkpoint, a dead environment, a worker that kept dying) or on more than
    the allowed share of an iteration's configurations."""

    member: str
    n_failed: int  # configurations without its prediction
    n_total: int
    error: str  # the whole-batch error, else its most frequent per-structure reason
    whole_batch: bool

    def describe(self) -> str:
        """One line: the member, how much of the iteration it failed on, and its error."""
        what = "failed on a whole prediction batch" if self.whole_batch else "failed"
        error = " ".join(self.error.split()).rstrip(".")
        return f"member '{self.member}' {what} ({self.n_failed} of {self.n_total} configurations without its prediction): {error}"


def failing_members(
    errors: dict[str, dict[int, str]],
    n_total: int,
    members: list[str] | tuple[str, ...],
    max_share: float,
    batch_errors: dict[str, tuple[str, int]] | None = None,
) -> list[MemberFailure]:
    """The members among `members` whose failures stop the iteration before any DFT is spent: each one with a
    whole-batch error (`batch_errors`: member -> (reason, configurations in its failed batches)) or per-structure
    `errors` (member -> structure -> reason) on more than `max_share` of the `n_total` configurations. A member
    that fails on a few structures passes: those configurations go to DFT with their reason (`route`)."""
    out = []
    for m in members:
        errs = errors.get(m, {})
        batch = (batch_errors or {}).get(m)
        n_failed = len(errs)
        if batch is not None:
            out.append(MemberFailure(m, n_failed + batch[1], n_total, batch[0], True))
        elif n_total and n_failed / n_total > max_share:
            reasons = list(errs.values())
            common = max(set(reasons), key=reasons.count)
            out.append(MemberFailure(m, n_failed, n_total, f"e.g. {common}", False))
    return out


def dft_without_u(routing: Routing, u_c: float, variant: int) -> np.ndarray:
    """(n,) bool: configurations `route` sends to DFT for want of U or of a uMLIP label, not because U >= U_c
    (nor the energy-reference calibration cells, which DFT labels whatever their U)."""
    u = routing.u[variant]
    calibration = np.zeros(len(u), dtype=bool) if routing.forced is None else np.asarray(routing.forced, dtype=bool)
    return ~routing.to_umlip & ~calibration & ~(np.isfinite(u) & (u >= u_c))


def spending_stop(routing: Routing, u_c: float, variant: int, max_share: float) -> str | None:
    """Why the iteration stops rather than send its configurations to DFT, or None: more than `max_share` of
    them would go to DFT for want of U (`dft_without_u`)."""
    want = dft_without_u(routing, u_c, variant)
    n = len(want)
    if not n or want.sum() / n <= max_share:
        return None
    reasons = [r for r, w in zip(routing.reasons, want) if w and r]
    common = max(set(reasons), key=reasons.count) if reasons else "no U"
    return (f"{int(want.sum())} of {n} configurations ({want.sum() / n:.0%}) would go to DFT for want of U, more than "
            f"guard.max_dft_share_without_u = {max_share:.0%}; e.g. {common}")
