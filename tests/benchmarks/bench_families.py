"""MACE, Orb and fairchem (eSEN) members in their own environments: agreement with the library's own
ASE calculator and inference throughput on a 54-atom bcc W cell (CPU, 1 torch thread).

    .venv/bin/python tests/benchmarks/bench_families.py                  # mace, orb, fairchem
    .venv/bin/python tests/benchmarks/bench_families.py --families orb --repeat 5

Needs the environments of `alloop env create FAMILY`. Each model has random weights from the
library's own constructors (tests/fixtures/random_checkpoints.py: MACE 2 layers 16x0e+16x1o; Orb
the full orb-v3-conservative-inf-omat architecture; eSEN 2 layers, 16 channels), so the speed of
the small MACE and eSEN is not that of a released checkpoint; Orb's is. Prints one Markdown row per
family: max |dF| (alloop vs the library's calculator on W and MoNbTaW cells), atoms/s through alloop
(the worker in the family's environment) and through the library's calculator in that environment,
and, as the in-process baseline, sevenn 7net-0 in alloop's own environment.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _timing import best_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fixtures.random_checkpoints import build_in, reference_in  # noqa: E402
from tests.test_ensemble_families_live import cells  # noqa: E402

from alloop.ensemble import MemberSpec, load_member  # noqa: E402
from alloop.ensemble import environments as envs  # noqa: E402

PACKAGES = {"mace": "mace-torch", "orb": "orb-models", "fairchem": "fairchem-core"}
HOW = {"mace": "ScaleShiftMACE(...) + torch.save(model) -> .model",
       "orb": "orb_v3_conservative_architecture() state_dict -> .ckpt",
       "fairchem": "HydraModel(eSCNMDBackbone, MLP_EFS_Head) MLIPInferenceCheckpoint -> .pt"}


def bench(family: str, repeat: int, folder: Path) -> str:
    status = envs.probe(envs.env_dir() / family, family)
    if not status.loads:
        raise SystemExit(f"{family}: {status.error} (alloop env create {family})")
    built = build_in(status.python, family, folder)
    structures = cells()  # W16, W54, MoNbTaW16, strained MoNbTaW16
    timed = w54_cells(repeat)
    ref = reference_in(status.python, family, built["checkpoint"], structures + timed, folder)
    member = load_member(MemberSpec(name=family, kind=family, checkpoint=built["checkpoint"], model=built["model"],
                                    task=built.get("task"), python=str(status.python), device="cpu"))
    pred = member.predict(structures)
    n = sum(len(a) for a in structures)
    d_f = float(np.abs(np.concatenate(pred.forces) - ref["forces"][: n]).max())
    alloop_s = min(best_of(lambda: member.predict([a]), 1) for a in timed)
    library_s = float(ref["seconds"][len(structures):].min())
    w54 = timed[0]
    member.close()
    version = status.versions[PACKAGES[family]]
    return (f"| {family} | {PACKAGES[family]} {version} | {status.prefix} | {HOW[family]} | {d_f:.1e} | "
            f"{len(w54) / alloop_s:.0f} | {len(w54) / library_s:.0f} |")


def w54_cells(count: int) -> list:
    """Distinct rattled 54-atom W cells: an ASE calculator returns its cached results for a
    structure it has just computed, so timing the same cell twice would time nothing."""
    w54 = cells()[1]
    out = []
    for i in range(count):
        a = w54.copy()
        a.rattle(0.05, seed=100 + i)
        out.append(a)
    return out


def sevenn_row(repeat: int) -> str:
    member = load_member(MemberSpec(name="7net-0", kind="sevenn", model="7net-0", device="cpu"))
    timed = w54_cells(repeat + 1)
    member.predict(timed[:1])
    seconds = min(best_of(lambda: member.predict([a]), 1) for a in timed[1:])
    w54 = timed[0]
    return f"| sevenn (baseline) | sevenn | alloop's own, in process | shipped 7net-0 | - | {len(w54) / seconds:.0f} | - |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="mace,orb,fairchem")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per family (best is kept)")
    args = parser.parse_args()
    print("| family | package | environment | checkpoint built by | max abs dF (eV/A) | atoms/s alloop | "
          "atoms/s library calculator |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            folder = Path(tmp) / family
            folder.mkdir()
            print(bench(family, args.repeat, folder), flush=True)
    print(sevenn_row(args.repeat), flush=True)


if __name__ == "__main__":
    main()
