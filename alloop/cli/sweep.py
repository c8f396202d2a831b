"""`alloop sweep CAMPAIGN.yaml --u-c 0 0.1 0.5 1 10 inf`: DFT share and ACE error per U_c (paper Fig. 4b)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from alloop.errors import AlloopError, StateError

DEFAULT_UC = (0.0, 0.1, 0.5, 1.0, 10.0, math.inf)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="fit ACE on the mixed label set of each U_c and report DFT share and errors (the paper's Fig. 4b)",
        description=(
            "For a campaign whose scored configurations all have DFT labels (run, or replayed from a data set by "
            "a replay DFT backend), build for each U_c the mixed label set (uMLIP labels where U < U_c, DFT "
            "elsewhere, energies on the campaign's frozen energy reference), fit ACE with the campaign's train "
            "settings, and report per U_c: DFT share by configurations and by atoms, label error vs DFT, ACE "
            "training error, ACE error vs DFT on all configurations and on a held-out test split that no fit "
            "saw. Energies in meV/atom, forces in eV/Å (per component). Every fit is recorded in the campaign "
            "database: rerunning resumes and never refits."
        ),
    )
    p.add_argument("campaign", help="campaign YAML file")
    p.add_argument("--u-c", nargs="+", type=float, default=list(DEFAULT_UC), metavar="UC",
                   help="thresholds in eV/Å; 0 = all DFT, inf = all uMLIP (default: 0 0.1 0.5 1 10 inf)")
    p.add_argument("--seeds", type=int, default=1, help="independent fits per U_c (the paper: 5; default 1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="configurations held out of every fit (default 0.1)")
    p.add_argument("--maxiter", type=int, help="cap the optimizer's iterations (default: the campaign's train.maxiter)")
    p.add_argument("--subsample", type=int, help="use this many configurations, drawn with the campaign's seed")
    p.add_argument("--json", action="store_true", help="print the rows (per fit and averaged) as JSON")
    p.add_argument("--csv", metavar="FILE", help="also write the per-fit rows as CSV")
    p.add_argument("--plot", metavar="PNG", help="also draw DFT share and test errors against U_c")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        rows = sweep(args)
    except AlloopError as exc:
        _say(f"alloop sweep: {exc}")
        return 2
    from alloop.train.sweep import mean_rows, table

    means = mean_rows(rows)
    if args.csv:
        from alloop.train.sweep import ROW_KEYS

        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ROW_KEYS))
            w.writeheader()
            w.writerows(rows)
        _say(f"wrote {args.csv}")
    if args.plot:
        from alloop.report.plots import sweep_plot

        _say(f"wrote {sweep_plot(means, Path(args.plot))}")
    print(json.dumps({"fits": rows, "mean": means}, indent=1) if args.json else table(means))
    return 0


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    from alloop.config import load_campaign
    from alloop.ensemble import label_members, resolve_ensemble
    from alloop.state import Store
    from alloop.state.db import latest_version
    from alloop.train import fit_ace, predict, training_frame
    from alloop.train.frame import fit_fingerprint
    from alloop.train.sweep import fit_dir, fit_settings, format_uc, held_out_split, sweep_frame, sweep_row

    campaign = load_campaign(args.campaign)
    if not campaign.database_path.is_file():
        raise StateError(f"no campaign database at {campaign.database_path}: run `alloop run {args.campaign}` first")
    ens = resolve_ensemble(campaign.ensemble, check_files=False)
    energy_member, force_member = label_members(ens, campaign.labels.energy_member, campaign.labels.force_member)
    # reads go through a read-only connection (no write lock, never waits on a running controller); the one
    # write, each finished fit's row in the sweep's own table, through a writer that does not migrate
    store = Store.open_readonly(campaign.database_path)
    writer = None
    try:
        if store.schema_version != latest_version():
            raise StateError(f"database schema version {store.schema_version} of {campaign.database_path} is not this "
                             f"alloop's ({latest_version()}); `alloop sweep` writes only its own table and never migrates: "
                             "`alloop run` migrates it")
        writer = Store.open_existing(campaign.database_path)  # current schema: opening it only reads the version
        cid = int(store.campaign(campaign.name)["id"])
        data = _sweep_data(campaign, store, cid, energy_member, force_member, args.subsample)
        test = held_out_split(len(data.structures), args.test_fraction, campaign.seed)
        _say(f"sweep over {len(data.structures)} configurations ({int(data.n_atoms.sum())} atoms; {int(test.sum())} held out), "
             f"U_c = {', '.join(format_uc(u) for u in args.u_c)}, {args.seeds} fit(s) each; energies on the scale of "
             f"{data.reference.energy_scale}")
        elements = list(campaign.elements)
        rows = []
        for u_c in args.u_c:
            frame = sweep_frame(data, u_c, ~test)
            for seed in range(args.seeds):
                settings = fit_settings(campaign.train, seed, args.maxiter)
                fp = fit_fingerprint(training_frame(frame, sorted(set(elements))), settings, sorted(set(elements)))
                done = store.sweep_fit(cid, u_c, seed, fp)
                if done is not None:
                    _say(f"  U_c = {format_uc(u_c)}, seed {seed}: recorded, not refitted ({done['potential']})")
                    rows.append(done["metrics"])
                    continue
                wd = fit_dir(campaign.workdir / "sweep", u_c, seed)
                _say(f"  U_c = {format_uc(u_c)}, seed {seed}: fitting on {len(frame)} configurations "
                     f"({int((frame['source'] == 'dft').sum())} DFT labels) in {wd}")
                res = fit_ace(frame, settings, wd, elements)
                e_ace, f_ace = predict(res.potential_yaml, data.structures)
                row = sweep_row(data, u_c, seed, ~test, e_ace, f_ace)
                writer.save_sweep_fit(cid, u_c, seed, fp, str(wd), str(res.potential_yaml), row)
                _say(f"    test RMSE {row['test_rmse_e']} meV/atom, {row['test_rmse_f']} eV/Å")
                rows.append(row)
    finally:
        store.close()
        if writer is not None:
            writer.close()
    return rows


def _sweep_data(campaign: Any, store: Any, cid: int, energy_member: str, force_member: str, subsample: int | None) -> Any:
    """The campaign's scored configurations with DFT labels (from the database, or replayed when the DFT
    backend is a replay set) and the label members' predictions."""
    from alloop.label.reference import EnergyReference, fit_energy_reference
    from alloop.structures import atoms_from_json
    from alloop.train.sweep import SweepData

    rows = [r for r in store.sweep_inputs(cid, energy_member, force_member)]
    if not rows:
        raise StateError("the campaign has no scored configurations yet: run it first")
    if subsample is not None and subsample < len(rows):
        keep = np.sort(np.random.default_rng([campaign.seed, 777]).choice(len(rows), size=subsample, replace=False))
        rows = [rows[i] for i in keep]
    structures = [atoms_from_json(r["atoms_json"]) for r in rows]
    _fill_dft(campaign, rows, structures)
    missing = [r["id"] for r in rows if r["e_umlip"] is None or r["f_umlip"] is None]
    if missing:
        raise StateError(f"{len(missing)} configuration(s) lack a prediction of {energy_member} or {force_member} "
                         f"(e.g. ids {missing[:5]}): a sweep needs both for every configuration")
    e_dft = np.array([r["e_dft"] for r in rows], dtype=np.float64)
    e_umlip = np.array([r["e_umlip"] for r in rows], dtype=np.float64)
    u = np.array([np.nan if r["u"] is None else r["u"] for r in rows], dtype=np.float64)
    stored = store.energy_reference(cid)
    if stored is not None:
        reference = EnergyReference.from_json(stored)
    else:  # no potential yet: fit the reference the campaign would, on the low-U configurations
        reference = fit_energy_reference(campaign.labels.energy_reference, energy_member, structures, e_dft, e_umlip, u,
                                         campaign.uncertainty.u_c, campaign.elements)
    return SweepData(structures, u, e_dft, [r["f_dft"] for r in rows], e_umlip, [r["f_umlip"] for r in rows], reference)


def _fill_dft(campaign: Any, rows: list[dict[str, Any]], structures: list[Any]) -> None:
    """DFT labels for the configurations that were labelled by the uMLIP: replayed from the campaign's
    replay set, or an error saying how many are missing."""
    todo = [k for k, r in enumerate(rows) if r["e_dft"] is None]
    if not todo:
        return
    dft = campaign.labels.dft
    if dft.backend != "replay" or dft.replay is None:
        raise StateError(
            f"{len(todo)} of {len(rows)} configurations have no DFT label (they were labelled by the uMLIP) and the "
            f"campaign's DFT backend '{dft.backend}' is not a replay set: a sweep compares against DFT on every "
            "configuration; point labels.dft at a replay set holding them"
        )
    from alloop.label.replay import replay_index

    index = replay_index(dft.replay.sources)
    lost = []
    for k in todo:
        found = index.find(structures[k])
        if found is None:
            lost.append(rows[k]["id"])
            continue
        rows[k]["e_dft"], rows[k]["f_dft"] = found[0].energy, found[0].forces
    if lost:
        raise StateError(f"{len(lost)} configuration(s) are not in the replay set (e.g. ids {lost[:5]})")
