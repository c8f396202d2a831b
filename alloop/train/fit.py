"""Fit an ACE potential (or a committee of them) with pacemaker and build its active set.

A fit lives in one work directory:

    train.pckl.gzip, test.pckl.gzip    the split, in pacemaker's format (shared by all members)
    member_0/ ... member_{N-1}/        one pacemaker run each (input.yaml, log.txt, output_potential.yaml)
    member_0/output_potential.asi      the active set of "the" potential (member 0)
    pacemaker.log                      stdout/stderr of every subprocess
    fit_done.json                      written atomically, last: its presence means the fit is complete

Anything else alloop finds there without fit_done.json is the debris of an interrupted fit and is removed
before fitting again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from alloop.atomic import fsync_paths, write_json_atomic
from alloop.errors import FitError, MissingFileError, UnphysicalStructureError
from alloop.fingerprints import content_hash
from alloop.locks import exclusive_dir
from alloop.process import run_child, signal_name, tail_lines
from alloop.structures import config_hash, validate_atoms
from alloop.train.settings import FitSettings, render_input

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DONE_FILE = "fit_done.json"
TRAIN_FILE = "train.pckl.gzip"
TEST_FILE = "test.pckl.gzip"
LOG_FILE = "pacemaker.log"
POTENTIAL_FILE = "output_potential.yaml"
ACTIVE_SET_FILE = "output_potential.asi"
_DONE_VERSION = 1
_MEMBER_RE = re.compile(r"^member_\d+$")
_NAN_LOSS_RE = re.compile(r"loss.*\b(nan|inf)\b", re.IGNORECASE)
_ITER_RE = re.compile(r"Iteration\s+#(\d+)\s+\(")  # per-step lines, not the "Iteration: #N" summaries
_NFUNC_RE = re.compile(r"Total number of functions:\s*(\d+)\s*/\s*number of parameters:\s*(\d+)")
_OPT_RE = re.compile(r"Optimization result\(success=(\w+), status=(\d+), message=(.*?), nfev")
# scipy's termination status: 0 converged, 1 iteration limit, 2 line search gave up, 3 NaN encountered
_STATUS_NAN, _STATUS_GAVE_UP = 3, 2


@dataclass(frozen=True)
class FitResult:
    """A completed fit. Paths are absolute; metrics are member 0's (energies meV/atom, forces eV/Å per
    Cartesian component, test_* None when no test set was held out)."""

    workdir: Path
    potential_yaml: Path
    active_set: Path
    metrics: dict[str, Any]
    n_structures: int
    wall_time_s: float
    committee: tuple[Path, ...]
    member_metrics: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    reused: bool = False
    reference_energy: dict[str, float] | None = None  # eV/atom per element, taken off before fitting
    basis_signature: str | None = None  # which basis the potential has: a warm start needs the same one

    def _to_json(self, fingerprint: str) -> dict[str, Any]:
        rel = lambda p: str(Path(p).relative_to(self.workdir))  # noqa: E731 - the workdir may be moved later
        return {
            "version": _DONE_VERSION,
            "fingerprint": fingerprint,
            "potential_yaml": rel(self.potential_yaml),
            "active_set": rel(self.active_set),
            "committee": [rel(p) for p in self.committee],
            "metrics": self.metrics,
            "member_metrics": list(self.member_metrics),
            "n_structures": self.n_structures,
            "wall_time_s": self.wall_time_s,
            "reference_energy": self.reference_energy,
            "basis_signature": self.basis_signature,
            "sha256": {rel(p): _sha256(p) for p in self._files()},
        }

    def _files(self) -> list[Path]:
        return list(dict.fromkeys([self.potential_yaml, self.active_set, *self.committee]))

    @classmethod
    def _from_json(cls, workdir: Path, d: dict[str, Any]) -> FitResult:
        return cls(
            workdir=workdir,
            potential_yaml=workdir / d["potential_yaml"],
            active_set=workdir / d["active_set"],
            metrics=d["metrics"],
            n_structures=int(d["n_structures"]),
            wall_time_s=float(d["wall_time_s"]),
            committee=tuple(workdir / p for p in d["committee"]),
            member_metrics=tuple(d.get("member_metrics", ())),
            reused=True,
            reference_energy=d.get("reference_energy"),
            basis_signature=d.get("basis_signature"),
        )


def fit_ace(data: pd.DataFrame, settings: FitSettings, workdir: Path, elements: list[str],
            warm_from: Path | None = None, isolated_energies: dict[str, float] | None = None) -> FitResult:
    """Fit `settings.committee` ACE potentials on `data` (columns ase_atoms, forces, energy_corrected,
    optional energy, weight and kind) and build member 0's active set.

    `warm_from`, the work directory of an earlier completed fit (the previous iteration's), gives the
    starting coefficients and the per-element reference energies when `settings.warm_start` holds and its
    basis is this one; otherwise the fit starts from random coefficients. `isolated_energies` (eV per
    element, on the labels' scale) are the reference energies of settings.reference_energy = 'isolated'
    (a warm start keeps its potential's). Structures above the recipe's
    bounds are left out and counted in the metrics (n_excluded).

    Returns the stored result without refitting when `workdir` already holds a completed fit of the same
    data and settings. Raises FitError for unusable data or a failed fit; fit_done.json then stays absent.
    """
    given, workdir = Path(workdir), Path(workdir).resolve()  # the lock keys on the caller's spelling (its task's lock)
    elements = sorted(set(elements))
    frame = training_frame(data, elements)
    warm = _warm_start(warm_from, settings, elements)
    frame, excluded = _apply_bounds(frame, settings, elements)
    reference = _reference_energy(settings, elements, warm, isolated_energies)
    if reference is not None:
        # pacemaker takes the reference off `energy` itself and keeps it in the potential's metadata
        frame["energy"] = frame["energy_corrected"]
        frame["energy_corrected"] = frame["energy"] - _composition(frame, elements) @ np.array([reference[el] for el in elements])
    r_in = _core_radius(frame, elements) if settings.repulsion else None
    fingerprint = fit_fingerprint(frame, settings, elements, warm)
    # the task around a campaign's fit holds this lock already (re-entrant); a second fit in it is refused
    with exclusive_dir(given, wait=False):
        done = _completed(workdir, fingerprint)
        if done is not None:
            log.info("fit in %s is complete, reusing it", workdir)
            return done
        train, test = _split(frame, settings)
        _check_basis_covered(train, settings, elements)
        _clean(workdir)
        t0 = time.time()
        train.to_pickle(workdir / TRAIN_FILE, compression="gzip")
        n_test = len(test)
        if n_test:
            test.to_pickle(workdir / TEST_FILE, compression="gzip")
        exe = _executable("pacemaker")
        members: list[Path] = []
        member_metrics: list[dict[str, Any]] = []
        for k in range(settings.committee):
            mdir = workdir / f"member_{k}"
            mdir.mkdir()
            initial = None if warm is None or k >= len(warm.committee) else warm.committee[k]
            config = render_input(settings, elements, f"../{TRAIN_FILE}", f"../{TEST_FILE}" if n_test else None, member=k,
                                  r_in=r_in, reference_energy=reference, initial_potential=initial)
            (mdir / "input.yaml").write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None))
            _run_surviving_signals([exe, "input.yaml"], mdir, workdir / LOG_FILE, settings.timeout_s, f"member {k}: pacemaker")
            members.append(_checked_potential(mdir, int(config["fit"]["maxiter"]), warm=initial is not None))
            member_metrics.append(_member_metrics(mdir, int(config["fit"]["maxiter"])))
        active_set = _build_active_set(members[0], workdir, settings.timeout_s)
        metrics = dict(member_metrics[0], n_structures=len(frame), n_train=len(frame) - n_test, n_test=n_test,
                       n_excluded=sum(excluded.values()), excluded=excluded, warm_start=warm is not None,
                       r_in=None if r_in is None else round(r_in, 4),
                       reference_energy=None if reference is None else {k: round(v, 6) for k, v in reference.items()})
        result = FitResult(
            workdir=workdir,
            potential_yaml=members[0],
            active_set=active_set,
            metrics=metrics,
            n_structures=len(frame),
            wall_time_s=round(time.time() - t0, 2),
            committee=tuple(members),
            member_metrics=tuple(member_metrics),
            reference_energy=reference,
            basis_signature=basis_signature(settings, elements),
        )
        # outputs reach the disk before fit_done.json claims they exist (a power cut must not lie)
        fsync_paths([workdir / TRAIN_FILE, active_set, *members])
        write_json_atomic(workdir / DONE_FILE, result._to_json(fingerprint), indent=1)
        log.info(
            "fit done in %.0f s: energy RMSE train/test %s/%s meV/atom, force RMSE %s/%s eV/Å",
            result.wall_time_s, metrics["energy_rmse_train"], metrics["energy_rmse_test"],
            metrics["force_rmse_train"], metrics["force_rmse_test"],
        )
        return result


def load_fit(workdir: Path) -> FitResult | None:
    """The completed fit stored in `workdir`, or None."""
    workdir = Path(workdir).resolve()
    return _completed(workdir, fingerprint=None)


# ---------------------------------------------------------------------------------------------- input
def training_frame(data: pd.DataFrame, elements: list[str]) -> pd.DataFrame:
    """`data` checked and converted to pacemaker's columns; FitError says what is wrong and where."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise FitError(f"training data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in ("ase_atoms", "forces", "energy_corrected") if c not in data.columns]
    if missing:
        raise FitError(f"training data lacks column(s) {missing}; it has {list(data.columns)}")
    if len(data) < 2:
        raise FitError(
            f"training set has {len(data)} structure(s); at least 2 are needed: one structure cannot be split "
            "into train and test, and a fit to a single energy is underdetermined"
        )
    known = set(elements)
    atoms_list, forces_list, energies = [], [], []
    for i, (atoms, forces, e_corr) in enumerate(zip(data["ase_atoms"], data["forces"], data["energy_corrected"])):
        try:
            validate_atoms(atoms)
        except UnphysicalStructureError as exc:
            raise FitError(f"training structure {i}: {exc}") from exc
        stray = set(atoms.get_chemical_symbols()) - known
        if stray:
            raise FitError(f"training structure {i} contains {sorted(stray)}, not among the fit's elements {elements}")
        f = np.asarray(forces, dtype=np.float64)
        if f.shape != (len(atoms), 3) or not np.all(np.isfinite(f)):
            raise FitError(f"training structure {i}: forces must be a finite ({len(atoms)}, 3) array, got shape {f.shape}")
        if not math.isfinite(float(e_corr)):
            raise FitError(f"training structure {i}: energy_corrected is {e_corr}")
        atoms_list.append(atoms.copy())  # drops any calculator: pacemaker needs geometry only
        forces_list.append(f)
        energies.append(float(e_corr))
    periodic = {bool(a.pbc.all()) for a in atoms_list}
    if len(periodic) > 1:
        log.info("training set mixes periodic and non-periodic (cluster) structures")
    frame = pd.DataFrame(
        {
            "ase_atoms": atoms_list,
            "energy": data["energy"].astype(float).to_numpy() if "energy" in data.columns else energies,
            "forces": forces_list,
            "energy_corrected": energies,
        }
    )
    if "kind" in data.columns:
        frame["kind"] = data["kind"].astype(str).to_numpy()
    if "weight" in data.columns:
        w = data["weight"].astype(float).to_numpy()
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise FitError("column 'weight' must be finite, non-negative and not all zero")
        frame["w_factor"] = w  # pacemaker multiplies its uniform energy and force weights by this column
    return frame


# Kinds that probe the repulsive wall on purpose (generate's dimers and compressed pairs, the genome's trimers):
# weighted down, never left out by the recipe's bounds.
SHORT_RANGE_KINDS = frozenset({"dimer", "trimer", "compressed"})
# Where the ZBL core may start, as a share of the sum of the pair's covalent radii (W-W: 0.55 x 3.24 = 1.78 Å,
# against 2.74 Å between bcc neighbours): below every distance a bulk, defect or MD configuration reaches, so
# the core never replaces what the data describe (a core at the training set's shortest distance, pacemaker's
# `repulsion: auto`, put ZBL at 2.09 Å and gave 8-11 eV/Å errors on test cells with 2.06 Å pairs).
CORE_RADIUS_SHARE = 0.55


def basis_signature(settings: FitSettings, elements: list[str]) -> str:
    """What fixes the shape of the basis: two fits with the same signature can warm-start one from the other."""
    keys = ("n_functions", "nradmax_by_orders", "lmax_by_orders", "cutoff", "radial_basis", "radial_parameters", "npot",
            "fs_parameters", "repulsion")
    spec = {k: getattr(settings, k) for k in keys} | {"elements": sorted(elements), "extra": settings.extra.get("potential")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _warm_start(warm_from: Path | None, settings: FitSettings, elements: list[str]) -> FitResult | None:
    if warm_from is None or not settings.warm_start:
        return None
    prev = load_fit(Path(warm_from))
    if prev is None:
        log.info("no completed fit in %s to start from: fitting from random coefficients", warm_from)
        return None
    if prev.basis_signature != basis_signature(settings, elements):
        log.info("the fit in %s has another basis: fitting from random coefficients", warm_from)
        return None
    return prev


def _composition(frame: pd.DataFrame, elements: list[str]) -> np.ndarray:
    from alloop.label.reference import composition_matrix

    return composition_matrix(list(frame["ase_atoms"]), elements)[0]


def _least_squares_reference(frame: pd.DataFrame, elements: list[str]) -> dict[str, float]:
    """Per-element energies that best explain the totals (pacemaker's reference_energy: auto, without its shift)."""
    counts = _composition(frame, elements)
    mu = np.linalg.pinv(counts, rcond=1e-10) @ frame["energy_corrected"].to_numpy(float)
    return {el: float(m) for el, m in zip(elements, mu)}


def _apply_bounds(frame: pd.DataFrame, settings: FitSettings, elements: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame without the structures above the recipe's bounds (energy per atom above the lowest one, after
    the least-squares per-element energies are taken off, so composition alone never counts as height; largest
    atomic force), and how many each bound left out. Short-range kinds stay in, with their weight times
    settings.short_range_weight."""
    frame = frame.copy()
    short = frame["kind"].isin(SHORT_RANGE_KINDS).to_numpy() if "kind" in frame.columns else np.zeros(len(frame), bool)
    if short.any():
        w = frame["w_factor"].to_numpy(float) if "w_factor" in frame.columns else np.ones(len(frame))
        frame["w_factor"] = np.where(short, w * settings.short_range_weight, w)
    mu = _least_squares_reference(frame, elements)
    n_atoms = frame["ase_atoms"].map(len).to_numpy(float)
    e_atom = (frame["energy_corrected"].to_numpy(float) - _composition(frame, elements) @ np.array([mu[el] for el in elements])) / n_atoms
    above = e_atom - e_atom[~short].min() if (~short).any() else np.zeros(len(frame))
    fmax = frame["forces"].map(lambda f: float(np.max(np.linalg.norm(f, axis=1))) if len(f) else 0.0).to_numpy()
    too_high = (above > settings.max_energy_above_min) if settings.max_energy_above_min is not None else np.zeros(len(frame), bool)
    too_hard = (fmax > settings.max_force) if settings.max_force is not None else np.zeros(len(frame), bool)
    drop = (too_high | too_hard) & ~short
    excluded = {"energy": int(np.sum(too_high & ~short)), "force": int(np.sum(too_hard & ~too_high & ~short))}
    if drop.any():
        log.warning("leaving %d of %d structures out of the fit: %d more than %s eV/atom above the lowest, %d with a "
                    "force above %s eV/Å", int(drop.sum()), len(frame), excluded["energy"], settings.max_energy_above_min,
                    excluded["force"], settings.max_force)
    if drop.all():
        raise FitError(f"every one of the {len(frame)} structures lies above the fit's bounds (max_energy_above_min="
                       f"{settings.max_energy_above_min} eV/atom, max_force={settings.max_force} eV/Å): nothing to fit")
    return frame[~drop].reset_index(drop=True), excluded


def _reference_energy(settings: FitSettings, elements: list[str], warm: FitResult | None,
                      isolated: dict[str, float] | None) -> dict[str, float] | None:
    """The per-element energies taken off before fitting: the warm start's (a potential fits on in the frame it
    learnt), else the isolated atoms'; None for absolute energies."""
    if settings.reference_energy == "none":
        return None
    if warm is not None:
        return None if warm.reference_energy is None else dict(warm.reference_energy)
    if isolated is None or any(el not in isolated for el in elements):
        log.info("no isolated-atom energies for %s: fitting absolute energies", elements)
        return None
    return {el: float(isolated[el]) for el in elements}


def _core_radius(frame: pd.DataFrame, elements: list[str]) -> float:
    """Where the ZBL core takes over: the shortest training distance, at most CORE_RADIUS_SHARE of the smallest
    sum of covalent radii among the elements."""
    from ase.data import atomic_numbers, covalent_radii
    from ase.neighborlist import neighbor_list

    radii = [float(covalent_radii[atomic_numbers[el]]) for el in elements]
    cap = CORE_RADIUS_SHARE * 2 * min(radii)
    shortest = cap
    for atoms in frame["ase_atoms"]:
        d = neighbor_list("d", atoms, cap)
        if len(d):
            shortest = min(shortest, float(d.min()))
    return shortest


def fit_fingerprint(frame: pd.DataFrame, settings: FitSettings, elements: list[str], warm: FitResult | None = None) -> str:
    h = hashlib.sha256()
    h.update(settings.model_dump_json(exclude={"test_sets"}).encode())  # scoring sets are not part of the fit
    h.update(json.dumps(elements).encode())
    if warm is not None:  # the same data fitted on from another potential is another fit
        for p in warm.committee:
            h.update(hashlib.sha256(Path(p).read_bytes()).digest())
    weights = frame["w_factor"] if "w_factor" in frame.columns else [1.0] * len(frame)
    for atoms, forces, e, w in zip(frame["ase_atoms"], frame["forces"], frame["energy_corrected"], weights):
        h.update(config_hash(atoms).encode())
        h.update(np.round(np.asarray([e, w], dtype=np.float64), 8).tobytes())
        h.update(np.round(forces, 6).tobytes())
    return h.hexdigest()


def _check_basis_covered(train: pd.DataFrame, settings: FitSettings, elements: list[str]) -> None:
    """pace_activeset needs at least as many training atoms of each element as that element has basis
    functions (MaxVol picks a square matrix); find out before spending hours on the fit."""
    from alloop.train.select import untrained_model

    try:
        model = untrained_model(settings, tuple(elements))
    except ImportError as exc:
        raise MissingFileError("pyace", "pacemaker (python-ace)", _install_ace()) from exc
    n_funcs = {model.elements[st]: n for st, n in model.n_functions.items()}
    counts: dict[str, int] = dict.fromkeys(elements, 0)
    for atoms in train["ase_atoms"]:
        for sym, n in zip(*np.unique(atoms.get_chemical_symbols(), return_counts=True)):
            counts[str(sym)] += int(n)
    short = {el: (counts[el], n_funcs[el]) for el in elements if counts[el] < n_funcs[el]}
    if short:
        detail = ", ".join(f"{el}: {have} atoms for {need} functions" for el, (have, need) in short.items())
        raise FitError(
            f"too few training atoms (test set excluded) for the active set ({detail}): each element needs at least as many "
            "atoms as basis functions; add structures or lower n_functions"
        )


def _split(frame: pd.DataFrame, settings: FitSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test sets drawn with settings.seed; pacemaker's own split would move with each committee
    member's seed and make their test metrics incomparable."""
    n = len(frame)
    n_test = min(int(round(n * settings.test_fraction)), n - 1)
    order = np.random.default_rng(settings.seed).permutation(n)
    pick = lambda idx: frame.iloc[np.sort(idx)].reset_index(drop=True)  # noqa: E731
    return pick(order[n_test:]), pick(order[:n_test])


# ---------------------------------------------------------------------------------------------- running
def _install_ace() -> str:
    from alloop.ensemble.pins import pinned

    return f"pip install {pinned('python-ace')}"


def _executable(name: str) -> str:
    # The venv's bin/ is not on PATH when alloop runs as .venv/bin/python; look beside the interpreter first.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise MissingFileError(name, f"`{name}` executable (python-ace)", _install_ace())
    return found


class _KilledBySignal(FitError):
    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


# A pacemaker killed by a signal (the OOM killer, a node's cleanup, an operator) says nothing about the data;
# it is run again from its input, this many times in all, before the fit fails.
FIT_ATTEMPTS = 3


def _run_surviving_signals(cmd: list[str], cwd: Path, log_path: Path, timeout_s: float | None, what: str) -> None:
    keep = {"input.yaml"}
    for attempt in range(1, FIT_ATTEMPTS + 1):
        try:
            return _run(cmd, cwd, log_path, timeout_s, what)
        except _KilledBySignal as exc:
            if attempt == FIT_ATTEMPTS:
                raise FitError(f"{what} was killed by a signal in each of {FIT_ATTEMPTS} attempts, the last time by "
                               f"{signal_name(exc.signum)}; look for memory limits (dmesg, the batch system's "
                               f"accounting); log: {log_path}") from None
            log.warning("%s killed by %s (attempt %d of %d); running it again", what, signal_name(exc.signum),
                        attempt, FIT_ATTEMPTS)
            for p in cwd.iterdir():
                if p.name not in keep:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()


def _run(cmd: list[str], cwd: Path, log_path: Path, timeout_s: float | None, what: str) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PACEMAKERDATAPATH", None)  # would redirect the relative data paths in input.yaml
    with open(log_path, "a") as out:
        out.write(f"\n===== {what} in {cwd} ({time.strftime('%Y-%m-%d %H:%M:%S')}): {' '.join(cmd)}\n")
        out.flush()
        # a timeout or our own interruption stops the whole group: never a fit running behind a dead controller
        rc, timed_out = run_child(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout_s=timeout_s)
    if timed_out:
        raise FitError(f"{what} did not finish within {timeout_s:.0f} s (log: {log_path})")
    if rc < 0:
        raise _KilledBySignal(f"{what} was killed by {signal_name(-rc)}", -rc)
    if rc != 0:
        raise FitError(f"{what} failed with exit code {rc}; last lines of {log_path}:\n{_tail(log_path)}")


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return tail_lines("\n".join(lines), n, "    ")


def _checked_potential(mdir: Path, maxiter: int, warm: bool = False) -> Path:
    """The member's potential, after checking that the fit neither diverged nor left a broken file. `warm`: the
    fit started from an earlier potential, which may already sit at the loss' minimum."""
    log_txt = mdir / "log.txt"
    text = log_txt.read_text(errors="replace") if log_txt.is_file() else ""
    bad = next((line for line in text.splitlines() if _NAN_LOSS_RE.search(line)), None)
    if bad is not None:
        raise FitError(f"fit in {mdir} diverged (non-finite loss): {bad.strip()}")
    pot = mdir / POTENTIAL_FILE
    if not pot.is_file() or pot.stat().st_size == 0:
        raise FitError(f"pacemaker stopped without writing {pot}; last lines of {log_txt}:\n{_tail(log_txt)}")
    coeffs = _potential_coefficients(pot)
    if not np.all(np.isfinite(coeffs)):
        raise FitError(f"fit in {mdir} diverged: {pot} holds non-finite coefficients")
    status, n_iter = _optimizer_status(text), _iterations(text)
    if status == _STATUS_NAN:
        raise FitError(f"fit in {mdir} diverged: {_optimizer_message(text)}")
    # A line search that gives up late is BFGS's usual way to end a long fit; giving up within the first
    # tenth of the budget means the optimisation never got going, unless it started from a fitted potential
    # at its minimum (the final fit on the last iteration's data, a warm update that adds little)
    if status == _STATUS_GAVE_UP and warm:
        log.info("the warm-started fit in %s stopped after %d of %d iterations at the loss' precision: %s", mdir, n_iter,
                 maxiter, _optimizer_message(text))
    elif status == _STATUS_GAVE_UP and n_iter < max(1, maxiter // 10):
        raise FitError(f"fit in {mdir} stopped early after {n_iter} of {maxiter} iterations: {_optimizer_message(text)}")
    return pot


def _potential_coefficients(pot: Path) -> np.ndarray:
    from pyace import ACEBBasisSet, BBasisConfiguration

    try:
        return np.asarray(ACEBBasisSet(BBasisConfiguration(str(pot))).all_coeffs, dtype=np.float64)
    except Exception as exc:  # pyace's YAML reader raises RuntimeError with a C++ message
        raise FitError(f"potential file {pot} is corrupt or not an ACE B-basis: {exc}") from exc


def _iterations(log_text: str) -> int:
    found = _ITER_RE.findall(log_text)
    return max(map(int, found)) if found else 0


def _optimizer_status(log_text: str) -> int | None:
    found = _OPT_RE.findall(log_text)
    return int(found[-1][1]) if found else None


def _optimizer_message(log_text: str) -> str:
    found = _OPT_RE.findall(log_text)
    return found[-1][2].strip() if found else "no optimizer result in log"


def _build_active_set(potential: Path, workdir: Path, timeout_s: float | None) -> Path:
    # --all-atoms: every training atom enters MaxVol (pacemaker's default would first drop atoms with large
    # force errors, and its batched mode refuses to run without this flag).
    cmd = [_executable("pace_activeset"), "-a", "-d", f"../{TRAIN_FILE}", potential.name]
    _run(cmd, potential.parent, workdir / LOG_FILE, timeout_s, "pace_activeset")
    asi = potential.with_suffix(".asi")
    try:
        with np.load(asi) as data:
            ok = all(np.all(np.isfinite(data[k])) for k in data.files) and bool(data.files)
    except Exception as exc:
        raise FitError(f"pace_activeset left no readable active set {asi}: {exc}") from exc
    if not ok:
        raise FitError(f"active set {asi} holds non-finite values")
    return asi


# ---------------------------------------------------------------------------------------------- metrics
def _member_metrics(mdir: Path, maxiter: int) -> dict[str, Any]:
    text = (mdir / "log.txt").read_text(errors="replace")
    nf = _NFUNC_RE.findall(text)
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        e, f = _rmse(mdir / f"{split}_pred.pckl.gzip")
        out[f"energy_rmse_{split}"] = e
        out[f"force_rmse_{split}"] = f
    out.update(
        n_functions=int(nf[-1][0]) if nf else None,
        n_parameters=int(nf[-1][1]) if nf else None,
        n_iterations=_iterations(text),
        maxiter=maxiter,
        optimizer_message=_optimizer_message(text),
    )
    return out


def _rmse(pred_file: Path) -> tuple[float | None, float | None]:
    """(energy RMSE in meV/atom, force RMSE in eV/Å per component) from pacemaker's predictions
    (alloop.train.evaluate.error_metrics, the rule of every other error alloop reports)."""
    import pandas as pd

    from alloop.train.evaluate import error_metrics

    if not pred_file.is_file():
        return None, None
    df = pd.read_pickle(pred_file, compression="gzip")
    n = df["forces"].map(len).to_numpy()
    m = error_metrics(df["energy_corrected"].to_numpy(float) / n, df["energy_pred"].to_numpy(float) / n,
                      np.concatenate([np.asarray(r).ravel() for r in df["forces"]]),
                      np.concatenate([np.asarray(p).ravel() for p in df["forces_pred"]]))
    return round(m["energy_rmse"], 4), round(m["force_rmse"], 5)


# ---------------------------------------------------------------------------------------------- workdir state
def _completed(workdir: Path, fingerprint: str | None) -> FitResult | None:
    path = workdir / DONE_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        result = FitResult._from_json(workdir, d)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s (%s): refitting", path, exc)
        return None
    if fingerprint is not None and d.get("fingerprint") != fingerprint:
        log.warning("%s holds a fit of other data or settings: refitting", workdir)
        return None
    files = result._files()
    if not all(p.is_file() and p.stat().st_size > 0 for p in files):
        log.warning("%s is marked complete but output files are missing: refitting", workdir)
        return None
    # a potential or active set cut short (a full disk, a partial copy) is refitted, not loaded
    written = d.get("sha256", {})  # absent in fits recorded before the hashes were
    damaged = [p.name for p in files if (want := written.get(str(p.relative_to(workdir)))) is not None and _sha256(p) != want]
    if damaged:
        log.warning("%s is marked complete but %s changed since the fit wrote it: refitting", workdir, ", ".join(damaged))
        return None
    return result


def _sha256(path: Path) -> str:
    return content_hash(path, path.stat().st_size)


def _clean(workdir: Path) -> None:
    """Remove what a previous (interrupted or outdated) fit left; foreign files stay."""
    for entry in workdir.iterdir():
        if entry.name == DONE_FILE:
            entry.unlink()  # first: from here on the workdir is visibly incomplete
    for entry in workdir.iterdir():
        if entry.is_dir() and _MEMBER_RE.match(entry.name):
            shutil.rmtree(entry)
        elif entry.name in (TRAIN_FILE, TEST_FILE, LOG_FILE) or entry.name.startswith(f".{DONE_FILE}."):
            entry.unlink()
