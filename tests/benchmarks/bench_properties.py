"""`alloop properties`: its cost, and the cell size its point-defect energies need.

    .venv/bin/python tests/benchmarks/bench_properties.py                 # the paper's W ACE: time and cell sizes
    .venv/bin/python tests/benchmarks/bench_properties.py --teacher       # also SevenNet-0 (minutes)
    .venv/bin/python tests/benchmarks/bench_properties.py --cells 3 4 5 6

Prints, for the paper's W ACE (`3_ensemble_potential_0.yaml`, 72 functions), the wall and CPU time of every
property group (the CPU time is what it costs on a shared machine), and the vacancy and interstitial formation
energies at zero pressure and at constant volume for each cell size (4: 128 atoms, 5: 250), with the change
from one size to the next.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SHARED_DATA = Path(os.environ.get("ALLOOP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
PAPER_ACE = SHARED_DATA / "uq_umlip_W" / "ace_potentials" / "3_ensemble_potential_0.yaml"
DEFECTS = ("vacancy", "sia_111", "sia_110", "crowdion")


def _timed(model, settings) -> tuple[object, list[str]]:
    from alloop.properties import compute_properties

    lines: list[str] = []
    result = compute_properties(model, ["W"], settings, progress=lines.append)
    return result, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[3, 4, 5], help="defect cell sizes (cubic cells per edge)")
    ap.add_argument("--teacher", action="store_true", help="also time SevenNet-0 (7net-0) on every property")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from alloop.ensemble import MemberSpec
    from alloop.properties import ALL_GROUPS, PropertySettings, load_model

    print(f"machine load (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    models = [("paper W ACE", load_model(potential=PAPER_ACE))]
    if args.teacher:
        t = time.perf_counter()
        models.append(("7net-0", load_model(member=MemberSpec(name="7net-0", kind="sevenn", model="7net-0", device="cpu"))))
        print(f"7net-0 loaded in {time.perf_counter() - t:.1f} s")
    for name, model in models:
        result, lines = _timed(model, PropertySettings(properties=list(ALL_GROUPS)))
        print(f"\n{name}: every property in {result.seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU")
        for line in lines:
            print(f"  {line}")

    print("\npoint-defect formation energies (eV) of the paper's W ACE against the cell size")
    print(f"{'cells':>5} {'atoms':>6} " + " ".join(f"{d + ' (P=0)':>16} {'(V const)':>10}" for d in DEFECTS) + f" {'s':>6}")
    previous = None
    for n in args.cells:
        result, _ = _timed(models[0][1], PropertySettings(properties=["vacancy", "interstitials"], defect_cells=n))
        v = result.element("W").values
        row = {d: v[d].value for d in DEFECTS}
        cells = " ".join(f"{row[d]:16.3f} {v[d].details.get('constant_volume', float('nan')):10.3f}" for d in DEFECTS)
        print(f"{n:5d} {2 * n**3:6d} {cells} {result.seconds:6.1f}")
        if previous is not None:
            print(f"{'':5} {'Δ':>6} " + " ".join(f"{row[d] - previous[0][d]:+16.3f} "
                                                 f"{v[d].details['constant_volume'] - previous[1][d]:+10.3f}" for d in DEFECTS))
        previous = (row, {d: v[d].details["constant_volume"] for d in DEFECTS})


if __name__ == "__main__":
    main()
