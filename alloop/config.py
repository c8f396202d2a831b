"""The campaign file: a typed schema, loaded with every problem reported by field path and YAML line.

Each capability owns the settings model of its own stage (generator, ensemble, DFT backends, fitting,
exploration, cluster); this module composes them into one `Campaign`, resolves relative paths against the
campaign file's folder, and passes the campaign-wide keys down to the stages that read them (`min_distance`
to generation, exploration and selection; `train.cutoff` to generation). Old spellings of keys are read
through alloop.renames, with a note naming the new key (`load_campaign_with_notes`); `alloop validate
--explain` prints every key (alloop.schema).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from alloop.cluster.batch import BatchSettings
from alloop.cluster.settings import ClusterSettings, LocalCluster, cluster_settings, drop_other_engines_keys
from alloop.errors import ConfigError
from alloop.explore import ExploreSettings
from alloop.generate import GeneratorSettings
from alloop.label import GPAWSettings, ReplaySettings, VaspSettings
from alloop.label.reference import EnergyReferenceSettings
from alloop.renames import UpgradeError, put_dotted, upgrade
from alloop.schema import unit
from alloop.structures import OVERLAP_DISTANCE
from alloop.properties.settings import PropertySettings
from alloop.train import FitSettings

__all__ = ["Campaign", "ClusterSettings", "ConfigChange", "cluster_settings", "config_changes", "keep_stored_values",
           "load_campaign", "load_campaign_with_notes"]

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UncertaintySettings(_Strict):
    """U, the ensemble's force disagreement, and the threshold that routes a configuration to DFT."""

    variant: Literal[0, 1, 2] = Field(1, description="U^(0), U^(1) (the paper's U, Eq. 1) or U^(2) (alloop.uq)")
    u_c: float = Field(1.0, gt=0, json_schema_extra=unit("eV/Å"),
                       description="threshold: U < u_c is labelled by the uMLIP, the rest by DFT")
    dft_kinds: list[str] = Field(
        default_factory=lambda: ["dimer", "trimer"], description="kinds labelled by DFT whatever their U: a force-based U "
        "cannot judge a cell whose forces nearly vanish in every member (a stretched dimer), so these go to DFT by kind, "
        "as in the paper (all its dimers went to DFT); [] routes them by U like the rest")


class DFTSettings(_Strict):
    """The DFT labeller and how its failures are handled."""

    backend: Literal["gpaw", "vasp", "replay"] = Field(
        "gpaw", description="gpaw (runs here), vasp (needs the VASP binary and POTCARs), replay (an existing DFT data set)")
    gpaw: GPAWSettings = Field(default_factory=GPAWSettings, description="settings of backend gpaw")
    vasp: VaspSettings | None = Field(None, description="settings of backend vasp (required with it)")
    replay: ReplaySettings | None = Field(None, description="settings of backend replay (required with it)")
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
    """Who labels what: the uMLIP members below U_c, DFT above it, and the energy reference between them."""

    energy_member: str | None = Field(None, description="ensemble member whose energies label low-U configurations "
                                      "(default: the ensemble file's energy_member; see ensemble.label_members)")
    force_member: str | None = Field(None, description="ensemble member whose forces label low-U configurations "
                                     "(default: the ensemble file's force_member)")
    dft: DFTSettings = Field(default_factory=DFTSettings, description="the DFT labeller")
    energy_reference: EnergyReferenceSettings = Field(
        default_factory=EnergyReferenceSettings, description="per-element offsets between DFT and the energy member")

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
    dft_max_atoms: int | None = Field(
        None, ge=1, description="a configuration that U sends to DFT with more atoms than this is not labelled (recorded "
        "as not selected, with its U and the reason), so uMLIP labels can use large cells while DFT stays on cells it "
        "can afford; calibration cells and uncertainty.dft_kinds are exempt (default: no limit)")
    dft_budget_atoms: int | None = Field(
        None, ge=1, json_schema_extra=unit("atoms"),
        description="DFT per iteration, in atoms (DFT's cost grows with them): the cells U sends to DFT are taken by U, "
        "highest first, while they fit after the calibration cells and uncertainty.dft_kinds; the rest are recorded as not "
        "selected, with their U and the reason (default: no limit)")
    min_distance: float = Field(0.8, gt=0, exclude=True, description="Å; in a campaign, set from min_distance")


