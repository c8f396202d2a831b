"""The campaign file: a typed schema, loaded with every problem reported by field path and YAML line.

Each capability owns the settings model of its own stage (generator, ensemble, DFT backends, fitting,
exploration); this module composes them into one `Campaign` and resolves relative paths against the
campaign file's folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alloop.errors import ConfigError
from alloop.explore import ExploreSettings
from alloop.generate import GeneratorSettings
from alloop.cluster.batch import BatchSettings
from alloop.label import GPAWSettings, ReplaySettings, VaspSettings
from alloop.label.reference import EnergyReferenceSettings
from alloop.properties.settings import PropertySettings
from alloop.train import FitSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UncertaintySettings(_Strict):
    variant: Literal[0, 1, 2] = Field(1, description="U^(0), U^(1) (the paper's U, Eq. 1) or U^(2)")
    u_c: float = Field(1.0, gt=0, description="threshold in eV/Å: U < u_c is labelled by the uMLIP")


class DFTSettings(_Strict):
    backend: Literal["gpaw", "vasp", "replay"] = "gpaw"
    gpaw: GPAWSettings = Field(default_factory=GPAWSettings)
    vasp: VaspSettings | None = None
    replay: ReplaySettings | None = None
    max_attempts: int = Field(3, ge=1, description="tries per configuration before it is quarantined")
    max_failed_fraction: float = Field(
        0.5, ge=0, le=1, description="stop the campaign when more than this share of an iteration's DFT fails"
    )
    batch: BatchSettings | None = Field(
        None, description="run each DFT calculation as its own batch job (sbatch/qsub/bsub) instead of a Dask task"
    )

    @model_validator(mode="after")
    def _backend_has_settings(self) -> DFTSettings:
        if self.backend == "vasp" and self.vasp is None:
            raise ValueError("backend 'vasp' needs a 'vasp:' section")
        if self.backend == "replay" and self.replay is None:
            raise ValueError("backend 'replay' needs a 'replay:' section with the data set path(s)")
        return self


class LabelSettings(_Strict):
    energy_member: str | None = Field(None, description="ensemble member whose energies label low-U configurations")
    force_member: str | None = Field(None, description="ensemble member whose forces label low-U configurations")
    dft: DFTSettings = Field(default_factory=DFTSettings)
    energy_reference: EnergyReferenceSettings = Field(default_factory=EnergyReferenceSettings)

    @model_validator(mode="after")
    def _calibration_possible(self) -> LabelSettings:
        ref = self.energy_reference
        if self.dft.backend == "replay" and ref.method == "fit" and ref.calibration:
            raise ValueError(
                "energy_reference.calibration needs DFT on bulk cells a replay set does not hold: set "
                "energy_reference: {calibration: false} (offsets are then fitted on the replayed DFT labels of the "
                "configurations with U < U_c) or {method: none} when DFT and the uMLIPs share a reference"
            )
        return self


class SelectionSettings(_Strict):
    budget: int = Field(40, ge=1, description="at most this many new configurations are labelled per iteration")
    min_distance: float = Field(0.8, gt=0, description="Å; closer atoms make a configuration unphysical")


class ConvergenceSettings(_Strict):
    gamma_threshold: float = Field(1.1, gt=0, description="γ_lo: an atom above it is extrapolative")
    target_share: float = Field(0.05, ge=0, le=1, description="converged when the share of candidates above γ_lo is below this")
    patience: int = Field(1, ge=1, description="for this many consecutive iterations")
    n_candidates: int = Field(40, ge=1, description="size of the fresh candidate batch graded after each fit")


class ClusterSettings(_Strict):
    engine: Literal["local", "slurm", "pbs", "lsf", "address"] = "local"
    address: str | None = Field(None, description="tcp://host:port of an existing Dask scheduler (engine: address)")
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "auto"
    queue: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: int = Field(1, ge=1)
    memory: str = "4GB"
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    interface: str | None = None
    minimum_workers: int = Field(0, ge=0)
    maximum_workers: int = Field(4, ge=1)
    ensemble_pool: ClusterSettings | None = Field(
        None,
        description="a separate worker pool for uMLIP inference (e.g. GPU nodes: queue and job_extra_directives "
        "such as '--gres=gpu:1'); same fields as this section. Fits, γ and DFT tasks stay on the main pool",
    )

    @model_validator(mode="after")
    def _address_given(self) -> ClusterSettings:
        if self.engine == "address" and not self.address:
            raise ValueError("engine 'address' needs 'address: tcp://host:port'")
        if self.ensemble_pool is not None and self.ensemble_pool.ensemble_pool is not None:
            raise ValueError("an ensemble_pool cannot have an ensemble_pool of its own")
        return self


class Campaign(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    elements: list[str] = Field(min_length=1)
    seed: int = 0
    workdir: Path = Path("run")
    database: Path | None = Field(None, description="defaults to <workdir>/alloop.db")
    max_iterations: int = Field(5, ge=1)
    ensemble: str | dict[str, Any] = Field("offline", description="built-in name, YAML path, or inline ensemble")
    uncertainty: UncertaintySettings = Field(default_factory=UncertaintySettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    generate: GeneratorSettings = Field(default_factory=GeneratorSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    train: FitSettings = Field(default_factory=FitSettings)
    explore: ExploreSettings | None = Field(None, description="γ-driven MD from the current ACE; off when absent")
    convergence: ConvergenceSettings = Field(default_factory=ConvergenceSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    properties: PropertySettings = Field(default_factory=PropertySettings,
                                         description="what each potential predicts, computed after its fit (alloop.properties)")

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        from ase.data import atomic_numbers

        bad = [e for e in v if e not in atomic_numbers or e == "X"]
        if bad:
            raise ValueError(f"unknown element(s) {bad}")
        if len(set(v)) != len(v):
            raise ValueError("elements are listed twice")
        return v

    @property
    def database_path(self) -> Path:
        return self.database if self.database is not None else self.workdir / "alloop.db"


def load_campaign(path: str | Path, *, check_ensemble: bool = True) -> Campaign:
    """Read and validate a campaign file; raise ConfigError listing every problem with field and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read campaign file: {exc.strerror}"], str(path)) from exc
    data, lines = _parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(["the campaign file must be a YAML mapping (key: value lines)"], str(path))
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err, lines) for err in exc.errors()], str(path)) from None
    campaign = _resolve_paths(campaign, path.parent)
    if check_ensemble:
        problems = _check_ensemble(campaign, lines)
        if problems:
            raise ConfigError(problems, str(path))
    return campaign


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML and remember the line of every key, so errors can point into the file."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}malformed YAML: {problem}"], source) from None
    lines: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, loc: tuple[Any, ...]) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = loc + (k.value,)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[loc + (i,)] = v.start_mark.line + 1
                walk(v, loc + (i,))

    if node is not None:
        walk(node, ())
    return data, lines


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    # pydantic puts union branch names into the location; drop what the YAML does not have.
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe(err: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in {"str", "dict[str,any]"})))
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_for(loc, lines)
    where = f" (line {line})" if line else ""
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required field is missing"
    else:
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
    return f"{field}{where}: {msg}"


