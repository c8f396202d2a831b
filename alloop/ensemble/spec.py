"""Ensemble description: which uMLIPs, from where, with which weights (Eq. 2 RMSEs).

An ensemble is a built-in name (`offline`, `offline-fast`, `paper-11`), a YAML file, or an inline
mapping from the campaign file; `resolve_ensemble` turns any of them into an `EnsembleSpec` with
absolute paths. Nothing here imports a uMLIP library.

YAML layout::

    name: my-ensemble
    checkpoint_dir: models/        # relative checkpoint paths resolve here (default: this file's folder)
    energy_member: 7net-0          # optional; default: the member with the lowest rmse
    members:
      - {name: 7net-0, kind: sevenn, model: 7net-0, rmse: 0.28}
      - {name: mace, kind: mace, checkpoint: mace-omat.model, python: /envs/mace/bin/python}

or `base: paper-11` with `checkpoint_dir:` and/or `checkpoints: {member: path}` to fill in a
built-in ensemble's checkpoint files. `rmse_from: paper-11` (any ensemble name or file) gives each member
without an `rmse` the one of the member of the same name there, so a table of RMSEs is written once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from alloop.ensemble.kinds import KINDS, shipped_elements
from alloop.errors import ConfigError, MemberError, MissingFileError
from alloop.schema import unit

BUILTIN_DIR = Path(__file__).with_name("builtin")
CHECKPOINT_DIR_ENV = "ALLOOP_CHECKPOINT_DIR"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


class MemberSpec(BaseModel):
    """One uMLIP of the ensemble. Either `model` (weights shipped in the package) or `checkpoint`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN, description="unique id of the member in the ensemble")
    kind: str = Field(description="uMLIP family: " + ", ".join(KINDS))
    model: str | None = Field(None, description="model shipped in the package (sevenn 7net-0, chgnet 0.3.0, ...), "
                              "or the architecture of an orb checkpoint")
    checkpoint: str | None = Field(None, description="local weights file (kind replay: the data file of stored predictions)")
    modal: str | None = Field(None, description="fidelity of a multi-fidelity model (sevenn 7net-mf-0: PBE)")
    task: str | None = Field(None, description="task/head of a multi-task model (fairchem UMA: omat; deepmd/mace head)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the model runs (auto: a GPU when "
                                                   "torch sees one, see alloop.ensemble.placement)")
    rmse: float | None = Field(None, gt=0, description="force RMSE on a common benchmark (Eq. 2 weight)",
                               json_schema_extra=unit("eV/Å"))
    in_u: bool = Field(True, description="False: the member only provides labels and stays out of U")
    python: str | None = Field(None, description="interpreter of another environment: run this member there")
    batch_size: int = Field(64, ge=1, description="most structures per batched model call")
    batch_atoms: int | None = Field(None, ge=1, description="most atoms per batched model call (default: 64 on "
                                    "CPU, half the free GPU memory on a GPU; see alloop.ensemble.placement)")
    threads: int | None = Field(None, ge=1, description="torch threads on CPU (default 1)")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra keyword arguments for the library's calculator"
    )

    @model_validator(mode="after")
    def _known_model(self) -> MemberSpec:
        where = f"member '{self.name}'"
        kind = KINDS.get(self.kind)
        if kind is None:
            raise MemberError(f"{where}: unknown kind '{self.kind}' (valid kinds: {', '.join(KINDS)})")
        if kind.models:  # weights ship with the package; a checkpoint may replace them
            if (self.model is None) == (self.checkpoint is None):
                raise MemberError(
                    f"{where}: give exactly one of model (shipped: {', '.join(kind.models)}) or checkpoint (a file)"
                )
            if self.model is not None and self.model not in kind.models:
                raise MemberError(
                    f"{where}: unknown {self.kind} model '{self.model}' (shipped in the package, usable offline: "
                    f"{', '.join(kind.models)}); for other models download the weights once and give checkpoint: PATH"
                )
        else:
            if self.checkpoint is None:
                raise MemberError(
                    f"{where}: kind '{self.kind}' ships no weights usable offline; give checkpoint: PATH to a local file"
                )
            if kind.stored:
                if self.model is None:
                    raise MemberError(f"{where}: a {self.kind} member needs model: NAME, the model whose stored "
                                      f"predictions {self.checkpoint} holds")
            elif self.model is not None and self.model not in kind.architectures:
                choices = ", ".join(kind.architectures) if kind.architectures else "none: leave model out"
                raise MemberError(f"{where}: unknown {self.kind} architecture '{self.model}' (valid: {choices})")
            if kind.architectures and self.model is None:
                raise MemberError(
                    f"{where}: a {self.kind} checkpoint needs model: ARCHITECTURE (one of {', '.join(kind.architectures)})"
                )
        self._check_modal_task(where)
        return self

    def _check_modal_task(self, where: str) -> None:
        kind = KINDS[self.kind]
        modals = kind.models[self.model].modals if self.model in kind.models else ()
        if modals:
            if self.modal is None or self.modal.upper() not in {m.upper() for m in modals}:
                raise MemberError(f"{where}: model '{self.model}' needs modal: one of {', '.join(modals)}")
        elif self.modal is not None and self.model is not None:
            raise MemberError(f"{where}: model '{self.model}' has no modals (modal '{self.modal}' given)")
        if self.task is not None and not kind.uses_task:
            raise MemberError(f"{where}: kind '{self.kind}' has no task/head option (task '{self.task}' given)")

    @property
    def replays(self) -> bool:
        """True for a member that only replays stored predictions: it knows no structure it was not given."""
        return self.kind == "replay"

    @property
    def elements(self) -> frozenset[int] | None:
        """Atomic numbers this member handles, where known without loading it."""
        return shipped_elements(self.kind, self.model)


class EnsembleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the ensemble's name, recorded with its predictions")
    members: list[MemberSpec] = Field(min_length=1, description="the uMLIPs, in order (U is computed over those "
                                      "with in_u)")
    energy_member: str | None = Field(None, description="member whose energies label low-U configurations "
                                      "(default: the one with the lowest rmse, else the first)")
    force_member: str | None = Field(None, description="member whose forces label low-U configurations "
                                     "(default: as energy_member)")
    checkpoint_dir: str | None = Field(None, description="folder that relative checkpoint paths are in")
    # (role, path) of each YAML file this spec was read from: its own, a `base:` and an `rmse_from:` table, so the
    # change guard sees an edit in any of them (alloop.fingerprints.campaign_files)
    _sources: tuple[tuple[str, str], ...] = PrivateAttr(())

    @property
    def sources(self) -> tuple[tuple[str, str], ...]:
        return self._sources

    @model_validator(mode="after")
    def _consistent(self) -> EnsembleSpec:
        names = [m.name for m in self.members]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise MemberError(f"ensemble '{self.name}': member names must be unique, repeated: {', '.join(dup)}")
        if not any(m.in_u for m in self.members):
            raise MemberError(f"ensemble '{self.name}': every member has in_u: false, so U has no members")
        with_rmse = [m.rmse is not None for m in self.u_members]
        if any(with_rmse) and not all(with_rmse):
            missing = [m.name for m in self.u_members if m.rmse is None]
            raise MemberError(
                f"ensemble '{self.name}': give rmse for all members of U or for none (equal weights); "
                f"missing for {', '.join(missing)}"
            )
        for key in ("energy_member", "force_member"):
            value = getattr(self, key)
            if value is None:
                setattr(self, key, self._most_accurate())
            elif value not in names:
                raise MemberError(
                    f"ensemble '{self.name}': {key} '{value}' is not a member (members: {', '.join(names)})"
                )
        return self

    def _most_accurate(self) -> str:
        rated = [m for m in self.members if m.rmse is not None]
        return min(rated, key=lambda m: m.rmse).name if rated else self.members[0].name  # type: ignore[arg-type,return-value]

    @property
    def u_members(self) -> list[MemberSpec]:
        """The members whose forces enter U, in ensemble order."""
        return [m for m in self.members if m.in_u]

    def member(self, name: str) -> MemberSpec:
        for m in self.members:
            if m.name == name:
                return m
        raise MemberError(f"ensemble '{self.name}' has no member '{name}' (members: {', '.join(m.name for m in self.members)})")

    def rmse(self) -> np.ndarray | None:
        """(K_u,) force RMSEs of the U members, or None for equal weights."""
        if self.u_members[0].rmse is None:
            return None
        return np.array([m.rmse for m in self.u_members], dtype=np.float64)

    def weights(self) -> np.ndarray:
        """(K_u,) Eq. (2) weights of the U members (equal weights without RMSEs)."""
        from alloop.uq import weights_from_rmse

        return weights_from_rmse(self.rmse(), len(self.u_members))

    def check_files(self) -> None:
        """MissingFileError for the first checkpoint or interpreter that is not there."""
        for m in self.members:
            if m.checkpoint is not None and not Path(m.checkpoint).is_file():
                raise MissingFileError(
                    m.checkpoint,
                    f"checkpoint of ensemble member '{m.name}' ({m.kind})",
                    f"put the weights file there, set checkpoint_dir (or ${CHECKPOINT_DIR_ENV}) to the folder "
                    "holding it, or give checkpoint: PATH for this member in your ensemble YAML",
                )
            if m.python is not None and not Path(m.python).is_file():
                raise MissingFileError(
                    m.python,
                    f"python interpreter of ensemble member '{m.name}'",
                    "give python: the full path of the interpreter of the environment that has the "
                    f"{m.kind} package (e.g. /opt/envs/{m.kind}/bin/python)",
                )