class ConvergenceSettings(_Strict):
    """When the campaign stops: after each fit, the next iteration's exploration (MD with the new potential at the
    next stage, its frames every sample_interval steps whatever their γ) and its fresh motifs are graded by γ; the
    campaign has converged when the share above the trust window's lower edge (explore.gamma_lo; a frame past
    gamma_halt and those its trajectory never reached count as above) stays below target_share."""

    target_share: float = Field(0.05, ge=0, le=1, description="converged when the share of the sample above γ_lo is below this")
    patience: int = Field(2, ge=1, description="for this many consecutive iterations")
    min_sample: int = Field(100, ge=1, description="a sample smaller than this (MD frames plus motifs) never counts as "
                                                   "converged: too few frames to tell a share")


class GuardSettings(_Strict):
    """What stops an iteration before it spends DFT that the ensemble cannot justify (alloop.ensemble.routing):
    a member that cannot run, or too many configurations sent to DFT for want of U. Only steers what is still
    to come: raising a share and `alloop run --retry` goes on."""

    max_member_failure_share: float = Field(
        0.1, ge=0, le=1,
        description="fail the iteration, before any DFT is submitted, when an ensemble member (one in U, or a label "
                    "member) fails on a whole prediction batch or on more than this share of the iteration's configurations")
    max_dft_share_without_u: float = Field(
        0.1, ge=0, le=1,
        description="fail the iteration, before any DFT is submitted, when more than this share of its configurations "
                    "would go to DFT for want of U or of a uMLIP label (not for U >= u_c)")
    predict_attempts: int = Field(
        3, ge=1, description="tries of a prediction batch whose worker died (each try is Dask's own retries) before "
                             "its member counts as failed on that batch")


