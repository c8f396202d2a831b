"""Cost of candidate generation and of γ-driven MD with the paper's W ACE potential.

Run: .venv/bin/python tests/benchmarks/bench_explore.py [path/to/shared/data]
The active set is built first (pace_activeset on 24 bulk W configurations, not timed). MD is NVT
Langevin at 300 K, 1 fs, γ evaluated every step (PyACECalculator with the active set); one
thread, best of 3.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ase import Atoms  # noqa: E402

from alloop.explore import ExploreSettings, explore  # noqa: E402
from alloop.generate import GeneratorSettings, generate_candidates, starting_structures  # noqa: E402
from _timing import best_of  # noqa: E402  (tests/benchmarks is on sys.path)

SHARED_DATA = Path(os.environ.get("ALLOOP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
REPEATS = 3
MD_STEPS = 200




def build_active_set(data: Path, tmp: Path) -> tuple[Path, Path]:
    npz = np.load(data / "uq_umlip_W" / "W_uq_umlip.npz")
    d = {k: npz[k] for k in ("n_atoms", "offsets", "numbers", "positions", "cells", "energy_dft_total", "forces_dft")}
    rows = []
    for i in np.flatnonzero(np.isin(d["n_atoms"][:1026], (2, 54))):
        s = slice(d["offsets"][i], d["offsets"][i + 1])
        atoms = Atoms(numbers=d["numbers"][s], positions=d["positions"][s], cell=d["cells"][i], pbc=True)
        if abs(atoms.get_volume() / len(atoms) - 16.23) < 0.05 and len(rows) < 24:
            e = float(d["energy_dft_total"][i])
            rows.append({"ase_atoms": atoms, "energy": e, "energy_corrected": e, "forces": d["forces_dft"][s]})
    pd.DataFrame(rows).to_pickle(tmp / "train.pckl.gzip", compression="gzip")
    potential = tmp / "potential.yaml"
    potential.write_bytes((data / "uq_umlip_W" / "ace_potentials" / "0_ensemble_potential_0.yaml").read_bytes())
    tool = Path(sys.executable).with_name("pace_activeset")
    subprocess.run([str(tool), "-d", "train.pckl.gzip", potential.name], cwd=tmp, check=True, capture_output=True)
    return potential, tmp / "potential.asi"


def main() -> int:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED_DATA
    if not (data / "uq_umlip_W").is_dir():
        print(f"shared data not found at {data} (pass its path as the first argument)", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    print(f"{'generation (W)':<36}{'best of ' + str(REPEATS) + ' (ms)':>16}{'structures':>12}")
    for max_atoms in (16, 54, 128):
        settings = GeneratorSettings(max_atoms=max_atoms)
        n = len(generate_candidates(["W"], settings, rng))
        t = best_of(lambda settings=settings: generate_candidates(["W"], settings, rng), REPEATS)
        print(f"{'generate_candidates max_atoms=' + str(max_atoms):<36}{t * 1e3:>16.1f}{n:>12}")

    with tempfile.TemporaryDirectory() as tmp:
        potential, asi = build_active_set(data, Path(tmp))
        print(f"\n{'NVT MD with γ every step':<36}{'ms/step':>16}{'µs/(step·atom)':>16}")
        for max_atoms in (16, 54, 128):
            gs = GeneratorSettings(max_atoms=max_atoms, lattice_constant=3.185)
            bulk = starting_structures(["W"], gs, rng)[:1]
            s = ExploreSettings(temperature=300, steps=MD_STEPS)
            t = best_of(lambda bulk=bulk, s=s: explore(potential, asi, bulk, s), REPEATS)
            n = len(bulk[0])
            print(f"{'bulk W, ' + str(n) + ' atoms':<36}{t / MD_STEPS * 1e3:>16.2f}{t / MD_STEPS / n * 1e6:>16.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
