"""Does γ-driven exploration find configurations the ACE gets wrong? (issue 4: "exploration
candidates must show higher ACE error than random frames")

Run: .venv/bin/python tests/benchmarks/bench_explore_value.py [--cache DIR] [--data PATH/TO/shared/data]

1. Fit a small ACE (32 functions, 100 BFGS iterations) on 40 DFT-labelled W configurations of at
   most 54 atoms, drawn at random (seed 0) from the paper's "general" set (configurations 0-1025).
   The fit is kept under --cache (default ~/.cache/alloop/bench_explore_value) and reused.
2. Explore with it (alloop.explore, ASE engine): NVT MD at 1500 K, 300 steps of 1 fs, four
   trajectories (own random velocities) from each starting structure of alloop.generate (bulk,
   vacancy, interstitial, surfaces; ≤ 16 atoms, the generator's default size, which keeps the
   reference cheap); a frame every 10 steps.
3. Compare the ACE forces with a reference on
   (a) the exploration candidates (γ > gamma_lo = 1.1, at most 80, highest γ first per trajectory),
   (b) as many random frames of the same MD runs, picked without looking at γ,
   (b') for contrast, the MD frames exploration passed over (γ ≤ 1.1), up to as many,
   (c) random structures from generate_candidates (strained/rattled bulk, vacancy, interstitial,
       surface, compressed; no dimers).
   The reference is the uMLIP 7net-0 (member of the 'offline-fast' ensemble; it runs offline on CPU)
   standing in for DFT, which is too slow here. Its own error against DFT enters every set alike
   (the paper's SevenNet forces on configurations 0-1025: 0.17 eV/Å RMSE per component).
Force error per structure, eV/Å: RMSE over atoms and Cartesian components, and the largest per-atom
error |F_ACE - F_ref| (γ is a per-atom, max-over-atoms quantity, so the worst atom is its natural
counterpart). Spearman ρ between max γ and the error runs over every frame of sets (a) and (b).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ase import Atoms  # noqa: E402

from alloop.explore import ExploreSettings, explore  # noqa: E402
from alloop.generate import GeneratorSettings, KindCounts, generate_candidates, starting_structures  # noqa: E402
from alloop.train import FitResult, FitSettings, fit_ace, max_gamma, predict  # noqa: E402
from alloop.uq import spearman  # noqa: E402

SHARED_DATA = Path(os.environ.get("ALLOOP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alloop" / "bench_explore_value"
REFERENCE = "7net-0"
N_TRAIN = 40
FIT = FitSettings(n_functions=32, maxiter=100, test_fraction=0)
MD = ExploreSettings(temperature=1500, steps=300, sample_interval=10, max_candidates=80, seed=0)
MAX_ATOMS = 16
REPEATS = 4  # trajectories per starting structure


@dataclass
class FrameSet:
    name: str
    frames: list[Atoms]
    gamma: np.ndarray  # max γ per frame
    error: np.ndarray  # ACE-vs-reference force RMSE per frame, eV/Å
    worst: np.ndarray  # largest per-atom |ΔF| per frame, eV/Å


def train_frame(data: Path, n: int, max_atoms: int = 54) -> pd.DataFrame:
    with np.load(data / "uq_umlip_W" / "W_uq_umlip.npz") as z:  # each z[key] would decompress again
        npz = {k: z[k] for k in ("n_atoms", "offsets", "numbers", "positions", "cells", "pbc", "energy_dft_total",
                                 "forces_dft")}
    off = npz["offsets"]
    small = np.flatnonzero(npz["n_atoms"][:1026] <= max_atoms)
    rows = []
    for i in np.sort(np.random.default_rng(0).choice(small, n, replace=False)):
        s = slice(int(off[i]), int(off[i + 1]))
        atoms = Atoms(numbers=npz["numbers"][s], positions=npz["positions"][s], cell=npz["cells"][i], pbc=npz["pbc"][i])
        e = float(npz["energy_dft_total"][i])
        rows.append({"ase_atoms": atoms, "energy": e, "energy_corrected": e, "forces": npz["forces_dft"][s]})
    return pd.DataFrame(rows)


def fit_small(data: Path, cache: Path) -> FitResult:
    return fit_ace(train_frame(data, N_TRAIN), FIT, cache / "fit", ["W"])


def force_errors(potential: Path, frames: list[Atoms], reference: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(RMSE, largest per-atom error norm) of each frame's ACE forces against the reference."""
    _, ace = predict(potential, frames)
    diff = [f - r for f, r in zip(ace, reference)]
    return (np.array([np.sqrt(np.mean(d**2)) for d in diff]),
            np.array([np.linalg.norm(d, axis=1).max() for d in diff]))


def reference_forces(frames: list[Atoms]) -> list[np.ndarray]:
    from alloop.ensemble import predict_member, resolve_ensemble

    pred = predict_member(resolve_ensemble("offline-fast").member(REFERENCE), frames)
    if pred.errors:
        raise RuntimeError(f"{REFERENCE} failed on {pred.errors}")
    return pred.forces