class Campaign(_Strict):
    """A campaign file: what to learn, with which ensemble, labelled how, fitted how, run where."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the campaign's name in its database")
    elements: list[str] = Field(min_length=1, description="chemical symbols of the system, e.g. [Mo, Nb, Ta, W]")
    seed: int = Field(0, description="seeds every random choice (each iteration and purpose draws its own stream)")
    workdir: Path = Field(Path("run"), description="folder of the campaign's work (relative: to the campaign file)")
    database: Path | None = Field(None, description="the campaign's SQLite database (default: <workdir>/alloop.db)")
    max_iterations: int = Field(5, ge=1, description="stop after this many iterations if not converged")
    min_distance: float = Field(
        0.8, ge=OVERLAP_DISTANCE, json_schema_extra=unit("Å"),
        description="closest interatomic distance of a physical configuration: generation, exploration and "
                    f"selection drop closer ones (DFT and fitting refuse below {OVERLAP_DISTANCE} Å in any case)")
    ensemble: str | dict[str, Any] = Field("offline", description="built-in name, YAML path, or inline ensemble")
    uncertainty: UncertaintySettings = Field(default_factory=UncertaintySettings, description="U and its threshold")
    labels: LabelSettings = Field(default_factory=LabelSettings, description="uMLIP and DFT labels")
    generate: GeneratorSettings = Field(default_factory=GeneratorSettings, description="candidate structures")
    selection: SelectionSettings = Field(default_factory=SelectionSettings, description="which candidates to label")
    train: FitSettings = Field(default_factory=FitSettings, description="the ACE fit (pacemaker)")
    explore: ExploreSettings | None = Field(None, description="γ-driven MD from the current ACE; off when absent")
    convergence: ConvergenceSettings = Field(default_factory=ConvergenceSettings, description="when to stop")
    guard: GuardSettings = Field(default_factory=GuardSettings,
                                 description="when an iteration stops rather than spend DFT for want of U")
    cluster: ClusterSettings = Field(default_factory=LocalCluster, description="where the Dask workers run")
    properties: PropertySettings = Field(default_factory=PropertySettings,
                                         description="what each potential predicts, computed after its fit (alloop.properties)")
    # the dotted keys the campaign file writes (None: built in code, every key counts as written): a key the
    # user never wrote follows alloop's default, and the change guard tells a changed default from an edit
    _written: frozenset[str] | None = PrivateAttr(None)

    def writes(self, key: str) -> bool:
        """Whether the campaign file sets `key` (a dotted path), itself, a section above it or a part of it."""
        if self._written is None:
            return True
        return any(_within(w, key) or _within(key, w) for w in self._written)

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        # a campaign stored by an older alloop, or built in code from old keys (files go through
        # load_campaign_with_notes, which says what it mapped)
        return upgrade_campaign(data)[0] if isinstance(data, dict) else data

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

    @model_validator(mode="after")
    def _pass_down(self) -> Campaign:
        """Give each stage its copy of the campaign-wide keys (checked again by the stage's own rules)."""
        try:
            generate = GeneratorSettings.model_validate(
                {**self.generate.model_dump(), "cutoff": self.train.cutoff, "min_distance": self.min_distance})
        except ValidationError as exc:
            raise ValueError("generate: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
        self.generate = generate
        self.selection = self.selection.model_copy(update={"min_distance": self.min_distance})
        if self.explore is not None:
            self.explore = self.explore.model_copy(update={"min_distance": self.min_distance})
        return self

    @property
    def database_path(self) -> Path:
        return self.database if self.database is not None else self.workdir / "alloop.db"


def upgrade_campaign(data: dict[str, Any], *, strict: bool = True) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A campaign mapping with old spellings mapped onto today's keys (alloop.renames) and cluster keys the
    engine never read taken out; and (dotted path, message) for each. strict=False (a stored campaign): an
    old key that contradicts its new one is dropped instead of raising UpgradeError."""
    try:
        out, notes = upgrade(data)
    except UpgradeError:
        if strict:
            raise
        out, notes = upgrade(data, conflicts="keep-new")
    found = [(n.path, n.message) for n in notes]
    cluster = out.get("cluster")
    if isinstance(cluster, dict):
        cluster, dropped = drop_other_engines_keys(cluster)
        pool = cluster.get("ensemble_pool")
        if isinstance(pool, dict):
            pool, more = drop_other_engines_keys(pool, "cluster.ensemble_pool")
            cluster = {**cluster, "ensemble_pool": pool}
            dropped += more
        out = {**out, "cluster": cluster}
        found += [(m.split(" ", 1)[0], m) for m in dropped]
    return out, found


def load_campaign(path: str | Path, *, check_ensemble: bool = True) -> Campaign:
    """Read and validate a campaign file; raise ConfigError listing every problem with field and line.
    Old spellings are read with a warning in the log naming the new key."""
    campaign, notes = load_campaign_with_notes(path, check_ensemble=check_ensemble)
    for note in notes:
        log.warning("%s: %s", path, note)
    return campaign


def load_campaign_with_notes(path: str | Path, *, check_ensemble: bool = True) -> tuple[Campaign, list[str]]:
    """`load_campaign`, and the deprecation notes (old spellings read, ignored keys) with their lines."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read campaign file: {exc.strerror}"], str(path)) from exc
    data, lines = _parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(["the campaign file must be a YAML mapping (key: value lines)"], str(path))
    try:
        data, found = upgrade_campaign(data)
    except UpgradeError as exc:
        raise ConfigError([f"{exc.path}{_where(exc.path, lines)}: {exc}"], str(path)) from None
    notes = [f"{p}{_where(p, lines)} {message.removeprefix(p + ' ')}" for p, message in found]
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err, lines) for err in exc.errors()], str(path)) from None
    campaign = _resolve_paths(campaign, path.parent)
    campaign._written = frozenset(_flatten(data, leaves_only=True))
    if check_ensemble:
        problems = _check_ensemble(campaign, lines)
        if problems:
            raise ConfigError(problems, str(path))
    return campaign, notes


def _where(dotted: str, lines: dict[tuple[Any, ...], int]) -> str:
    line = _line_for(tuple(dotted.split(".")), lines)
    return f" (line {line})" if line else ""


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
    loc: tuple[Any, ...] = ()
    parts = list(err["loc"])
    for i, p in enumerate(parts):
        # pydantic puts union branches (types, cluster engines) into the location; the YAML has none of them
        tag = p in _UNION_TAGS and i < len(parts) - 1 and loc + (p,) not in lines
        if isinstance(p, str) and ("[" in p or p in {"str", "dict[str,any]"} or tag):
            continue
        loc += (p,)
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


_UNION_TAGS = {"local", "jobqueue", "address"}


