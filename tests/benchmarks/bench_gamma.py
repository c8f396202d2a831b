"""Throughput of the extrapolation grade γ and cost of MaxVol (D-optimal) candidate selection.

Run: .venv/bin/python tests/benchmarks/bench_gamma.py [--quick] [--data PATH/TO/shared/data]

The potential is the paper's fitted 72-function W ACE (shared data, `0_ensemble_potential_0.yaml`);
its active set is built here from the B-projections of twelve 54-atom DFT configurations (not timed).
Test cells are bcc W supercells with 8, 54 and 128 atoms, randomly strained (±3 %) and rattled
(σ = 0.1 Å). One thread, best of 3. γ is timed two ways: alloop's batched
`extrapolation_grades` and pyace's `PyACECalculator` with the active set (which also computes energy
and forces). Selection: `select_maxvol` over 1,000 and 10,000 rattled 16-atom cells (the default
candidate size of alloop.generate) against that active set, budget 100.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from alloop.train import extrapolation_grades, select_maxvol  # noqa: E402
from _timing import best_of  # noqa: E402  (tests/benchmarks is on sys.path)

SHARED_DATA = Path(os.environ.get("ALLOOP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
POTENTIAL = "uq_umlip_W/ace_potentials/0_ensemble_potential_0.yaml"
A_W = 3.185  # Å, near the PBE lattice constant of the training data
REPEATS = 3




def w_cells(n_atoms: int, count: int, rng: np.random.Generator) -> list[Atoms]:
    """`count` strained, rattled bcc W supercells of `n_atoms` atoms (repeats of the 2-atom cubic cell)."""
    reps = {8: (2, 2, 1), 16: (2, 2, 2), 54: (3, 3, 3), 128: (4, 4, 4)}[n_atoms]
    base = bulk("W", "bcc", a=A_W, cubic=True).repeat(reps)
    out = []
    for _ in range(count):
        a = base.copy()
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
        a.set_cell(a.cell @ (strain + strain.T) / 2, scale_atoms=True)
        a.positions += rng.normal(0.0, 0.1, a.positions.shape)
        out.append(a)
    return out


def build_active_set(data: Path, tmp: Path) -> tuple[Path, Path]:
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        save_active_inverse_set,
    )

    with np.load(data / "uq_umlip_W" / "W_uq_umlip.npz") as z:  # each z[key] would decompress again
        npz = {k: z[k] for k in ("n_atoms", "offsets", "numbers", "positions", "cells")}
    picks = np.flatnonzero(npz["n_atoms"][:1026] == 54)[:12]
    train = [
        Atoms(numbers=npz["numbers"][s], positions=npz["positions"][s], cell=npz["cells"][i], pbc=True)
        for i in picks
        for s in [slice(int(npz["offsets"][i]), int(npz["offsets"][i + 1]))]
    ]
    pot = data / POTENTIAL
    basis = ACEBBasisSet(BBasisConfiguration(str(pot)))
    asi = tmp / "paper.asi"
    inverse = compute_A_active_inverse(compute_active_set(compute_B_projections(basis, train)))
    save_active_inverse_set(str(asi), inverse, elements_name=basis.elements_name)
    return pot, asi


def pyace_gamma(pot: Path, asi: Path) -> Callable[[list[Atoms]], list[np.ndarray]]:
    from pyace import PyACECalculator

    calc = PyACECalculator(str(pot))
    calc.set_active_set(str(asi))

    def run(cells: list[Atoms]) -> list[np.ndarray]:
        out = []
        for a in cells:
            a = a.copy()
            a.calc = calc
            a.get_potential_energy()
            out.append(calc.results["gamma"])
        return out

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder (holds uq_umlip_W/)")
    parser.add_argument("--quick", action="store_true", help="selection over 1,000 candidates only")
    args = parser.parse_args()
    if not (args.data / "uq_umlip_W").is_dir():
        parser.error(f"shared data not found at {args.data}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        pot, asi = build_active_set(args.data, Path(tmp))
        calc_gamma = pyace_gamma(pot, asi)
        extrapolation_grades(pot, asi, w_cells(8, 1, rng))  # load and cache the potential before timing

        print("γ per atom, paper W ACE (72 functions), 1 thread, best of 3")
        print(f"{'cell':<10}{'cells':>7}{'batched (atoms/s)':>20}{'PyACECalculator (atoms/s)':>28}{'max γ':>8}")
        for n_atoms, count in ((8, 400), (54, 60), (128, 25)):
            cells = w_cells(n_atoms, count, rng)
            total = n_atoms * count
            t_batch = best_of(lambda cells=cells: extrapolation_grades(pot, asi, cells))
            t_calc = best_of(lambda cells=cells: calc_gamma(cells))
            g = max(x.max() for x in extrapolation_grades(pot, asi, cells))
            print(f"{str(n_atoms) + ' atoms':<10}{count:>7}{total / t_batch:>20,.0f}{total / t_calc:>28,.0f}{g:>8.2f}")

        print("\nMaxVol selection against the active set (select_maxvol, budget 100), 16-atom cells, one run")
        print(f"{'candidates':>10}{'atoms':>10}{'time (s)':>10}{'ms/structure':>14}{'selected':>10}")
        for count in (1_000,) if args.quick else (1_000, 10_000):
            pool = w_cells(16, count, rng)
            t0 = time.perf_counter()
            chosen = select_maxvol(pool, budget=100, potential=pot, active_set=asi)
            dt = time.perf_counter() - t0
            print(f"{count:>10,}{16 * count:>10,}{dt:>10.1f}{dt / count * 1e3:>14.2f}{len(chosen):>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