def label_members(spec: EnsembleSpec, energy_member: str | None = None,
                  force_member: str | None = None) -> tuple[str, str]:
    """(energy member, force member): whose energies and forces label low-U configurations. The campaign's
    `labels.energy_member` / `labels.force_member` where given, else the ensemble file's, which EnsembleSpec
    always fills (its most accurate member when the file names none). The loop, `alloop sweep` and
    `alloop report` all ask this function."""
    names = {m.name for m in spec.members}
    for key, value in (("energy_member", energy_member), ("force_member", force_member)):
        if value is not None and value not in names:
            raise MemberError(f"labels.{key} '{value}' is not a member of ensemble '{spec.name}' "
                              f"(members: {', '.join(sorted(names))})")
    return energy_member or str(spec.energy_member), force_member or str(spec.force_member)


# ---------------------------------------------------------------------------------------------------
# resolution


def resolve_ensemble(
    ref: str | Path | Mapping[str, Any] | EnsembleSpec,
    *,
    checkpoint_dir: str | Path | None = None,
    check_files: bool = True,
) -> EnsembleSpec:
    """Built-in name, YAML path, inline mapping or spec -> EnsembleSpec with absolute paths.

    Relative checkpoint paths resolve against, in order: `checkpoint_dir`, the ensemble's own
    `checkpoint_dir`, ${ALLOOP_CHECKPOINT_DIR}, the YAML file's folder (the working directory for
    built-ins and inline mappings). With check_files, a missing checkpoint or interpreter raises
    MissingFileError naming the member.
    """
    if isinstance(ref, EnsembleSpec):
        spec = ref
    else:
        data, base, source = _raw(ref)
        spec = _build(data, base, source, checkpoint_dir)
    if check_files:
        spec.check_files()
    return spec