def _resolve_paths(c: Campaign, base: Path) -> Campaign:
    def rel(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else (base / p)).resolve()

    updates: dict[str, Any] = {"workdir": rel(c.workdir), "database": rel(c.database)}
    if c.generate.sources:
        sources = [s.model_copy(update={"path": rel(s.path)}) for s in c.generate.sources]
        updates["generate"] = c.generate.model_copy(update={"sources": sources})
    if c.labels.dft.replay is not None:
        replay = c.labels.dft.replay.model_copy(update={"sources": [rel(p) for p in c.labels.dft.replay.sources]})
        updates["labels"] = c.labels.model_copy(update={"dft": c.labels.dft.model_copy(update={"replay": replay})})
    if isinstance(c.ensemble, str) and (c.ensemble.endswith((".yaml", ".yml")) or "/" in c.ensemble):
        updates["ensemble"] = str(rel(Path(c.ensemble)))
    elif isinstance(c.ensemble, dict) and isinstance(c.ensemble.get("checkpoint_dir"), str):
        updates["ensemble"] = {**c.ensemble, "checkpoint_dir": str(rel(Path(c.ensemble["checkpoint_dir"])))}
    return c.model_copy(update=updates)


def _check_ensemble(c: Campaign, lines: dict[tuple[Any, ...], int]) -> list[str]:
    """Resolve the ensemble and check that its members know the campaign's elements (no model is loaded)."""
    from alloop.ensemble import check_elements, resolve_ensemble
    from alloop.errors import AlloopError

    line = lines.get(("ensemble",))
    where = f" (line {line})" if line else ""
    try:
        spec = resolve_ensemble(c.ensemble)
    except AlloopError as exc:
        return [f"ensemble{where}: {exc}"]
    problems = []
    try:
        check_elements(spec, c.elements)
    except AlloopError as exc:
        problems.append(f"ensemble{where}: {exc}")
    names = {m.name for m in spec.members}
    for key in ("energy_member", "force_member"):
        value = getattr(c.labels, key)
        if value is not None and value not in names:
            ln = lines.get(("labels", key))
            problems.append(
                f"labels.{key}{f' (line {ln})' if ln else ''}: '{value}' is not a member of ensemble "
                f"'{spec.name}' (members: {', '.join(sorted(names))})"
            )
    if len(spec.members) < 2:
        problems.append(f"ensemble{where}: U needs at least 2 members, '{spec.name}' has {len(spec.members)}")
    if not math.isfinite(c.uncertainty.u_c):
        problems.append("uncertainty.u_c: must be finite (use a large number to label everything by the uMLIP)")
    return problems


# Settings whose change would make what the database holds inconsistent with the campaign file: the
# configurations' labels, U and routes were made with them. Everything else (iteration limit,
# convergence, cluster and batch settings, budgets, exploration, generation and fitting of future
# iterations) only steers what is still to come.
_BINDING = (
    "name", "elements", "seed", "workdir", "database", "ensemble", "uncertainty", "labels.energy_member",
    "labels.force_member", "labels.energy_reference", "labels.dft.backend", "labels.dft.gpaw", "labels.dft.vasp",
    "labels.dft.replay",
)


class ConfigChange(BaseModel):
    field: str
    old: Any = None
    new: Any = None
    binding: bool = Field(description="True: it would change what is already stored (labels, U, routes)")


def config_changes(stored_json: str, campaign: Campaign) -> list[ConfigChange]:
    """Every setting that differs between the campaign file of the last run and `campaign`, dotted paths."""
    import json

    old, new = _flatten(json.loads(stored_json)), _flatten(json.loads(campaign.model_dump_json()))
    # a setting a newer alloop added, at its default, is no change of the user's
    defaults = _flatten(json.loads(Campaign(name=campaign.name, elements=campaign.elements).model_dump_json()))
    out = []
    for key in sorted(set(old) | set(new)):
        if key not in old and key in defaults and new.get(key) == defaults[key]:
            continue
        if old.get(key) != new.get(key):
            binding = any(key == b or key.startswith(b + ".") for b in _BINDING)
            out.append(ConfigChange(field=key, old=old.get(key), new=new.get(key), binding=binding))
    return out


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: d}
