"""Old spellings of campaign keys: the one table of them, and `upgrade`, which maps a campaign (as written
in a file, or as stored in a campaign's database by an older alloop) onto today's keys.

An entry is either

- `Renamed(old, new)`: the key moved or was renamed; a file that still says `old` is read as `new`, with
  a message naming the new key (`alloop validate` prints it, `alloop run` logs it once);
- `Retired(path, reason)`: the key did nothing (or no longer does); it is accepted, ignored, and the
  message says why. `accepts`: the values it ever accepted (others are still an error).

Paths are dotted campaign paths (`labels.dft.gpaw.timeout_s`). To rename a key, add one line below and
read the new name in the code; nothing else has to change: the change guard (alloop.config.config_changes)
maps the database's stored settings through the same table, so a rename never counts as a change. E.g.

    Renamed("selection.budget", "selection.dft_budget"),
    Renamed("convergence.gamma_threshold", "explore.gamma_lo", if_section_absent="drop"),

(a move into an optional section such as `explore`, which a campaign switches on by writing it, must not
create it). Entries apply in order, so a key renamed twice lists the older step first.

    data, notes = upgrade(yaml.safe_load(text))      # notes: [Note(path, message), ...]
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Renamed:
    old: str
    new: str
    why: str = ""
    #: when the section `new` lives in is not in the file: "create" it (a section that is always there,
    #: e.g. train), or "drop" the old key with a note (an optional section such as explore, which
    #: creating would switch on)
    if_section_absent: Literal["create", "drop"] = "create"


@dataclass(frozen=True)
class Retired:
    path: str
    reason: str
    accepts: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Note:
    """One old spelling found: where (the dotted path as written) and what to write instead."""

    path: str
    message: str


class UpgradeError(ValueError):
    """An old spelling that cannot be read: it contradicts its new key, or gives a value the key never took."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def _both_pools(key: str, new: str | None = None, why: str = "") -> list[Renamed]:
    """A cluster key renamed in the main pool and in the ensemble pool."""
    return [Renamed(f"{pool}.{key}", f"{pool}.{new}", why) for pool in ("cluster", "cluster.ensemble_pool")]


TABLE: tuple[Renamed | Retired, ...] = (
    # one name for a DFT run's time limit (VASP always said walltime_s)
    Renamed("labels.dft.gpaw.timeout_s", "labels.dft.gpaw.walltime_s"),
    # one name per batch-system knob, the same in labels.dft.batch and cluster
    Renamed("labels.dft.batch.partition", "labels.dft.batch.queue", "a SLURM partition is its queue"),
    *_both_pools("job_extra_directives", "extra_directives"),
    *_both_pools("job_script_prologue", "prologue"),
    # one minimum interatomic distance for the whole campaign (selection first: it is the one every stored
    # configuration passed, so a stored campaign with differing old values keeps it)
    Renamed("selection.min_distance", "min_distance"),
    Renamed("generate.min_distance", "min_distance"),
    Renamed("explore.min_distance", "min_distance"),
    # one cutoff: the potential's; generation keeps defects and vacuum gaps beyond it
    Renamed("generate.cutoff", "train.cutoff", "the generator keeps its cells a potential cutoff wide"),
    # one γ threshold: the convergence sample is graded at the exploration window's lower edge
    Renamed("convergence.gamma_threshold", "explore.gamma_lo",
            "the convergence sample is graded at the trust window's lower edge", if_section_absent="drop"),
    Renamed("convergence.n_candidates", "convergence.min_sample",
            "the sample is the next exploration's MD frames and motifs, all graded; this is its least size"),
    # knobs that did nothing
    Retired("labels.dft.gpaw.mode", "GPAW runs in plane-wave mode ('pw'), its only mode in alloop", accepts=("pw",)),
    Retired("explore.seed", "each exploration draws from the campaign's seed (the candidate pool passes its own "
                            "random generator)"),
)


def upgrade(data: dict[str, Any], section: str = "", table: Iterable[Renamed | Retired] = TABLE, *,
            conflicts: Literal["raise", "keep-new"] = "raise") -> tuple[dict[str, Any], list[Note]]:
    """`data` with every old spelling mapped onto today's keys (a copy; `data` is left alone), and a note per
    old spelling found. `section`: `data` is that section of a campaign (e.g. "labels.dft.gpaw", for the
    settings a work directory recorded); only the entries inside it apply. An old key whose value
    contradicts the new key's (or another old key's of the same new key) raises UpgradeError, or with
    conflicts="keep-new" is dropped; a value a retired key never accepted raises UpgradeError."""
    out = copy.deepcopy(data)
    notes: list[Note] = []
    prefix = f"{section}." if section else ""
    moved_to: dict[str, str] = {}  # new key -> the old key it was read from
    for entry in table:
        if isinstance(entry, Renamed):
            if not (entry.old.startswith(prefix) and entry.new.startswith(prefix)):
                continue
            old, new = entry.old[len(prefix):], entry.new[len(prefix):]
            found, value = _pop(out, old)
            if not found:
                continue
            there, current = _get(out, new)
            if there and current != value and conflicts == "raise":
                given = f"{moved_to[new]} (also an old name of it)" if new in moved_to else entry.new
                raise UpgradeError(entry.old, f"{entry.old} is the old name of {entry.new}, and {given} gives "
                                              f"another value ({value!r} vs {current!r}): write {entry.new} once")
            why = f" ({entry.why})" if entry.why else ""
            section_of_new = new.rpartition(".")[0]
            if section_of_new and entry.if_section_absent == "drop" and _get(out, section_of_new)[1] is None:
                notes.append(Note(entry.old, f"{entry.old} is deprecated and ignored: its new key {entry.new} is "
                                             f"in a section this campaign does not set{why}"))
                continue
            if not there:
                put_dotted(out, new, value)
                moved_to[new] = entry.old
            notes.append(Note(entry.old, f"{entry.old} is deprecated: write {entry.new}{why}"))
        else:
            if not entry.path.startswith(prefix):
                continue
            found, value = _pop(out, entry.path[len(prefix):])
            if not found:
                continue
            if entry.accepts is not None and value not in entry.accepts:
                raise UpgradeError(entry.path, f"{entry.path} = {value!r} is not possible: {entry.reason}")
            notes.append(Note(entry.path, f"{entry.path} is deprecated and ignored: {entry.reason}; remove it"))
    return out, notes


def _walk(d: Any, parts: list[str]) -> tuple[bool, Any]:
    for p in parts:
        if not isinstance(d, dict) or p not in d:
            return False, None
        d = d[p]
    return True, d


def _get(d: dict[str, Any], path: str) -> tuple[bool, Any]:
    return _walk(d, path.split("."))


def _pop(d: dict[str, Any], path: str) -> tuple[bool, Any]:
    *parents, last = path.split(".")
    found, parent = _walk(d, parents)
    if not found or not isinstance(parent, dict) or last not in parent:
        return False, None
    return True, parent.pop(last)


def put_dotted(d: dict[str, Any], path: str, value: Any) -> None:
    """Set d[a][b][c] = value for path "a.b.c", creating absent (or null) sections."""
    *parents, last = path.split(".")
    for p in parents:
        child = d.get(p)
        if child is None:  # an absent (or null) section: the moved key creates it
            child = d[p] = {}
        d = child
    d[last] = value
