"""Time U⁽⁰⁾/U⁽¹⁾/U⁽²⁾ and ΔF on the paper's full W set (1129 configurations, 99,402 atoms, 11 members).

Run: .venv/bin/python tests/benchmarks/bench_uq.py [path/to/W_uq_umlip.npz]
One thread, best of 5; loading and stacking the npz is not timed. Target: 0.2 s per call.
"""

from __future__ import annotations

import os

# Before numpy is imported, or its BLAS pool is already sized.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from alloop import paper, uq  # noqa: E402
from _timing import best_of  # noqa: E402  (tests/benchmarks is on sys.path)

TARGET_S = 0.2
REPEATS = 5
SHARED = Path(os.environ.get("ALLOOP_SHARED", Path(__file__).resolve().parents[3] / "shared"))
DEFAULT_NPZ = SHARED / "data" / "uq_umlip_W" / "W_uq_umlip.npz"




def main() -> int:
    npz_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_NPZ
    if not npz_path.is_file():
        print(f"W data not found at {npz_path} (pass its path as the first argument)", file=sys.stderr)
        return 2
    data = np.load(npz_path)
    names = data["model_names"]
    forces = np.stack([data[paper.w_npz_force_key(names, i)] for i in paper.PAPER11_W_INDICES])
    offsets, dft = data["offsets"], data["forces_dft"]
    k, n_atoms, _ = forces.shape
    print(f"W set: {len(offsets) - 1} configurations, {n_atoms} atoms, {k} members ({forces.dtype} forces)")

    rmse = paper.PAPER11_RMSE
    cases = {
        "U(0) equal weights": lambda: uq.uncertainty(forces, offsets, rmse, variant=0),
        "U(1) Eq. 1 (paper U)": lambda: uq.uncertainty(forces, offsets, rmse, variant=1),
        "U(2) Eqs. 3-4": lambda: uq.uncertainty(forces, offsets, rmse, variant=2),
        "dF Eq. 5 (from members)": lambda: uq.force_error(dft, forces, offsets),
    }
    print(f"\n{'computation':<26}{'best of ' + str(REPEATS) + ' (s)':>16}{'target (s)':>12}  ok")
    all_ok = True
    for name, fn in cases.items():
        t = best_of(fn, REPEATS)
        ok = t < TARGET_S
        all_ok &= ok
        print(f"{name:<26}{t:>16.4f}{TARGET_S:>12.2f}  {'yes' if ok else 'NO'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
