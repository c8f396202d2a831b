"""`alloop env`: member environments per uMLIP family, built with a pinned torch and alloop's worker.

The mace, orb and fairchem environments are real (.ci/install creates them with `alloop env create`);
a missing one fails these tests. The slow ones import the real libraries in their environments
(fairchem alone takes ~30 s to import).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alloop.cli import main
from alloop.ensemble import environments as envs
from alloop.ensemble import provisioning
from alloop.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
LIVE = ("mace", "orb", "fairchem")


def test_plan_pins_torch_before_anything_else_and_installs_alloop_without_its_dependencies(tmp_path, monkeypatch):
    monkeypatch.setenv(envs.ENV_DIR_ENV, str(tmp_path))
    p = provisioning.plan("mace")
    assert p.prefix == tmp_path / "mace" and p.python == tmp_path / "mace" / "bin" / "python"
    venv, pip_up, torch, family, alloop = p.commands()
    assert venv[1:] == ["-m", "venv", str(p.prefix)]
    assert torch[-3:] == ["-c", str(p.constraints_file), "torch==2.13.0"]
    assert family[family.index("-c") + 1] == str(p.constraints_file)
    assert "mace-torch==0.3.16" in family and {"ase>=3.23", "pydantic>=2.6", "PyYAML>=6.0"} <= set(family)
    # From a checkout the worker's alloop is this checkout (editable), without dask, GPAW, pacemaker.
    assert alloop[-3:] == ["--no-deps", "-e", str(REPO)]


def test_a_cuda_torch_comes_from_the_index_the_user_names(tmp_path):
    p = provisioning.plan("orb", tmp_path / "orb-gpu", torch="torch==2.13.0+cu128",
                  torch_index="https://download.pytorch.org/whl/cu128")
    torch = p.commands()[2]
    assert torch[-3:] == ["--extra-index-url", "https://download.pytorch.org/whl/cu128", "torch==2.13.0+cu128"]


def test_grace_gets_the_cpu_tensorflow_and_no_torch(tmp_path):
    p = provisioning.plan("grace", tmp_path / "grace")
    steps = [" ".join(cmd) for cmd in p.commands()]
    assert not any(step.endswith(" torch==2.13.0") for step in steps)  # still pinned as a constraint
    assert "tensorflow-cpu==2.20.0" in steps[2]
    assert steps[-1].endswith(f"--no-deps tensorpotential==0.6.2.1 -e {REPO}")


def test_unknown_family_and_bad_torch_are_config_errors():
    with pytest.raises(ConfigError, match="unknown family 'schnet' .known: mace, orb, fairchem"):
        provisioning.plan("schnet")
    with pytest.raises(ConfigError, match="--torch must be a torch requirement"):
        provisioning.plan("mace", torch="2.13.0")


@pytest.mark.slow
@pytest.mark.parametrize("family", LIVE)
def test_each_family_environment_loads_its_library_with_the_pinned_cpu_torch(family):
    status = envs.probe(envs.env_dir() / family)
    assert status.loads, f"{status.error}; create it with `alloop env create {family}` (.ci/install does)"
    assert status.family == family and status.versions["alloop"] is not None
    assert status.versions["torch"].startswith("2.13.0")
    assert envs.read_record(status.prefix).requirements == provisioning.RECIPES[family].requirements


@pytest.mark.slow
def test_mace_and_sevenn_need_different_e3nn_so_mace_has_its_own_environment():
    from importlib.metadata import version

    mace = envs.probe(envs.env_dir() / "mace")
    assert mace.versions["e3nn"] == "0.4.4" and version("e3nn") == "0.6.0"


@pytest.mark.slow
def test_env_list_shows_each_environment_and_its_python_line(capsys):
    # other environments in the shared cache (deepmd, grace, ...) are not this test's business
    assert main(["env", "list", *LIVE]) == 0
    out = capsys.readouterr().out
    for family in LIVE:
        assert f"python: {envs.env_dir() / family / 'bin' / 'python'}" in out
    assert "mace-torch 0.3.16" in out and "orb-models 0.5.5" in out and "fairchem-core 2.24.0" in out


def test_env_list_reports_a_broken_environment(tmp_path, capsys):
    prefix = tmp_path / "mace"
    (prefix / "bin").mkdir(parents=True)
    record = envs.EnvironmentRecord(family="mace", prefix=prefix, torch="torch==2.13.0",
                                    requirements=("mace-torch==0.3.16",), alloop=str(REPO), created="now")
    (prefix / envs.RECORD_NAME).write_text(record.model_dump_json())
    # Not a venv: the base interpreter has no mace (alloop comes from this checkout, as for a worker).
    (prefix / "bin" / "python").symlink_to(sys.executable)
    assert main(["env", "list", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "mace       BROKEN  " in out and "mace-torch missing" in out
    assert "ModuleNotFoundError: No module named" in out
    assert f"repair it with: alloop env create mace --prefix {prefix}" in out


@pytest.mark.slow
def test_create_again_is_up_to_date_in_seconds():
    # the first create re-points the environment at this checkout if another one made it (the cache is shared)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "alloop.cli", "env", "create", "mace"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert f"up to date: {envs.env_dir() / 'mace'}" in done.stderr
    assert done.stdout.strip() == f"python: {envs.env_dir() / 'mace' / 'bin' / 'python'}"


@pytest.mark.slow
def test_dry_run_resolves_orb_with_the_cpu_torch_and_installs_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-m", "alloop.cli", "env", "create", "orb", "--dry-run",
                           "--prefix", str(tmp_path / "orb")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pins = dict(line.split("==") for line in done.stdout.split())
    assert pins["torch"].startswith("2.13.0") and pins["orb-models"] == "0.5.5"
    assert not (tmp_path / "orb").exists()
