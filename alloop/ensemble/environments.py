"""Member environments at run time: where they are, which family runs which member kind, how a worker in
another interpreter is started (`worker_environ`) and whether an environment can load its family (`probe`).

One virtual environment per uMLIP family whose package cannot share alloop's: mace-torch pins e3nn 0.4.4
(sevenn needs >= 0.5), fairchem-core brings numpy 2.4 and its own CUDA helpers, orb-models its own torch
range. Each family's ensemble members run there with `python: <env>/bin/python` (alloop.ensemble.worker).
Building one is `alloop env create` (alloop.ensemble.provisioning); each records how it was made in
`alloop-env.json`. Nothing here imports torch or a uMLIP library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from alloop.ensemble.pins import pinned
from alloop.errors import ConfigError
from alloop.process import run_captured, tail_lines

ENV_DIR_ENV = "ALLOOP_ENV_DIR"
RECORD_NAME = "alloop-env.json"
_ALLOOP_SOURCE = Path(__file__).resolve().parents[2]


class Family(BaseModel):
    """What a family's environment installs and how alloop checks that it can load the family."""

    model_config = ConfigDict(frozen=True)

    kinds: tuple[str, ...] = Field(description="member kinds (alloop.ensemble.kinds) this environment runs")
    requirements: tuple[str, ...] = Field(description="pip requirements of the family, at tested versions")
    no_deps: tuple[str, ...] = Field((), description="installed with --no-deps (their declared dependencies "
                                     "would pull CUDA builds); their real dependencies go in requirements")
    uses_torch: bool = Field(True, description="False: no torch is installed (it stays pinned as a constraint)")
    imports: tuple[str, ...] = Field(description="modules the import check loads")
    distributions: tuple[str, ...] = Field(description="distributions whose versions `env list` reports")
    note: str = ""


FAMILIES: MappingProxyType[str, Family] = MappingProxyType(
    {
        "mace": Family(
            kinds=("mace",),
            requirements=(pinned("mace-torch"),),
            imports=("mace.calculators", "mace.modules"),
            distributions=("mace-torch", "e3nn", "torch"),
            note="pins e3nn 0.4.4, which sevenn (e3nn >= 0.5) cannot share",
        ),
        "orb": Family(
            kinds=("orb",),
            requirements=(pinned("orb-models"),),
            imports=("orb_models.forcefield.pretrained", "orb_models.forcefield.calculator"),
            distributions=("orb-models", "torch"),
            note="0.5.5 is the newest orb-models that resolves with torch 2.13",
        ),
        "fairchem": Family(
            kinds=("fairchem",),
            requirements=(pinned("fairchem-core"),),
            imports=("fairchem.core", "fairchem.core.units.mlip_unit"),
            distributions=("fairchem-core", "e3nn", "numpy", "torch"),
            note="UMA/eSEN checkpoints (fairchem-core 2); brings numpy 2.4",
        ),
        "mattersim": Family(
            kinds=("mattersim",),
            requirements=(pinned("mattersim"),),
            imports=("mattersim.forcefield",),
            distributions=("mattersim", "torch"),
        ),
        "grace": Family(
            kinds=("grace",),
            # tensorpotential declares tensorflow[and-cuda] (12 CUDA wheels): the CPU TensorFlow and
            # tensorpotential's other dependencies instead, as in alloop's own environment.
            requirements=(pinned("tensorflow-cpu"), pinned("tf_keras"), "matscipy", "pandas", "questionary",
                          "requests", "rich", "scikit-learn", "scipy", "sympy", "tqdm"),
            no_deps=(pinned("tensorpotential"),),
            uses_torch=False,
            imports=("tensorpotential.calculator",),
            distributions=("tensorpotential", "tensorflow-cpu"),
            note="TensorFlow-based, no torch",
        ),
        "nequip": Family(
            kinds=("nequip",),
            requirements=(pinned("nequip"),),
            imports=("nequip.ase",),
            distributions=("nequip", "torch"),
        ),
        "deepmd": Family(
            kinds=("deepmd",),
            requirements=(pinned("deepmd-kit"),),
            imports=("deepmd.calculator",),
            distributions=("deepmd-kit", "torch"),
        ),
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


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError([f"unknown family '{name}' (known: {', '.join(FAMILIES)})"], "alloop env") from None


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
