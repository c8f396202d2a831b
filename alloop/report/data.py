"""A campaign's database as tables for the report: per-iteration counts and the DFT ledger, U and the
true force error ΔF, potentials' errors, γ of fresh candidates. One query per table, numpy/pandas after."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alloop import uq
from alloop.state import ReadOnlyStore, from_blob
from alloop.structures import flatten_forces


@dataclass
class CampaignTables:
    config: dict[str, Any]
    configurations: pd.DataFrame  # one row per configuration: iteration_idx, kind, n_atoms, status, route, u, ...
    dft: pd.DataFrame  # one row per DFT label: energy, forces, meta, ΔF of the force member
    iterations: pd.DataFrame
    potentials: pd.DataFrame
    gamma: pd.DataFrame
    force_member: str | None
    notes: list[str] = field(default_factory=list)


def force_member(config: dict[str, Any]) -> str | None:
    """The member whose forces label low-U configurations (alloop.ensemble.label_members, the loop's rule),
    or None when the campaign's ensemble can no longer be read."""
    from alloop.ensemble import label_members, resolve_ensemble
    from alloop.errors import AlloopError

    labels = config.get("labels") or {}
    try:
        spec = resolve_ensemble(config["ensemble"], check_files=False)
        return label_members(spec, labels.get("energy_member"), labels.get("force_member"))[1]
    except (AlloopError, KeyError):  # an ensemble file moved since the run: ΔF is then left out, not the report
        return labels.get("force_member")


def load_tables(store: ReadOnlyStore, cid: int, config: dict[str, Any]) -> CampaignTables:
    notes: list[str] = []
    member = force_member(config)
    if member is None:
        notes.append("the ensemble of this campaign could not be read: ΔF (true force error) is not shown")
    configs = pd.DataFrame(store.configuration_table(cid))
    if configs.empty:
        configs = pd.DataFrame(columns=["id", "iteration_idx", "kind", "n_atoms", "status", "route", "label_source", "job_status", "job_attempts", "u", "u_c"])
    configs["u"] = pd.to_numeric(configs["u"], errors="coerce")
    dft = pd.DataFrame(store.dft_label_table(cid, member))
    if dft.empty:
        dft = pd.DataFrame(columns=["id", "iteration_idx", "n_atoms", "backend", "energy", "forces", "meta_json", "member_forces"])
    dft["forces"] = [from_blob(b) for b in dft["forces"]]
    dft["meta"] = [json.loads(m) if m else {} for m in dft["meta_json"]]
    dft["delta_f"] = _delta_f(dft)
    return CampaignTables(
        config=config,
        configurations=configs,
        dft=dft,
        iterations=pd.DataFrame(store.iterations(cid)),
        potentials=pd.DataFrame(store.potential_table(cid)),
        gamma=pd.DataFrame(store.gamma_table(cid)),
        force_member=member,
        notes=notes,
    )


def _delta_f(dft: pd.DataFrame) -> np.ndarray:
    """Eq. 5 for every DFT label whose configuration the force member predicted; NaN elsewhere."""
    out = np.full(len(dft), np.nan)
    have = np.flatnonzero(dft["member_forces"].notna().to_numpy()) if len(dft) else np.zeros(0, dtype=int)
    if have.size == 0:
        return out
    ref, offsets = flatten_forces([dft["forces"].iat[k] for k in have])
    pred, _ = flatten_forces([from_blob(dft["member_forces"].iat[k]) for k in have])
    if pred.shape != ref.shape:  # cannot happen for rows the controller wrote; guard a hand-edited database
        return out
    out[have] = uq.force_error(ref, pred, offsets, nan_policy="propagate")
    return out


def _core_hours(meta: dict[str, Any]) -> float:
    """Core-hours of one DFT calculation where its backend reports them (`core_hours`, or `wall_s` with
    `cores`); NaN otherwise."""
    if "core_hours" in meta:
        return float(meta["core_hours"])
    if "wall_s" in meta and "cores" in meta:
        return float(meta["wall_s"]) * float(meta["cores"]) / 3600.0
    return np.nan


def iteration_table(t: CampaignTables) -> pd.DataFrame:
    """Per iteration: configurations stored, rejected and selected; routed to uMLIP and DFT by
    configurations and atoms; DFT jobs by outcome; the cumulative DFT ledger."""
    c = t.configurations
    its = sorted(set(t.iterations["idx"].tolist() if len(t.iterations) else []) | set(c["iteration_idx"].tolist()))
    rejected = (c["status"] == "failed") & c["route"].isna()
    g = pd.DataFrame({"iteration": its}).set_index("iteration")
    by_it = c.groupby("iteration_idx")
    g["stored"] = by_it.size()
    g["rejected"] = rejected.groupby(c["iteration_idx"]).sum()
    g["selected"] = g["stored"] - g["rejected"]
    for route in ("umlip", "dft"):
        on = c["route"] == route
        g[f"{route}_configs"] = on.groupby(c["iteration_idx"]).sum()
        g[f"{route}_atoms"] = c["n_atoms"].where(on, 0).groupby(c["iteration_idx"]).sum()
    jobs = c["job_status"]
    g["dft_done"] = (jobs == "done").groupby(c["iteration_idx"]).sum()
    g["dft_pending"] = jobs.isin(["queued", "running"]).groupby(c["iteration_idx"]).sum()
    g["dft_quarantined"] = jobs.isin(["quarantined", "failed"]).groupby(c["iteration_idx"]).sum()
    g["dft_failed_attempts"] = pd.to_numeric(c["job_attempts"], errors="coerce").fillna(0).groupby(c["iteration_idx"]).sum()
    labelled = c["label_source"].notna()
    for source in ("umlip", "dft"):
        g[f"{source}_label_atoms"] = c["n_atoms"].where(c["label_source"] == source, 0).groupby(c["iteration_idx"]).sum()
    g["label_atoms"] = c["n_atoms"].where(labelled, 0).groupby(c["iteration_idx"]).sum()
    g = g.apply(pd.to_numeric).fillna(0).astype(int)  # object columns (an empty group) are numbers first
    d = t.dft
    wall = pd.Series([float(m.get("wall_s", np.nan)) for m in d["meta"]], index=d.index, dtype=float) / 3600.0  # float even when empty
    core = pd.Series([_core_hours(m) for m in d["meta"]], index=d.index, dtype=float)
    g["dft_wall_h"] = wall.groupby(d["iteration_idx"]).sum(min_count=1).reindex(g.index)
    g["dft_core_h"] = core.groupby(d["iteration_idx"]).sum(min_count=1).reindex(g.index)
    g["cum_dft_atoms"] = g["dft_label_atoms"].cumsum()
    g["cum_dft_wall_h"] = g["dft_wall_h"].fillna(0).cumsum().where(g["dft_wall_h"].notna().cumsum() > 0)
    g["cum_dft_core_h"] = g["dft_core_h"].fillna(0).cumsum().where(g["dft_core_h"].notna().cumsum() > 0)
    cum_atoms = g["label_atoms"].cumsum()
    g["cum_dft_share_atoms"] = (g["cum_dft_atoms"] / cum_atoms.where(cum_atoms > 0)).astype(float)
    if len(t.iterations):
        g["stage"] = t.iterations.set_index("idx")["stage"].reindex(g.index)
    else:
        g["stage"] = None
    return g.reset_index()


def kinds_table(t: CampaignTables) -> pd.DataFrame:
    """Configurations stored per iteration and kind (generated candidates that passed selection or were
    rejected as unphysical)."""
    c = t.configurations
    if c.empty:
        return pd.DataFrame()
    return pd.crosstab(c["iteration_idx"], c["kind"]).rename_axis(index="iteration", columns=None)


def potential_table(t: CampaignTables) -> pd.DataFrame:
    p = t.potentials
    if p.empty:
        return pd.DataFrame()
    metrics = pd.DataFrame([json.loads(m) for m in p["metrics_json"]])
    keep = [k for k in ("energy_rmse_train", "energy_rmse_test", "force_rmse_train", "force_rmse_test", "n_functions", "n_iterations", "n_excluded") if k in metrics]
    out = pd.concat([p[["iteration_idx", "n_train"]].reset_index(drop=True), metrics[keep].apply(pd.to_numeric, errors="coerce")], axis=1)
    # the external test sets (train.test_sets): `energy_rmse_<name>` without the mean offset, `force_rmse_<name>`
    scored = [json.loads(m).get("test_sets") or {} for m in p["metrics_json"]]
    for name in dict.fromkeys(n for s in scored for n in s if isinstance(s.get(n), dict)):
        out[f"energy_rmse_{name}"] = [s.get(name, {}).get("energy_rmse_centered", np.nan) for s in scored]
        out[f"force_rmse_{name}"] = [s.get(name, {}).get("force_rmse", np.nan) for s in scored]
    return out.rename(columns={"iteration_idx": "iteration"})


def test_set_names(potentials: pd.DataFrame) -> list[str]:
    """The external test sets scored in a potential_table."""
    return [c[len("force_rmse_"):] for c in potentials.columns if c.startswith("force_rmse_") and c not in ("force_rmse_train", "force_rmse_test")]


def gamma_table(t: CampaignTables) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    g = t.gamma
    if g.empty:
        return pd.DataFrame(), {}
    stats = pd.DataFrame([json.loads(s) for s in g["stats_json"]])
    table = pd.concat([g[["iteration_idx", "n_candidates", "threshold", "share_above"]].reset_index(drop=True), stats], axis=1)
    values = {int(i): from_blob(b) for i, b in zip(g["iteration_idx"], g["gamma_max"])}
    return table.rename(columns={"iteration_idx": "iteration"}), values
