"""Data sets as candidates: configurations read from structure files enter the campaign like generated
ones, each with its provenance (file, index in the file, group).

Any file `alloop.io.read_labelled` reads can be a source (the shared W `.npz`, mlearn/SNAP JSON,
pacemaker `.pckl.gzip`, extxyz and everything else ASE reads); labels in the file are not used here (a
`replay` DFT backend or ensemble member can serve them). A source may keep only some of its entries
(index ranges, groups) and feed them over several iterations.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alloop.errors import ConfigError, MissingFileError
from alloop.io import file_stamp

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


class SourceSettings(BaseModel):
    """One structure file feeding candidates."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="structure file (relative paths: to the campaign file)")
    indices: str | None = Field(None, description="entries to keep, 0-based and inclusive: '0-1025,1030'")
    groups: list[str] | None = Field(None, description="keep entries whose group (JSON 'group' key) is listed")
    name: str | None = Field(None, description="group recorded for entries the file gives none (default: none)")
    per_iteration: int | None = Field(None, ge=1, description="entries entering each iteration, in file order "
                                      "(default: all in iteration 0)")

    _ranges = field_validator("indices")(lambda v: checked_indices(v))


def checked_indices(v: str | None) -> str | None:
    """An `indices` field's validator (sources and test sets): the text, once it parses."""
    if v is not None:
        parse_indices(v)
    return v


def parse_indices(text: str) -> list[tuple[int, int]]:
    """'0-1025, 1030' -> [(0, 1025), (1030, 1030)] (inclusive); ValueError says what is wrong."""
    out = []
    for part in text.split(","):
        m = _RANGE.match(part)
        if m is None:
            raise ValueError(f"index range {part.strip()!r} is not N or N-M (0-based, inclusive)")
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise ValueError(f"index range {part.strip()!r} ends before it starts")
        out.append((lo, hi))
    return out


def selected_indices(indices: str | None, n: int, path: str | Path) -> list[int]:
    """The entries of a file of `n` that an `indices` text keeps, in file order (all for None); ConfigError for
    a range beyond the file."""
    if indices is None:
        return list(range(n))
    ranges = parse_indices(indices)
    beyond = [f"{lo}-{hi}" for lo, hi in ranges if hi >= n]
    if beyond:
        raise ConfigError([f"index range(s) {', '.join(beyond)} beyond its {n} entries"], str(path))
    return sorted({i for lo, hi in ranges for i in range(lo, hi + 1)})


@functools.lru_cache(maxsize=4)
def _read(path: str, _stamp: tuple[int, int]) -> tuple[Atoms, ...]:
    from alloop.io import read_labelled

    return tuple(read_labelled(path, require_forces=False))


def source_entries(source: SourceSettings) -> list[Atoms]:
    """The kept entries of one source, in file order, each with info["kind"] = "dataset" and
    info["source"] = {"file", "index", "group"}."""
    path = Path(source.path)
    if not path.is_file():
        raise MissingFileError(path, "candidate source (generate.sources)",
                               "give the path of an existing structure file (relative paths are relative to the campaign file)")
    frames = _read(str(path.resolve()), file_stamp(path))
    keep = selected_indices(source.indices, len(frames), path)
    out = []
    for i in keep:
        group = frames[i].info.get("group", source.name)
        if source.groups is not None and group not in source.groups:
            continue
        a = Atoms(numbers=frames[i].numbers, positions=frames[i].positions, cell=frames[i].cell, pbc=frames[i].pbc)
        a.info["kind"] = "dataset"
        a.info["source"] = {"file": str(path), "index": int(i), "group": group}
        out.append(a)
    if not out:
        raise ConfigError([f"the selection (indices {source.indices}, groups {source.groups}) keeps no entry"], str(path))
    return out


def source_candidates(sources: Sequence[SourceSettings], iteration: int) -> list[Atoms]:
    """The entries of every source that enter `iteration`: all of them in iteration 0 unless a source
    sets `per_iteration`, then its next `per_iteration` entries in file order."""
    out: list[Atoms] = []
    for source in sources:
        if source.per_iteration is None and iteration > 0:
            continue
        entries = source_entries(source)
        if source.per_iteration is not None:
            entries = entries[iteration * source.per_iteration : (iteration + 1) * source.per_iteration]
        out.extend(entries)
    return out
