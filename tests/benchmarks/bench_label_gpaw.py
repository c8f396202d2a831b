"""Wall time of the embedded GPAW labeller on small W cells (PW 350 eV, PBE, MP 0.1 eV, one process).

    .venv/bin/python tests/benchmarks/bench_label_gpaw.py [--large]

`total` includes the child process start and the file round trip; `gpaw` is the time inside GPAW.
--large adds a rattled 16-atom W cell at k 2×2×2 (about two minutes on 2 slow vCPUs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from alloop.label import GPAWBackend, GPAWSettings


def cases(large: bool) -> list[tuple[str, Atoms, tuple[int, int, int]]]:
    cubic = bulk("W", "bcc", a=3.17, cubic=True)
    rattled = cubic.copy()
    rattled.rattle(0.05, seed=1)
    dimer = Atoms("W2", positions=[[0, 0, 0], [0, 0, 2.2]], cell=[6.0] * 3, pbc=True)
    dimer.center()
    out = [
        ("bcc W, ideal", cubic, (4, 4, 4)),
        ("bcc W, rattled 0.05 Å", rattled, (2, 2, 2)),
        ("bcc W, rattled 0.05 Å", rattled, (4, 4, 4)),
        ("W dimer 2.2 Å, 6 Å box", dimer, (1, 1, 1)),
    ]
    if large:
        big = cubic.repeat((2, 2, 2))
        big.rattle(0.05, seed=2)
        out.append(("W 16 atoms, rattled", big, (2, 2, 2)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="add a 16-atom cell (minutes)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, atoms, kpts) in enumerate(cases(args.large)):
            t0 = time.perf_counter()
            result = GPAWBackend(GPAWSettings(kpts=kpts)).compute(atoms, Path(tmp) / str(k))
            total = time.perf_counter() - t0
            rows.append((label, len(atoms), "×".join(map(str, kpts)), result.meta["n_scf"], result.meta["wall_s"], total))
    print(f"{'configuration':<26} {'atoms':>5} {'k-mesh':>7} {'SCF':>4} {'gpaw s':>7} {'total s':>8}")
    for label, n, kpts, n_scf, gpaw_s, total in rows:
        print(f"{label:<26} {n:>5} {kpts:>7} {n_scf:>4} {gpaw_s:>7.1f} {total:>8.1f}")


if __name__ == "__main__":
    main()
