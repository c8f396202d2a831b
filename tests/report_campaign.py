"""A campaign database written through the Store the way the controller writes it, from the paper's W set:
real geometries, real uMLIP predictions of four members (U from them), the paper's VASP labels for the
configurations routed to DFT (stored as the DFT backend's), the paper's published ACE as every iteration's potential. No uMLIP, DFT or fit runs, so a
database of any size builds in seconds (the report tests and tests/benchmarks/bench_report.py use it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alloop import paper, uq
from alloop.config import Campaign
from alloop.label.reference import EnergyReference
from alloop.state import NewConfiguration, Prediction, Routing, Store
from alloop.structures import atoms_to_json

MEMBERS = (13, 10, 7, 9)  # eSEN-OMat, eqV2-31M-OMat, SevenNet, MACE-OMat (indices in the W npz)
FORCE_MEMBER = 10
PAPER_POTENTIAL = "uq_umlip_W/ace_potentials/2_ensemble_potential_0.yaml"


def _kind(i: int) -> str:
    return "general" if i < 1026 else "dimer" if i < 1039 else "short_range"


def build_campaign_db(
    db: Path,
    shared_data: Path,
    n_configs: int = 120,
    iterations: int = 3,
    u_c: float = 1.0,
    seed: int = 0,
    status: str | None = "max_iterations",
) -> Path:
    """`n_configs` configurations over `iterations` iterations (drawn from the 1129 W configurations, with
    repeats under new hashes when more are asked for), routed by the real U at `u_c`."""
    with np.load(shared_data / "uq_umlip_W" / "W_uq_umlip.npz") as npz:
        d = {k: npz[k] for k in ("model_names", "offsets", "n_atoms", "numbers", "positions", "cells", "pbc", "energy_per_atom_models",
                                 "energy_dft_total", "forces_dft")}
        names = [str(n) for n in d["model_names"]]
        forces = np.stack([npz[paper.w_npz_force_key(names, k)].astype(np.float64) for k in MEMBERS])
    members = [names[k] for k in MEMBERS]
    off, n_atoms = d["offsets"], d["n_atoms"]
    rng = np.random.default_rng(seed)
    # oversample the dimers and short-range cells so every iteration routes some configurations to DFT
    p = np.where(np.arange(len(n_atoms)) < 1026, 1.0, 8.0)
    picks = rng.choice(len(n_atoms), size=n_configs, replace=n_configs > len(n_atoms), p=p / p.sum())
    u_all = uq.uncertainty(forces, off, np.array([paper.PAPER11_RMSE[paper.PAPER11_W_INDICES.index(k)] for k in MEMBERS]))
    potential = str(shared_data / PAPER_POTENTIAL)

    campaign = Campaign(name="w-report", elements=["W"], max_iterations=iterations, uncertainty={"u_c": u_c},
                        labels={"energy_member": members[1], "force_member": names[FORCE_MEMBER]})
    store = Store.open(db)
    try:
        cid = store.open_campaign(campaign.name, campaign.model_dump_json())
        for it, chunk in enumerate(np.array_split(np.arange(n_configs), iterations)):
            store.start_iteration(cid, it)
            new = []
            for j in chunk:
                i = int(picks[j])
                a0, a1 = off[i], off[i + 1]
                geometry = {"numbers": d["numbers"][a0:a1].tolist(), "positions": d["positions"][a0:a1].tolist(),
                            "cell": d["cells"][i].tolist(), "pbc": d["pbc"][i].tolist()}
                new.append(NewConfiguration(f"{seed}-{j}-{i}", _kind(i), int(n_atoms[i]), f"W{n_atoms[i]}", json.dumps(geometry)))
            rejected = [NewConfiguration(f"{seed}-{it}-rejected", "short_range", 2, "W2", atoms_to_json_dimer(0.3), "failed",
                                         "atoms 0 and 1 are 0.30 Å apart (< 0.5 Å)")]
            store.commit_selection(cid, it, new + rejected)
            stored = store.configurations(cid, it, status="selected")
            which = {c.hash: int(c.hash.rsplit("-", 1)[1]) for c in stored}
            store.save_predictions(
                Prediction(c.id, m, float(d["energy_per_atom_models"][k, which[c.hash]] * c.n_atoms),
                           forces[n, off[which[c.hash]]:off[which[c.hash] + 1]])
                for c in stored for n, (k, m) in enumerate(zip(MEMBERS, members))
            )
            routings = []
            for c in stored:
                i = which[c.hash]
                u = float(u_all[i])
                if u < u_c:
                    f = forces[MEMBERS.index(FORCE_MEMBER), off[i]:off[i + 1]]
                    routings.append(Routing(c.id, u, u, u, "umlip", float(d["energy_per_atom_models"][FORCE_MEMBER, i] * c.n_atoms), f,
                                            f"{members[1]}|{names[FORCE_MEMBER]}"))
                else:
                    routings.append(Routing(c.id, u, u, u, "dft", dft_workdir=f"dft/{c.hash}"))
            store.commit_routing(cid, it, routings, 1, u_c, members, "gpaw")
            for k, job in enumerate(store.dft_jobs(cid, it)):
                i = int(job.hash.rsplit("-", 1)[1])
                if k % 9 == 4:  # some calculations fail for good
                    store.fail_dft_job(job.id, "ZBRENT: fatal error in bracketing", max_attempts=1)
                    continue
                if k % 5 == 1:
                    store.fail_dft_job(job.id, "SCF did not converge in NELM=60", max_attempts=3)
                store.complete_dft_job(job.id, "gpaw", float(d["energy_dft_total"][i]), d["forces_dft"][off[i]:off[i + 1]], None,
                                       {"wall_s": 40.0 * n_atoms[i], "cores": 16})
            store.set_stage(cid, it, "train")
            n_train = sum(1 for c in store.configurations(cid) if c.status == "labelled")
            store.save_potential(cid, it, potential, None, n_train,
                                 {"energy_rmse_train": 9.0 / (it + 1), "energy_rmse_test": 12.0 / (it + 1),
                                  "force_rmse_train": 0.3 / (it + 1) ** 0.5, "force_rmse_test": 0.4 / (it + 1) ** 0.5, "n_functions": 72,
                                  "n_excluded": it, "test_sets": {"paper-W-general": {"n_structures": 103, "energy_rmse": 60.0 / (it + 1),
                                                                                    "energy_rmse_centered": 40.0 / (it + 1), "force_rmse": 0.5 / (it + 1)}}},
                                 EnergyReference("fit", {"W": 0.0}, f"{members[1]} (DFT energies shifted by per-element offsets)").to_json())
            gamma = np.exp(rng.normal(np.log(1.5) - 0.4 * it, 0.6, 200))
            store.save_gamma_eval(cid, it, gamma, 1.1, {"mean": float(gamma.mean()), "median": float(np.median(gamma)),
                                                        "p90": float(np.quantile(gamma, 0.9)), "max": float(gamma.max())}, "done")
            store.log_event(cid, it, "warning", "explore", f"iteration {it}: 3 MD runs stopped at γ > 5")
        if status is not None:
            store.finish_campaign(cid, status, f"stopped at max_iterations={iterations} without convergence")
    finally:
        store.close()
    return db


def atoms_to_json_dimer(distance: float) -> str:
    from ase import Atoms

    return atoms_to_json(Atoms("W2", positions=[[0, 0, 0], [0, 0, distance]], cell=[10, 10, 10], pbc=True))