def _resolve_paths(c: Campaign, base: Path) -> Campaign:
    def rel(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else (base / p)).resolve()

    updates: dict[str, Any] = {"workdir": rel(c.workdir), "database": rel(c.database)}
    if c.generate.sources:
        sources = [s.model_copy(update={"path": rel(s.path)}) for s in c.generate.sources]
        updates["generate"] = c.generate.model_copy(update={"sources": sources})
    if c.train.test_sets:
        updates["train"] = c.train.model_copy(update={"test_sets": [t.model_copy(update={"path": rel(t.path)}) for t in c.train.test_sets]})
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
# binding keys that find the database itself: a changed default of these finds another (new) campaign
_FINDS_THE_DATABASE = ("name", "workdir", "database")


class ConfigChange(BaseModel):
    field: str
    old: Any = None
    new: Any = None
    binding: bool = Field(description="True: it would change what is already stored (labels, U, routes)")
    default_changed: bool = Field(False, description="True: the campaign file does not set it; this alloop's "
                                  "default differs from the one the campaign was run with")


def _within(key: str, section: str) -> bool:
    """Whether dotted `key` is `section` or lies inside it."""
    return key == section or key.startswith(section + ".")


def _is_binding(key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    if not any(_within(key, b) for b in _BINDING):
        return False
    backend = key.split(".")[2] if key.startswith("labels.dft.") and key.count(".") >= 2 else None
    # a backend's settings bind only while it labels (or labelled) the campaign
    return not (backend in ("gpaw", "vasp", "replay") and backend not in (old.get("labels.dft.backend"), new.get("labels.dft.backend")))


def _stored_and_current(stored_json: str, campaign: Campaign) -> tuple[dict[str, Any], dict[str, Any]]:
    import json

    # the stored settings may spell keys as an older alloop did: a rename is no change
    stored = upgrade_campaign(json.loads(stored_json), strict=False)[0]
    return _flatten(stored), _flatten(json.loads(campaign.model_dump_json()))


def config_changes(stored_json: str, campaign: Campaign) -> list[ConfigChange]:
    """Every setting that differs between the campaign file of the last run and `campaign`, dotted paths."""
    import json

    old, new = _stored_and_current(stored_json, campaign)
    # a setting a newer alloop added, at its default, is no change of the user's
    defaults = _flatten(json.loads(Campaign(name=campaign.name, elements=campaign.elements).model_dump_json()))
    out = []
    for key in sorted(set(old) | set(new)):
        if key not in old and key in defaults and new.get(key) == defaults[key]:
            continue
        if old.get(key) != new.get(key):
            out.append(ConfigChange(field=key, old=old.get(key), new=new.get(key), binding=_is_binding(key, old, new),
                                    default_changed=key in old and key in new and not campaign.writes(key)))
    return out


def keep_stored_values(stored_json: str, campaign: Campaign) -> tuple[Campaign, list[ConfigChange]]:
    """`campaign` with each binding setting its file does not write set back to the value the campaign was run
    with, and those settings. Such a difference is a default changed by a newer alloop, not the user's edit: the
    stored labels, U and routes were made with the old value, so the campaign goes on with it (a setting that only
    steers the future takes the new default instead; config_changes reports it)."""
    import json

    old, new = _stored_and_current(stored_json, campaign)
    kept = [ConfigChange(field=k, old=old[k], new=new[k], binding=True, default_changed=True)
            for k in sorted(set(old) & set(new))
            if old[k] != new[k] and k not in _FINDS_THE_DATABASE and _is_binding(k, old, new) and not campaign.writes(k)]
    if not kept:
        return campaign, []
    data = json.loads(campaign.model_dump_json())
    for ch in kept:
        put_dotted(data, ch.field, ch.old)
    try:
        restored = Campaign.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [f"{ch.field}: the campaign was run with {ch.old!r}, this alloop's default is {ch.new!r}, and the old value "
             "is no longer accepted; write the key in the campaign file (and run with --accept-changes)" for ch in kept]
            + [_describe(e, {}) for e in exc.errors()], "stored campaign settings") from None
    restored._written = campaign._written
    return restored, kept


def _flatten(d: Any, prefix: str = "", *, leaves_only: bool = False) -> dict[str, Any]:
    """Dotted paths -> values; an empty mapping is a value of its own unless `leaves_only`."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}.", leaves_only=leaves_only))
        return out or ({} if leaves_only else {prefix[:-1]: {}})
    return {prefix[:-1]: d}
