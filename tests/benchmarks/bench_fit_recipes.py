"""Fit recipes and warm starts on the paper's W DFT data, side by side in one run (issue 19).

    .venv/bin/python tests/benchmarks/bench_fit_recipes.py [--n-train 100] [--maxiter 150] [--functions 16]

Training sets are drawn (seed 0) from the paper's "general" W configurations (indices 0-1025 of
W_uq_umlip.npz, at most 60 atoms) that are not every 10th; the held-out set is every 10th of them, the 103
configurations the issue measured the quickstart on. Labels are the set's VASP-PBE DFT.

1. Recipes: the same data and basis fitted with `recipe: paper` (κ 0.01, no weighting, absolute energies)
   and `recipe: safeguarded` (with pacemaker's VASP-PBE isolated-atom energy of W as the reference).
2. Warm vs cold: an iteration's update, fitted on the first set plus `--n-add` more configurations, once
   from the first set's potential (warm_maxiter iterations) and once from random coefficients (maxiter).
   The figure is the ratio of fit wall times and the held-out errors they reach.

Errors: energy RMSE per atom (raw, and without the mean offset) and force RMSE per component.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from alloop.train import FitSettings, fit_ace
from alloop.train.model import predict

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "uq_umlip_W" / "W_uq_umlip.npz"
VASP_PBE_W_ATOM = {"W": -1.81667003}  # pyace.preparedata.SINGLE_ATOM_ENERGY_DICT["VASP_PBE_500_0.125_0.1_NM"]


def _atoms(npz, i: int) -> Atoms:
    s = slice(int(npz["offsets"][i]), int(npz["offsets"][i + 1]))
    return Atoms(numbers=npz["numbers"][s], positions=npz["positions"][s], cell=npz["cells"][i], pbc=npz["pbc"][i])


def _frame(npz, idx: list[int]) -> pd.DataFrame:
    e = npz["energy_dft_total"][idx]
    return pd.DataFrame({"ase_atoms": [_atoms(npz, i) for i in idx], "energy": e, "energy_corrected": e,
                         "forces": [npz["forces_dft"][npz["offsets"][i]:npz["offsets"][i + 1]] for i in idx]})


def _errors(potential: Path, test: pd.DataFrame) -> dict[str, float]:
    energies, forces = predict(potential, list(test.ase_atoms))
    de = (energies - test.energy.to_numpy()) / test.ase_atoms.map(len).to_numpy()
    df = np.concatenate([f - np.asarray(r) for f, r in zip(forces, test.forces)])
    return {"energy_rmse": round(1e3 * float(np.sqrt(np.mean(de**2))), 1), "energy_rmse_centered": round(1e3 * float(np.std(de)), 1),
            "force_rmse": round(float(np.sqrt(np.mean(df**2))), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--n-add", type=int, default=40)
    ap.add_argument("--maxiter", type=int, default=150)
    ap.add_argument("--warm-maxiter", type=int, default=50)
    ap.add_argument("--functions", type=int, default=16)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    npz = np.load(DATA)
    test_idx = list(range(0, 1026, 10))
    pool = [i for i in range(1026) if i % 10 and len(_atoms(npz, i)) <= 60]
    order = list(np.random.default_rng(0).permutation(pool))
    first, update = order[: args.n_train], order[: args.n_train + args.n_add]
    test = _frame(npz, test_idx)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_fit_recipes_"))
    rows = []

    def run(name: str, settings: FitSettings, idx: list[int], **kw) -> Path:
        t0 = time.perf_counter()
        res = fit_ace(_frame(npz, idx), settings, root / name, ["W"], **kw)
        rows.append({"fit": name, "structures": len(idx), "wall_s": round(time.perf_counter() - t0, 1),
                     "iterations": res.metrics["n_iterations"], "train_energy": res.metrics["energy_rmse_train"],
                     "train_force": res.metrics["force_rmse_train"], **_errors(res.potential_yaml, test)})
        print(json.dumps(rows[-1]), flush=True)
        return res.workdir

    base = {"n_functions": args.functions, "maxiter": args.maxiter, "test_fraction": 0.0}
    run("paper", FitSettings(recipe="paper", **base), first)
    safe = FitSettings(recipe="safeguarded", warm_maxiter=args.warm_maxiter, **base)
    start = run("safeguarded", safe, first, isolated_energies=VASP_PBE_W_ATOM)
    run("update_warm", safe, update, warm_from=start)
    run("update_cold", safe, update, isolated_energies=VASP_PBE_W_ATOM)
    table = pd.DataFrame(rows)
    print(f"\nheld-out: {len(test_idx)} configurations (every 10th general W defect); energies meV/atom, forces eV/Å")
    print(table.to_string(index=False))
    warm, cold = table.set_index("fit").loc["update_warm"], table.set_index("fit").loc["update_cold"]
    print(f"\nwarm / cold fit time: {warm.wall_s / cold.wall_s:.2f} ({warm.wall_s:.0f} s vs {cold.wall_s:.0f} s); "
          f"held-out force {warm.force_rmse} vs {cold.force_rmse} eV/Å, energy {warm.energy_rmse_centered} vs "
          f"{cold.energy_rmse_centered} meV/atom (centered)")


if __name__ == "__main__":
    main()
