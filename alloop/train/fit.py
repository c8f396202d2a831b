"""Fit an ACE potential (or a committee of them) with pacemaker and build its active set.

A fit lives in one work directory:

    train.pckl.gzip, test.pckl.gzip    the split, in pacemaker's format (shared by all members)
    member_0/ ... member_{N-1}/        one pacemaker run each (input.yaml, log.txt, output_potential.yaml)
    member_0/output_potential.asi      the active set of "the" potential (member 0)
    pacemaker.log                      stdout/stderr of every subprocess
    fit_done.json                      written atomically, last: its presence means the fit is complete

Anything else alloop finds there without fit_done.json is the debris of an interrupted fit and is removed
before fitting again. This module runs pacemaker and pace_activeset in that directory and keeps its state; what
goes into the fit (the checked frame, its bounds, split and fingerprint) is alloop.train.frame's.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from alloop.errors import FitError, MissingFileError
from alloop.fingerprints import content_hash
from alloop.locks import exclusive_dir
from alloop.process import run_child, signal_name, tail_lines
from alloop.train.frame import apply_bounds, composition, core_radius, fit_fingerprint, split_train_test, training_frame
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
    frame, excluded = apply_bounds(frame, settings, elements)
    reference = _reference_energy(settings, elements, warm, isolated_energies)
    if reference is not None:
        # pacemaker takes the reference off `energy` itself and keeps it in the potential's metadata
        frame["energy"] = frame["energy_corrected"]
        frame["energy_corrected"] = frame["energy"] - composition(frame, elements) @ np.array([reference[el] for el in elements])
    r_in = core_radius(frame, elements) if settings.repulsion else None
    fingerprint = fit_fingerprint(frame, settings, elements, () if warm is None else warm.committee)
    # the task around a campaign's fit holds this lock already (re-entrant); a second fit in it is refused
    with exclusive_dir(given, wait=False):
        done = _completed(workdir, fingerprint)
        if done is not None:
            log.info("fit in %s is complete, reusing it", workdir)
            return done
        train, test = split_train_test(frame, settings)
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
            # --no-predict: pacemaker's predictions would trace TensorFlow's graph once more (seconds per fit); the
            # metrics below come from pyace's evaluator, alloop's one path for errors
            _run_surviving_signals([exe, "--no-predict", "input.yaml"], mdir, workdir / LOG_FILE, settings.timeout_s,
                                   f"member {k}: pacemaker")
            members.append(_checked_potential(mdir, int(config["fit"]["maxiter"]), warm=initial is not None))
            member_metrics.append(_member_metrics(mdir, int(config["fit"]["maxiter"]), members[-1],
                                                  {"train": train, "test": test}, reference is not None))
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


# ---------------------------------------------------------------------------------------------- warm start and basis
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
def _member_metrics(mdir: Path, maxiter: int, potential: Path, splits: dict[str, pd.DataFrame],
                    referenced: bool) -> dict[str, Any]:
    text = (mdir / "log.txt").read_text(errors="replace")
    nf = _NFUNC_RE.findall(text)
    out: dict[str, Any] = {}
    for split, frame in splits.items():
        e, f = _rmse(potential, frame, referenced)
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


def _rmse(potential: Path, frame: pd.DataFrame, referenced: bool) -> tuple[float | None, float | None]:
    """(energy RMSE in meV/atom, force RMSE in eV/Å per component) of `potential` on a split of the fit, by
    alloop.train.evaluate (the rule of every other error alloop reports); (None, None) for an empty split.
    `referenced`: the frame's `energy` holds the labels and `energy_corrected` them less the reference energies
    the potential adds back; otherwise `energy_corrected` are the labels."""
    from alloop.train.evaluate import errors_against

    if frame.empty:
        return None, None
    labels = frame["energy" if referenced else "energy_corrected"].to_numpy(float)
    m, _ = errors_against(potential, list(frame["ase_atoms"]), labels, list(frame["forces"]))
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
