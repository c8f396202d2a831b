"""Member environments: one virtual environment per uMLIP family whose package cannot share alloop's.

mace-torch pins e3nn 0.4.4 (sevenn needs >= 0.5), fairchem-core brings numpy 2.4 and its own CUDA
helpers, orb-models its own torch range: each such family gets a venv of its own, and its ensemble
members run there with `python: <env>/bin/python` (see alloop.ensemble.worker). An environment holds

- torch, pinned by a constraints file written into the environment (`torch==2.13.0`, the CPU build, by
  default; on a GPU cluster the user's CUDA torch, e.g. `--torch 'torch==2.13.0' --torch-index
  https://download.pytorch.org/whl/cu128`),
- the family's package at a tested version, and
- alloop itself without its dependencies plus what the worker imports (numpy, ase, pydantic, PyYAML):
  the worker needs alloop's ensemble modules, not dask, SQLAlchemy, pacemaker or GPAW.

Installs go through pip's own cache (downloads and wheels built from sdists), so a second create of
the same family is an install from local files. Each environment records how it was made in
`alloop-env.json`; `probe` imports the family's package in that interpreter and reports versions.
Nothing here imports torch or a uMLIP library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from alloop import __version__
from alloop.errors import ConfigError, MemberEnvironmentError

ENV_DIR_ENV = "ALLOOP_ENV_DIR"
RECORD_NAME = "alloop-env.json"
CONSTRAINTS_NAME = "alloop-constraints.txt"
DEFAULT_TORCH = "torch==2.13.0"
# What alloop.ensemble.worker imports besides alloop (alloop itself goes in with --no-deps).
WORKER_REQUIREMENTS = ("numpy", "ase>=3.23", "pydantic>=2.6", "PyYAML>=6.0")
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
            requirements=("mace-torch==0.3.16",),
            imports=("mace.calculators", "mace.modules"),
            distributions=("mace-torch", "e3nn", "torch"),
            note="pins e3nn 0.4.4, which sevenn (e3nn >= 0.5) cannot share",
        ),
        "orb": Family(
            kinds=("orb",),
            requirements=("orb-models==0.5.5",),
            imports=("orb_models.forcefield.pretrained", "orb_models.forcefield.calculator"),
            distributions=("orb-models", "torch"),
            note="0.5.5 is the newest orb-models that resolves with torch 2.13",
        ),
        "fairchem": Family(
            kinds=("fairchem",),
            requirements=("fairchem-core==2.24.0",),
            imports=("fairchem.core", "fairchem.core.units.mlip_unit"),
            distributions=("fairchem-core", "e3nn", "numpy", "torch"),
            note="UMA/eSEN checkpoints (fairchem-core 2); brings numpy 2.4",
        ),
        "mattersim": Family(
            kinds=("mattersim",),
            requirements=("mattersim==1.2.3",),
            imports=("mattersim.forcefield",),
            distributions=("mattersim", "torch"),
        ),
        "grace": Family(
            kinds=("grace",),
            # tensorpotential declares tensorflow[and-cuda] (12 CUDA wheels): the CPU TensorFlow and
            # tensorpotential's other dependencies instead, as in alloop's own environment.
            requirements=("tensorflow-cpu==2.20.0", "tf_keras~=2.20.0", "matscipy", "pandas", "questionary",
                          "requests", "rich", "scikit-learn", "scipy", "sympy", "tqdm"),
            no_deps=("tensorpotential==0.6.2.1",),
            uses_torch=False,
            imports=("tensorpotential.calculator",),
            distributions=("tensorpotential", "tensorflow-cpu"),
            note="TensorFlow-based, no torch",
        ),
        "nequip": Family(
            kinds=("nequip",),
            requirements=("nequip==0.19.1",),
            imports=("nequip.ase",),
            distributions=("nequip", "torch"),
        ),
        "deepmd": Family(
            kinds=("deepmd",),
            requirements=("deepmd-kit==3.2.0",),
            imports=("deepmd.calculator",),
            distributions=("deepmd-kit", "torch"),
        ),
    }
)


class EnvironmentPlan(BaseModel):
    """Everything `create` will do, fixed before anything runs (what --dry-run shows)."""

    model_config = ConfigDict(frozen=True)

    family: str
    prefix: Path
    base_python: str = Field(description="interpreter whose venv module builds the environment")
    torch: str = Field(description="torch requirement, also written as the environment's constraint")
    torch_index: str | None = Field(None, description="extra index for torch (a CUDA wheel index on a GPU cluster)")
    constraints: tuple[str, ...] = Field((), description="more constraint lines, e.g. from -c FILE")
    requirements: tuple[str, ...]
    no_deps: tuple[str, ...] = ()
    uses_torch: bool = True
    alloop: str = Field(description="how alloop itself is installed there (always --no-deps)")

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python"

    @property
    def constraints_file(self) -> Path:
        return self.prefix / CONSTRAINTS_NAME

    def pip(self, *args: str) -> list[str]:
        return [str(self.python), "-m", "pip", *args]

    def commands(self) -> list[list[str]]:
        """The shell commands of `create`, in order (the constraints file is written before the first pip)."""
        c = ["-c", str(self.constraints_file)]
        index = ["--extra-index-url", self.torch_index] if self.torch_index else []
        alloop = ["-e", self.alloop] if Path(self.alloop).is_dir() else [self.alloop]
        return [
            [self.base_python, "-m", "venv", str(self.prefix)],
            self.pip("install", "-q", "-U", "pip>=24", "wheel"),
            *([self.pip("install", "-q", *c, *index, self.torch)] if self.uses_torch else []),
            self.pip("install", "-q", *c, *index, *self.requirements, *WORKER_REQUIREMENTS),
            self.pip("install", "-q", *c, "--no-deps", *self.no_deps, *alloop),
        ]


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


def alloop_source() -> str:
    """A source checkout installs editable (the worker then runs the same code as the controller);
    an installed alloop installs the same release from the index."""
    checkout = alloop_checkout()
    return str(checkout) if checkout is not None else f"alloop=={__version__}"


def plan(
    name: str,
    prefix: str | Path | None = None,
    *,
    torch: str = DEFAULT_TORCH,
    torch_index: str | None = None,
    constraints: Sequence[str] = (),
    base_python: str | None = None,
) -> EnvironmentPlan:
    fam = family(name)
    if not torch.strip().lower().startswith("torch"):
        raise ConfigError([f"--torch must be a torch requirement such as 'torch==2.13.0', not '{torch}'"], "alloop env")
    where = Path(prefix).expanduser() if prefix is not None else env_dir() / name
    return EnvironmentPlan(
        family=name,
        prefix=where.absolute(),
        # The interpreter running alloop may itself be a venv: build from the Python it was made from.
        base_python=base_python or getattr(sys, "_base_executable", None) or sys.executable,
        torch=torch.strip(),
        torch_index=torch_index,
        constraints=tuple(constraints),
        requirements=fam.requirements,
        no_deps=fam.no_deps,
        uses_torch=fam.uses_torch,
        alloop=alloop_source(),
    )


Runner = Callable[[list[str]], None]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-25:])
        raise MemberEnvironmentError(f"command failed with exit code {done.returncode}: {' '.join(cmd)}\n{tail}")


def create(p: EnvironmentPlan, *, log: Callable[[str], None] = lambda _: None, run: Runner = _run) -> EnvironmentStatus:
    """Build (or bring up to date) the environment of `p`, then check that it loads its family.

    Re-running on an existing environment re-runs pip, which only checks when nothing changed.
    """
    current = up_to_date(p)
    if current is not None:
        log(f"up to date: {p.prefix}")
        return current
    p.prefix.mkdir(parents=True, exist_ok=True)
    for i, cmd in enumerate(p.commands()):
        if i == 0 and p.python.is_file():
            log(f"reusing the environment at {p.prefix}")
            continue
        if i == 2:  # the constraint must be in place before any pip install can pick a torch
            p.constraints_file.write_text("\n".join([p.torch, *p.constraints]) + "\n")
        log("$ " + " ".join(cmd))
        run(cmd)
    status = probe(p.prefix, p.family)
    if not status.loads:
        raise MemberEnvironmentError(f"{p.prefix}: the {p.family} environment was built but cannot load it: {status.error}")
    pinned = p.torch.split("==", 1)[1].strip() if "==" in p.torch else None
    got = status.versions.get("torch")
    if pinned is not None and got is not None and got.split("+")[0] != pinned.split("+")[0]:
        raise MemberEnvironmentError(f"{p.prefix}: torch {got} was installed although {p.torch} was pinned")
    record = EnvironmentRecord(
        family=p.family, prefix=p.prefix, torch=p.torch, torch_index=p.torch_index, constraints=p.constraints,
        requirements=p.requirements, no_deps=p.no_deps,
        alloop=p.alloop, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    (p.prefix / RECORD_NAME).write_text(record.model_dump_json(indent=2) + "\n")
    return status


def up_to_date(p: EnvironmentPlan) -> EnvironmentStatus | None:
    """The status of the environment at p.prefix when it was made from the same plan and still loads."""
    if not (p.prefix / RECORD_NAME).is_file():
        return None
    record = read_record(p.prefix)
    fields = ("family", "torch", "torch_index", "constraints", "requirements", "no_deps", "alloop")
    same = all(getattr(record, f) == getattr(p, f) for f in fields)
    if not same:
        return None
    status = probe(p.prefix, p.family)
    return status if status.loads else None


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
    try:
        done = subprocess.run(
            [str(python), "-c", _PROBE, json.dumps(modules), json.dumps(dists)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=prefix,
        )
    except subprocess.TimeoutExpired:
        return base.model_copy(update={"error": f"import check timed out after {timeout:.0f} s"})
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("ALLOOP-PROBE ")), None)
    if line is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return base.model_copy(update={"error": f"import check exited with code {done.returncode}: {tail}"})
    return EnvironmentStatus(family=name, prefix=prefix, python=python, **json.loads(line[len("ALLOOP-PROBE "):]))


def read_record(prefix: str | Path) -> EnvironmentRecord:
    return EnvironmentRecord.model_validate_json((Path(prefix) / RECORD_NAME).read_text())


def environments(folder: str | Path | None = None) -> list[Path]:
    """Prefixes of the environments under `folder` (default: env_dir()) that alloop made."""
    root = Path(folder) if folder is not None else env_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / RECORD_NAME).is_file())


def resolve(p: EnvironmentPlan) -> list[dict[str, str]]:
    """Resolver dry run with the base interpreter's pip: the packages (name, version) that `create`
    would install (the family's --no-deps packages aside), nothing installed. The pinned torch is a
    constraint, so a family that needs another torch fails here rather than downloading one."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / CONSTRAINTS_NAME
        constraints.write_text("\n".join([p.torch, *p.constraints]) + "\n")
        index = ["--extra-index-url", p.torch_index] if p.torch_index else []
        cmd = [p.base_python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report", "-",
               "-c", str(constraints), *index, *([p.torch] if p.uses_torch else []), *p.requirements,
               *WORKER_REQUIREMENTS]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-25:])
        raise MemberEnvironmentError(f"pip could not resolve the {p.family} environment:\n{tail}")
    report = json.loads(done.stdout)
    packages = [
        {"name": item["metadata"]["name"], "version": item["metadata"]["version"]} for item in report["install"]
    ]
    return sorted(packages, key=lambda d: d["name"].lower())
