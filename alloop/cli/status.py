"""`alloop status CAMPAIGN_OR_DB [--json]`: where a campaign stands, from its database alone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from alloop.errors import AlloopError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="show a campaign's iteration, stage, labels, DFT queue, γ trend and current potential",
        description="Summarise a campaign from its database (safe while `alloop run` is running).",
    )
    p.add_argument("target", help="campaign YAML file or its SQLite database")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--events", type=int, default=8, help="how many recent events to show (default 8)")
    p.add_argument("--plot", metavar="PNG", help="also write the γ-share trend over iterations as a PNG")
    p.set_defaults(func=run)


def _database(target: str) -> Path:
    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        from alloop.config import load_campaign

        return load_campaign(path, check_ensemble=False).database_path
    return path


def collect(db: Path, n_events: int = 8) -> dict[str, Any]:
    from sqlalchemy.exc import DBAPIError

    from alloop.errors import StateError
    from alloop.report.summary import summarize
    from alloop.state import Store

    store = Store.open_readonly(db)  # never migrates, never takes or waits on the write lock
    try:
        return summarize(store, n_events)
    except DBAPIError as exc:
        raise StateError(store._unreadable(exc)) from exc
    finally:
        store.close()


def _text(s: dict[str, Any]) -> str:
    lines = [f"campaign {s['campaign']}: {s['status']}" + (" (converged)" if s["converged"] else "")]
    if s["message"]:
        lines.append(f"  {s['message']}")
    lines.append(f"  iteration {s['iteration']} of max {s['max_iterations']}, stage: {s['stage']}")
    cfgs = ", ".join(f"{k} {v}" for k, v in sorted(s["configurations"].items())) or "none"
    lines.append(f"  configurations: {cfgs}")
    lines.append("  by kind: " + (", ".join(f"{k} {v}" for k, v in sorted(s["kinds"].items())) or "none"))
    for src in s["sources"]:
        lines.append(f"    from {src['file']}" + (f" [{src['group']}]" if src["group"] else "")
                     + f": {src['configurations']} ({src['dft']} DFT, {src['umlip']} uMLIP labels)")
    labels = ", ".join(f"{k} {v}" for k, v in sorted(s["labels"].items())) or "none"
    frac = s["dft_fraction_by_atoms"]
    lines.append(f"  labels: {labels}" + (f"  (DFT share by atoms {frac:.1%})" if frac is not None else ""))
    jobs = ", ".join(f"{k} {v}" for k, v in sorted(s["dft_jobs"].items())) or "none"
    lines.append(f"  DFT jobs: {jobs}")
    if s["gamma"]:
        lines.append("  γ on fresh candidates (share above threshold, median, max):")
        for g in s["gamma"]:
            lines.append(f"    iteration {g['iteration']}: {g['share_above']:6.1%}  {g.get('median', float('nan')):7.2f}  {g.get('max', float('nan')):8.2f}  (n={g['n_candidates']}, γ>{g['threshold']:g})")
    if any(row["test_sets"] for row in s.get("learning_curve", [])):
        lines.append("  learning curve (force RMSE eV/Å, energy RMSE without the mean offset meV/atom):")
        for row in s["learning_curve"]:
            scored = [f"{name} {m['force_rmse']:.3f} / {m['energy_rmse_centered']:.1f}" for name, m in row["test_sets"].items() if "force_rmse" in m]
            wall = "" if row.get("dft_wall_h") is None else f" ({row['dft_wall_h']:.2f} DFT wall hours)"
            name = f"final (iteration {row['iteration']}'s data)" if row.get("final") else f"iteration {row['iteration']}"
            lines.append(f"    {name}: {row['n_train']} configurations, {row['dft_atoms']} DFT atoms{wall}; "
                         f"train {row['force_rmse_train']} / {row['energy_rmse_train']}; " + ("; ".join(scored) or "not scored"))
    final = s.get("final_potential")
    if final and final["pending"]:
        lines.append(f"  final potential: fitting (the campaign ends {final['outcome']} once it is stored)")
    elif final:
        lines.append(f"  final potential ({final['n_train']} configurations, fitted on from iteration {final['iteration']}'s): {final['path']}")
    if s["potential"]:
        p = s["potential"]
        lines.append(f"  potential (iteration {p['iteration']}, {p['n_train']} configurations): {p['path']}")
        ref = p.get("energy_reference") or {}
        if ref.get("energy_scale"):
            offsets = ", ".join(f"{el} {v:+.4f}" for el, v in ref.get("offsets", {}).items())
            lines.append(f"    energies on the scale of {ref['energy_scale']}" + (f"; DFT offsets (eV/atom): {offsets}" if offsets else ""))
    if s["events"]:
        lines.append("  recent events:")
        lines += [f"    {e['time']} [{e['level']}] {e['message']}" for e in s["events"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        summary = collect(_database(args.target), args.events)
    except AlloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plot and summary["gamma"]:
        from alloop.report.plots import trend_plot

        its = [g["iteration"] for g in summary["gamma"]]
        trend_plot(its, {"share of candidates above γ threshold": [g["share_above"] for g in summary["gamma"]]}, Path(args.plot))
    print(json.dumps(summary, indent=2, default=str) if args.json else _text(summary))
    return 0
