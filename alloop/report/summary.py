"""What `alloop status` says about a campaign, as one dictionary (also the head of `alloop report`)."""

from __future__ import annotations

import json
import time
from typing import Any

from alloop.state import ReadOnlyStore


def summarize(store: ReadOnlyStore, n_events: int = 8) -> dict[str, Any]:
    """State, label counts, DFT queue, γ trend, current potential and recent events of the store's campaign.
    Reads only: works on a read-only store."""
    camp = store.campaign()
    cid = camp["id"]
    cfg = json.loads(camp["config_json"])
    it = store.current_iteration(cid)
    counts = store.counts(cid)
    pot = store.latest_potential(cid)
    gamma = store.gamma_history(cid)
    events = store.events(cid, n_events)
    atoms = counts["label_atoms"]
    total_atoms = sum(atoms.values())
    return {
        "campaign": camp["name"],
        "status": camp["status"],
        "converged": camp["status"] == "converged",
        "message": camp["message"],
        "database": str(store.path),
        "iteration": None if it is None else it[0],
        "stage": None if it is None else it[1],
        "max_iterations": cfg.get("max_iterations"),
        "configurations": counts["configurations"],
        "n_configurations": sum(counts["configurations"].values()),
        "kinds": counts["kinds"],
        "sources": counts["sources"],
        "labels": counts["labels"],
        "dft_fraction_by_atoms": (atoms.get("dft", 0) / total_atoms) if total_atoms else None,
        "dft_jobs": counts["dft_jobs"],
        "potential": None if pot is None else {"path": pot["path"], "active_set": pot["active_set"], "iteration": pot["iteration_idx"], "n_train": pot["n_train"], "metrics": json.loads(pot["metrics_json"]), "energy_reference": json.loads(pot["references_json"] or "{}")},
        "final_potential": _final(store, cid),
        "learning_curve": learning_curve(store, cid),
        "gamma": [{"iteration": g["iteration_idx"], "n_candidates": g["n_candidates"], "threshold": g["threshold"], "share_above": g["share_above"], **g["stats"]} for g in gamma],
        "events": [{"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts"])), **{k: e[k] for k in ("iteration_idx", "level", "kind", "message")}} for e in events],
    }


def _final(store: ReadOnlyStore, cid: int) -> dict[str, Any] | None:
    """The campaign's final potential (pending while its fit runs), or None before the campaign ends."""
    f = store.final_potential(cid)
    if f is None:
        return None
    return {"path": f["path"], "active_set": f["active_set"], "iteration": f["iteration_idx"], "n_train": f["n_train"],
            "pending": f["path"] is None, "outcome": f["outcome"], "metrics": f["metrics"]}


def learning_curve(store: ReadOnlyStore, cid: int) -> list[dict[str, Any]]:
    """Per potential, the final one last (`final`: true): its training errors, its errors on each external test
    set (train.test_sets) and the DFT atoms labelled and the DFT wall hours (the calculations' own run times) up to
    its iteration."""
    pots = store.potential_table(cid)
    final = store.final_potential(cid)
    if final is not None and final["path"] is not None:
        pots = {"iteration_idx": [*pots["iteration_idx"], final["iteration_idx"]], "n_train": [*pots["n_train"], final["n_train"]],
                "metrics_json": [*pots["metrics_json"], json.dumps(final["metrics"])]}
    dft = store.dft_spent_by_iteration(cid)
    out = []
    n_iterations = len(pots["iteration_idx"]) - (final is not None and final["path"] is not None)
    for k, (it, n_train, metrics_json) in enumerate(zip(pots["iteration_idx"], pots["n_train"], pots["metrics_json"])):
        m = json.loads(metrics_json)
        walls = [w for i, (_, w) in dft.items() if i <= it and w is not None]
        out.append({"iteration": it, "n_train": n_train, "dft_atoms": sum(n for i, (n, _) in dft.items() if i <= it),
                    "dft_wall_h": sum(walls) / 3600.0 if walls else None,
                    "energy_rmse_train": m.get("energy_rmse_train"), "force_rmse_train": m.get("force_rmse_train"),
                    "n_excluded": m.get("n_excluded"), "warm_start": m.get("warm_start"), "test_sets": m.get("test_sets", {}),
                    "final": k >= n_iterations})
    return out
