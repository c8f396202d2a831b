"""alloop as users install it: a wheel built from the repository (`pip wheel`), installed into a fresh
virtual environment and run from a folder outside the repository, so nothing can come from the clone.

The fresh environment reuses the test environment's installed dependencies instead of installing them
again: a .pth file in it lists the test environment's site-packages as plain paths. Python puts such
paths on sys.path without running the .pth files inside them, among them the editable install's
finder that would map `alloop` to the clone; the wheel's own alloop comes first on the path anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: what a build needs: the package, the folders setup.py copies into it, the build configuration
BUILD_INPUTS = ("alloop", "db", "templates", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")

# The smallest campaign on real parts: one iteration, cells of at most 8 atoms, every candidate labelled
# by the uMLIP (U_c far above any U), so that DFT (a coarse GPAW) runs at most for cells the controller
# adds itself (energy-reference calibration); an 8-function ACE with a few BFGS steps.
SMOKE = """\
name: wheel-smoke
elements: [W]
seed: 3
workdir: run
max_iterations: 1
ensemble: offline-fast
uncertainty: {u_c: 1000.0}
labels:
  energy_member: 7net-0
  force_member: 7net-0
  dft:
    backend: gpaw
    gpaw: {ecut: 200, kpts: [1, 1, 1], maxiter: 120, energy_tol: 1.0e-4}
generate:
  lattice: bcc
  max_atoms: 8
  counts: {strained_bulk: 2, rattled_bulk: 2, vacancy: 0, interstitial: 0, surface: 0, dimer: 1, compressed: 0}
selection: {budget: 5}
train: {n_functions: 8, maxiter: 5, test_fraction: 0.0, final_maxiter: 0}
convergence: {target_share: 0.0, min_sample: 2}
cluster: {n_workers: 1}
properties: {properties: [lattice], teacher: false}  # reads the reference table the wheel ships
"""


def _env() -> dict[str, str]:
    """The caller's environment without PYTHONPATH (which may point at the clone), and with the borrowed
    dependencies' commands (pacemaker, pace_activeset) on PATH, where their own installation puts them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _fresh_venv(path: Path) -> Path:
    """An empty virtual environment that borrows the test environment's dependencies; its python."""
    _run([sys._base_executable, "-m", "venv", "--without-pip", path], path.parent)
    python = path / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path).stdout.strip()
    (Path(purelib) / "alloop-test-dependencies.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    return python


def _pip_install(python: Path, what: Path) -> None:
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "--no-build-isolation", "-q", what], what.parent)


def _assert_alloop_and_its_data_come_from(python: Path, venv: Path, cwd: Path) -> None:
    probe = ("import alloop, alloop.resources as r; print(alloop.__file__); "
             "print(r.shipped_dir('db')); print(r.template_path('vasp/INCAR'))")
    paths = [Path(p) for p in _run([python, "-c", probe], cwd).stdout.split()]
    assert all(p.is_relative_to(venv) and p.exists() for p in paths), paths
    assert paths[1].name == "db" and paths[1].parent.name == "_data" and (paths[1] / "0001_initial.sql").is_file()


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A copy of BUILD_INPUTS: a build writes build/ and alloop.egg-info/ beside the sources, and the copy
    shows that these files are all a build needs."""
    src = tmp_path_factory.mktemp("build") / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "_data"))
        else:
            shutil.copy(path, src / name)
    return src


@pytest.fixture(scope="module")
def venv(sources: Path, tmp_path_factory) -> Path:
    """A fresh virtual environment with alloop installed from a wheel built by `pip wheel`."""
    root = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist",
          sources], root)
    (wheel,) = (root / "dist").glob("alloop-*.whl")
    _pip_install(_fresh_venv(root / "venv"), wheel)
    return root / "venv"


def test_the_installed_package_and_its_data_are_the_wheels(venv: Path, tmp_path: Path) -> None:
    _assert_alloop_and_its_data_come_from(venv / "bin" / "python", venv, tmp_path)


def test_pip_install_dot_installs_the_data_too(sources: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _pip_install(python, sources)  # `pip install .` in the repository, non-editable
    _assert_alloop_and_its_data_come_from(python, tmp_path / "venv", tmp_path)


def test_validate_and_a_small_campaign_run_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    alloop = venv / "bin" / "alloop"
    out = _run([alloop, "validate", REPO / "examples" / "w-quickstart" / "campaign.yaml"], tmp_path).stdout
    assert "w-quickstart" in out

    (tmp_path / "campaign.yaml").write_text(SMOKE)
    _run([alloop, "run", "campaign.yaml"], tmp_path, timeout=900)
    status = json.loads(_run([alloop, "status", "campaign.yaml", "--json"], tmp_path).stdout)
    assert status["stage"] == "done" and Path(status["potential"]["path"]).is_file()
    assert status["labels"]["umlip"] >= 1
    # the potential's properties were computed from the wheel's own reference table (package data)
    properties = _run([alloop, "properties", "campaign.yaml", "--json"], tmp_path).stdout
    assert json.loads(properties)["result"]["property_set"] == ["lattice"]
