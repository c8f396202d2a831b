"""Building member environments (`alloop env create FAMILY`): the plan, the install, the resolver dry run.

An environment (see alloop.ensemble.environments for what runs there and how it is checked) holds

- torch, pinned by a constraints file written into the environment (`alloop.ensemble.pins.TORCH`, the CPU
  build, by default; on a GPU cluster the user's CUDA torch, e.g. `--torch 'torch==2.13.0' --torch-index
  https://download.pytorch.org/whl/cu128`),
- the family's package at its tested version (`RECIPES`, from the one table alloop.ensemble.pins), and
- alloop itself without its dependencies plus what the worker imports (numpy, ase, pydantic, PyYAML):
  the worker needs alloop's ensemble modules, not dask, SQLAlchemy, pacemaker or GPAW.

Installs go through pip's own cache (downloads and wheels built from sdists), so a second create of
the same family is an install from local files.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from alloop import __version__
from alloop.atomic import write_text_atomic
from alloop.ensemble.environments import (
    RECORD_NAME,
    EnvironmentRecord,
    EnvironmentStatus,
    alloop_checkout,
    env_dir,
    probe,
    read_record,
)
from alloop.ensemble.pins import TORCH, pinned
from alloop.errors import ConfigError, MemberEnvironmentError
from alloop.process import run_captured

CONSTRAINTS_NAME = "alloop-constraints.txt"
# What alloop.ensemble.worker imports besides alloop (alloop itself goes in with --no-deps).
WORKER_REQUIREMENTS = ("numpy", "ase>=3.23", "pydantic>=2.6", "PyYAML>=6.0")


class Recipe(BaseModel):
    """What a family's environment installs (what runs there: alloop.ensemble.environments.FAMILIES)."""

    model_config = ConfigDict(frozen=True)

    requirements: tuple[str, ...] = Field(description="pip requirements of the family, at the versions of alloop.ensemble.pins")
    no_deps: tuple[str, ...] = Field((), description="installed with --no-deps (their declared dependencies "
                                     "would pull CUDA builds); their real dependencies go in requirements")
    uses_torch: bool = Field(True, description="False: no torch is installed (it stays pinned as a constraint)")


#: family (a key of alloop.ensemble.environments.FAMILIES) -> its install; why each version: alloop.ensemble.pins
RECIPES: MappingProxyType[str, Recipe] = MappingProxyType(
    {
        "mace": Recipe(requirements=(pinned("mace-torch"),)),
        "orb": Recipe(requirements=(pinned("orb-models"),)),
        "fairchem": Recipe(requirements=(pinned("fairchem-core"),)),
        "mattersim": Recipe(requirements=(pinned("mattersim"),)),
        # tensorpotential declares tensorflow[and-cuda] (12 CUDA wheels): the CPU TensorFlow and
        # tensorpotential's other dependencies instead, as in alloop's own environment.
        "grace": Recipe(requirements=(pinned("tensorflow-cpu"), pinned("tf_keras"), "matscipy", "pandas", "questionary",
                                      "requests", "rich", "scikit-learn", "scipy", "sympy", "tqdm"),
                        no_deps=(pinned("tensorpotential"),), uses_torch=False),
        "nequip": Recipe(requirements=(pinned("nequip"),)),
        "deepmd": Recipe(requirements=(pinned("deepmd-kit"),)),
    }
)


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError([f"unknown family '{name}' (known: {', '.join(RECIPES)})"], "alloop env") from None


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


def alloop_source() -> str:
    """A source checkout installs editable (the worker then runs the same code as the controller);
    an installed alloop installs the same release from the index."""
    checkout = alloop_checkout()
    return str(checkout) if checkout is not None else f"alloop=={__version__}"


def plan(
    name: str,
    prefix: str | Path | None = None,
    *,
    torch: str = TORCH,
    torch_index: str | None = None,
    constraints: Sequence[str] = (),
    base_python: str | None = None,
) -> EnvironmentPlan:
    fam = recipe(name)
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
    done = run_captured(cmd, timeout_s=None, merge_stderr=True)  # a CUDA torch on a slow link takes what it takes
    if done.returncode != 0:
        raise MemberEnvironmentError(f"command failed with exit code {done.returncode}: {' '.join(cmd)}\n{done.tail()}")


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
    write_text_atomic(p.prefix / RECORD_NAME, record.model_dump_json(indent=2) + "\n")  # last: it says the environment is made
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


def resolve(p: EnvironmentPlan) -> list[dict[str, str]]:
    """Resolver dry run with the base interpreter's pip: the packages (name, version) that `create`
    would install (the family's --no-deps packages aside), nothing installed. The pinned torch is a
    constraint, so a family that needs another torch fails here rather than downloading one."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / CONSTRAINTS_NAME
        constraints.write_text("\n".join([p.torch, *p.constraints]) + "\n")
        index = ["--extra-index-url", p.torch_index] if p.torch_index else []
        cmd = [p.base_python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report", "-",
               "-c", str(constraints), *index, *([p.torch] if p.uses_torch else []), *p.requirements,
               *WORKER_REQUIREMENTS]
        done = run_captured(cmd, timeout_s=None)
    if done.returncode != 0:
        raise MemberEnvironmentError(f"pip could not resolve the {p.family} environment:\n{done.tail()}")
    report = json.loads(done.stdout)
    packages = [
        {"name": item["metadata"]["name"], "version": item["metadata"]["version"]} for item in report["install"]
    ]
    return sorted(packages, key=lambda d: d["name"].lower())
