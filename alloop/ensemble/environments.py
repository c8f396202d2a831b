"""Member environments at run time: where they are, which family runs which member kind, what an environment
says it was made from (`alloop-env.json`), how a worker in another interpreter is started (`worker_environ`)
and whether an environment can load its family (`probe`).

One virtual environment per uMLIP family whose package cannot share alloop's: mace-torch pins e3nn 0.4.4
(sevenn needs >= 0.5), fairchem-core brings numpy 2.4 and its own CUDA helpers, orb-models its own torch
range. Each family's ensemble members run there with `python: <env>/bin/python` (alloop.ensemble.worker).
Building one is `alloop env create` (alloop.ensemble.provisioning: what each family installs, at the versions
of alloop.ensemble.pins), which records how it was made in `alloop-env.json`. Nothing here imports torch or
a uMLIP library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from alloop.process import run_captured, tail_lines

ENV_DIR_ENV = "ALLOOP_ENV_DIR"
RECORD_NAME = "alloop-env.json"
_ALLOOP_SOURCE = Path(__file__).resolve().parents[2]


class Family(BaseModel):
    """What runs in a family's environment and how alloop checks that it can load the family (what it installs
    there: alloop.ensemble.provisioning.RECIPES)."""

    model_config = ConfigDict(frozen=True)

    kinds: tuple[str, ...] = Field(description="member kinds (alloop.ensemble.kinds) this environment runs")
    imports: tuple[str, ...] = Field(description="modules the import check loads")
    distributions: tuple[str, ...] = Field(description="distributions whose versions `env list` reports")


FAMILIES: MappingProxyType[str, Family] = MappingProxyType(
    {
        "mace": Family(kinds=("mace",), imports=("mace.calculators", "mace.modules"),
                       distributions=("mace-torch", "e3nn", "torch")),
        "orb": Family(kinds=("orb",), imports=("orb_models.forcefield.pretrained", "orb_models.forcefield.calculator"),
                      distributions=("orb-models", "torch")),
        "fairchem": Family(kinds=("fairchem",), imports=("fairchem.core", "fairchem.core.units.mlip_unit"),
                           distributions=("fairchem-core", "e3nn", "numpy", "torch")),
        "mattersim": Family(kinds=("mattersim",), imports=("mattersim.forcefield",), distributions=("mattersim", "torch")),
        "grace": Family(kinds=("grace",), imports=("tensorpotential.calculator",),
                        distributions=("tensorpotential", "tensorflow-cpu")),
        "nequip": Family(kinds=("nequip",), imports=("nequip.ase",), distributions=("nequip", "torch")),
        "deepmd": Family(kinds=("deepmd",), imports=("deepmd.calculator",), distributions=("deepmd-kit", "torch")),
    }
)


class EnvironmentRecord(BaseModel):
    """`alloop-env.json` in an environment: how it was made."""

    family: str
    prefix: Path
    torch: str
    torch_index: str | None = None
    constraints: tuple[str, ...] = ()
    requirements: tuple[str, ...]
    no_deps: tuple[str, ...] = ()
    alloop: str
    created: str


class EnvironmentStatus(BaseModel):
    """What an environment can load: the import check's result and the installed versions."""

    family: str | None
    prefix: Path
    python: Path
    loads: bool
    versions: dict[str, str | None] = Field(default_factory=dict)
    error: str | None = None


def env_dir() -> Path:
    """Folder holding the environments: $ALLOOP_ENV_DIR, else ~/.cache/alloop/envs."""
    value = os.environ.get(ENV_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "alloop" / "envs"


def family_of_kind(kind: str) -> str | None:
    """The family whose environment runs members of `kind`, if alloop can build one."""
    return next((name for name, fam in FAMILIES.items() if kind in fam.kinds), None)


def alloop_checkout() -> Path | None:
    """The source checkout this alloop runs from, or None for an installed (wheel) alloop."""
    if (_ALLOOP_SOURCE / "pyproject.toml").is_file() and (_ALLOOP_SOURCE / "alloop").is_dir():
        return _ALLOOP_SOURCE
    return None


def worker_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables another interpreter's worker runs under. From a source checkout the
    checkout goes first on PYTHONPATH, so the worker runs the controller's code even when the environment's
    own (editable) alloop points at a checkout that has moved; an installed alloop adds nothing (its
    site-packages would shadow the environment's e3nn, numpy, torch)."""
    env = dict(os.environ if base is None else base)
    checkout = alloop_checkout()
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(checkout), env.get("PYTHONPATH")) if p)
    return env


def read_record(prefix: str | Path) -> EnvironmentRecord:
    return EnvironmentRecord.model_validate_json((Path(prefix) / RECORD_NAME).read_text())


def environments(folder: str | Path | None = None) -> list[Path]:
    """Prefixes of the environments under `folder` (default: env_dir()) that alloop made."""
    root = Path(folder) if folder is not None else env_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / RECORD_NAME).is_file())


# The import check runs in the environment's own interpreter: it must only use the standard library
# before importing the family.
_PROBE = """
import importlib, importlib.metadata as md, json, sys
out = {"loads": True, "error": None, "versions": {}}
for d in json.loads(sys.argv[2]):
    try:
        out["versions"][d] = md.version(d)
    except md.PackageNotFoundError:
        out["versions"][d] = None
try:
    for m in json.loads(sys.argv[1]):
        importlib.import_module(m)
except Exception as exc:
    out["loads"], out["error"] = False, f"import {m}: {type(exc).__name__}: {exc}"
print("ALLOOP-PROBE " + json.dumps(out))
"""


def probe(prefix: str | Path, name: str | None = None, *, timeout: float = 600) -> EnvironmentStatus:
    """Import the family's modules (and alloop's worker) in the environment at `prefix`."""
    prefix = Path(prefix)
    python = prefix / "bin" / "python"
    if name is None:
        name = read_record(prefix).family if (prefix / RECORD_NAME).is_file() else None
    fam = FAMILIES.get(name) if name else None
    modules = ["alloop.ensemble.worker", *(fam.imports if fam else ())]
    dists = ["alloop", *(fam.distributions if fam else ("torch",))]
    base = EnvironmentStatus(family=name, prefix=prefix, python=python, loads=False)
    if not python.is_file():
        return base.model_copy(update={"error": f"no interpreter at {python}"})
    # The check sees what a worker would: the environment's packages, plus this checkout's alloop (the
    # caller's own PYTHONPATH dropped, it is not the worker's).
    env = worker_environ({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    done = run_captured([str(python), "-c", _PROBE, json.dumps(modules), json.dumps(dists)],
                        timeout_s=timeout, env=env, cwd=prefix)
    if done.timed_out:
        return base.model_copy(update={"error": f"import check timed out after {timeout:.0f} s"})
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("ALLOOP-PROBE ")), None)
    if line is None:
        tail = tail_lines(done.stderr.strip(), 5)
        return base.model_copy(update={"error": f"import check exited with code {done.returncode}: {tail}"})
    return EnvironmentStatus(family=name, prefix=prefix, python=python, **json.loads(line[len("ALLOOP-PROBE "):]))