def frame_sets(fit: FitResult, n_random: int | None = None) -> list[tuple[str, list[Atoms]]]:
    """(a) exploration candidates, (b) γ-blind random frames of the same MD, (c) generated structures."""
    gen = GeneratorSettings(max_atoms=MAX_ATOMS)
    starts = starting_structures(["W"], gen, np.random.default_rng(0)) * REPEATS
    candidates = explore(fit.potential_yaml, fit.active_set, starts, MD).candidates
    # Same seed, same trajectories (candidate bookkeeping does not touch the dynamics); a γ threshold
    # far below 1 keeps every sampled frame.
    every = explore(fit.potential_yaml, fit.active_set, starts,
                    MD.model_copy(update={"gamma_lo": 1e-3, "max_candidates": 100_000})).candidates
    n = n_random or len(candidates)
    rng = np.random.default_rng(1)
    md_random = [every[i] for i in np.sort(rng.choice(len(every), min(n, len(every)), replace=False))]
    passed_over = [a for a in every if a.info["gamma_max"] <= MD.gamma_lo]
    passed_over = [passed_over[i] for i in np.sort(rng.choice(len(passed_over), min(n, len(passed_over)), replace=False))]
    counts = KindCounts(strained_bulk=n // 5, rattled_bulk=n // 5, vacancy=n // 5, interstitial=n // 10,
                        surface=n // 10, dimer=0, compressed=n // 5)
    generated = generate_candidates(["W"], gen.model_copy(update={"counts": counts}), np.random.default_rng(2))
    print(f"MD: {len(starts)} trajectories, {len(every)} frames, {len(candidates)} candidates returned "
          f"(cap {MD.max_candidates})")
    return [("(a) exploration candidates", candidates), ("(b) random MD frames", md_random),
            ("(b') MD frames with γ ≤ 1.1", passed_over), ("(c) generated structures", generated)]


def evaluate(fit: FitResult, sets: list[tuple[str, list[Atoms]]]) -> list[FrameSet]:
    out = []
    for name, frames in sets:
        if not frames:
            out.append(FrameSet(name, frames, *(np.empty(0),) * 3))
            continue
        ref = reference_forces(frames)
        out.append(FrameSet(name, frames, max_gamma(fit.potential_yaml, fit.active_set, frames),
                            *force_errors(fit.potential_yaml, frames, ref)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder (holds uq_umlip_W/)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the small fit is kept and reused")
    args = parser.parse_args()
    if not (args.data / "uq_umlip_W").is_dir():
        parser.error(f"shared data not found at {args.data}")
    t0 = time.perf_counter()
    fit = fit_small(args.data, args.cache)
    t_fit = time.perf_counter() - t0
    m = fit.metrics
    print(f"ACE: {m['n_functions']} functions, {m['n_iterations']} BFGS iterations on {fit.n_structures} W DFT configurations "
          f"({'reused' if fit.reused else f'fitted in {t_fit:.0f} s'}); train RMSE {m['energy_rmse_train']:.1f} meV/atom, "
          f"{m['force_rmse_train']:.3f} eV/Å")
    t0 = time.perf_counter()
    sets = frame_sets(fit)
    t_md = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = evaluate(fit, sets)
    t_ref = time.perf_counter() - t0
    print(f"MD {MD.temperature:.0f} K x {MD.steps} steps per start (two passes) and generation: {t_md:.0f} s; "
          f"ACE + {REFERENCE} on all frames: {t_ref:.0f} s")
    print(f"\nACE force error against {REFERENCE} (stand-in for DFT), per structure, eV/Å")
    print(f"{'':<30}{'':>7}{'':>7}{'-- force RMSE --':>24}{'-- worst atom --':>24}")
    print(f"{'set':<30}{'frames':>7}{'atoms':>7}{'mean':>8}{'median':>8}{'p90':>8}{'mean':>8}{'median':>8}{'p90':>8}"
          f"{'median γ':>10}")
    for r in results:
        if not r.frames:
            print(f"{r.name:<30}{0:>7}")
            continue
        n_atoms = np.mean([len(a) for a in r.frames])
        stats = [f(x) for x in (r.error, r.worst) for f in (np.mean, np.median, lambda v: np.percentile(v, 90))]
        print(f"{r.name:<30}{len(r.frames):>7}{n_atoms:>7.0f}" + "".join(f"{v:>8.3f}" for v in stats)
              + f"{np.median(r.gamma):>10.2f}")
    cand, md = results[:2]
    if not len(cand.error):
        print("\nexploration returned no candidates")
        return 1
    g = np.concatenate([cand.gamma, md.gamma])
    print(f"Spearman ρ(max γ, error) over sets (a)+(b): RMSE {spearman(g, np.concatenate([cand.error, md.error])):.2f}, "
          f"worst atom {spearman(g, np.concatenate([cand.worst, md.worst])):.2f}")
    print("\ncandidates (a) vs random MD frames (b) / generated structures (c): is the ACE error of (a) higher?")
    for label, get in (("force RMSE", lambda r: r.error), ("worst atom", lambda r: r.worst)):
        for stat in (np.mean, np.median):
            cells = [f"{'yes' if stat(get(cand)) > stat(get(o)) else 'no'} vs {o.name[:4].strip()}" for o in (md, results[3])]
            print(f"  {stat.__name__:>6} {label:<11} " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