def _raw(ref: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path, str]:
    """(mapping as written, folder its relative paths are relative to, name for messages)."""
    import yaml

    if isinstance(ref, Mapping):
        return dict(ref), Path.cwd(), "inline ensemble"
    text = str(ref)
    if text in builtin_names():
        # A built-in's relative checkpoints live wherever the user keeps weights, not in the package.
        path, base = BUILTIN_DIR / f"{text}.yaml", Path.cwd()
    elif Path(text).is_file():
        path = Path(text)
        base = path.parent.resolve()
    else:
        raise MissingFileError(
            text, "ensemble", f"give a built-in ensemble ({', '.join(builtin_names())}) or the path of an ensemble YAML"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from exc
    if not isinstance(data, Mapping):
        raise ConfigError(["an ensemble file must be a mapping with 'name' and 'members'"], str(path))
    return dict(data), base, str(path)


_BASE_OVERRIDES = {"checkpoint_dir", "checkpoints", "energy_member", "force_member", "name"}


def _file_role(role: str, source: str) -> list[tuple[str, str]]:
    path = Path(source)
    if not path.is_file():  # an inline ensemble
        return []
    return [(f"built-in ensemble {path.stem}" if path.parent == BUILTIN_DIR else role, str(path.resolve()))]


def _build(data: dict[str, Any], base: Path, source: str, checkpoint_dir: str | Path | None) -> EnsembleSpec:
    sources = _file_role("ensemble file", source)
    if "base" in data:
        parent, _, parent_source = _raw(str(data.pop("base")))
        sources += _file_role("ensemble base", parent_source)
        if "base" in parent:
            raise ConfigError(["an ensemble given as 'base:' cannot itself have a base"], parent_source)
        extra = set(data) - _BASE_OVERRIDES
        if extra:
            raise ConfigError(
                [f"with 'base:' only {', '.join(sorted(_BASE_OVERRIDES))} may be given, not {', '.join(sorted(extra))}"],
                source,
            )
        overrides = {str(k): str(v) for k, v in (data.pop("checkpoints", None) or {}).items()}
        parent_names = [str(m.get("name")) for m in parent.get("members", []) if isinstance(m, Mapping)]
        unknown = sorted(set(overrides) - set(parent_names))
        if unknown:
            raise MemberError(
                f"{source}: checkpoints given for unknown member(s) {', '.join(unknown)} "
                f"(members: {', '.join(parent_names)})"
            )
        parent.pop("checkpoint_dir", None)
        parent["members"] = [
            {**m, "checkpoint": str(_absolute(overrides[m["name"]], base))} if m.get("name") in overrides else m
            for m in parent.get("members", [])
        ]
        data = {**parent, **data}
    if "rmse_from" in data:
        data, table_source = _rmse_from(data, str(data.pop("rmse_from")), base, source)
        sources += _file_role("ensemble RMSE table", table_source)
    try:
        spec = EnsembleSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'ensemble'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(problems, source) from exc

    folder = _checkpoint_folder(checkpoint_dir, spec.checkpoint_dir, base)
    members = []
    for m in spec.members:
        update: dict[str, Any] = {}
        if m.checkpoint is not None:
            update["checkpoint"] = str(_absolute(m.checkpoint, folder))
        if m.python is not None:
            update["python"] = _interpreter(m.python, base)
        members.append(m.model_copy(update=update) if update else m)
    built = spec.model_copy(update={"members": members, "checkpoint_dir": str(folder)})
    built._sources = tuple(sources)
    return built


def _rmse_from(data: dict[str, Any], ref: str, base: Path, source: str) -> tuple[dict[str, Any], str]:
    """`rmse_from: <ensemble>`: members without an rmse take the one of the member of the same name there,
    so one table of RMSEs (e.g. the paper's, in paper-11.yaml) serves every ensemble of those models. A
    relative path is relative to the folder of the file that names it."""
    table, _, table_source = _raw(ref if ref in builtin_names() else str(_absolute(ref, base)))
    rmse = {str(m.get("name")): m["rmse"] for m in table.get("members", []) if isinstance(m, Mapping) and "rmse" in m}
    if not rmse:
        raise ConfigError([f"rmse_from: {table_source} gives no member an rmse"], source)
    members = [m if not isinstance(m, Mapping) or "rmse" in m or m.get("name") not in rmse
               else {**m, "rmse": rmse[str(m["name"])]} for m in data.get("members", [])]
    return {**data, "members": members}, table_source


def _checkpoint_folder(explicit: str | Path | None, own: str | None, base: Path) -> Path:
    for candidate in (explicit, None if own is None else _absolute(own, base), os.environ.get(CHECKPOINT_DIR_ENV)):
        if candidate:
            return Path(candidate).expanduser().resolve()
    return base


def _absolute(path: str | Path, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _interpreter(python: str, base: Path) -> str:
    if os.sep in python:
        # Absolute, but symlinks kept: a venv's bin/python links to the base interpreter, and following
        # the link would run the member outside its environment.
        return os.path.abspath(base / Path(python).expanduser())
    return shutil.which(python) or python  # a bare name is looked up on PATH; check_files reports a miss


def check_elements(spec: EnsembleSpec, elements: Iterable[str | int]) -> None:
    """MemberError listing every member that cannot handle one of `elements` (symbols or Z).

    Only members whose element list is known without loading them (shipped models) are checked;
    checkpoint members are checked per structure when they run.
    """
    from ase.data import atomic_numbers, chemical_symbols

    zs = set()
    for el in elements:
        if isinstance(el, str):
            if el not in atomic_numbers:
                raise MemberError(f"unknown element symbol '{el}'")
            zs.add(atomic_numbers[el])
        else:
            zs.add(int(el))
    problems = []
    for m in spec.members:
        known = m.elements
        if known is None:
            continue
        missing = sorted(zs - known)
        if missing:
            problems.append(f"member '{m.name}' ({m.kind} {m.model}) does not know "
                            f"{', '.join(chemical_symbols[z] for z in missing)}")
    if problems:
        raise MemberError(f"ensemble '{spec.name}': " + "; ".join(problems) + " (drop these members or use models "
                          "trained on these elements)")
