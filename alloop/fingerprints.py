"""Content fingerprints of the files a campaign refers to, for the change guard (issue 21 item 2): an ensemble
YAML whose RMSEs were edited, a checkpoint replaced, a replay or source data file swapped is a change of what the
stored labels, U and routes were made with, even though every path in the campaign file is the same.

The content hash decides; size and mtime only spare rehashing a file that has neither changed. A file larger than
`FULL_HASH_BYTES` is hashed over its first and last `PART_BYTES` and its size (a bounded cost for multi-GB
checkpoints); smaller ones whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FULL_HASH_BYTES = 64 * 2**20
PART_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Fingerprint:
    role: str
    path: str
    size: int
    mtime_ns: int
    sha256: str


def content_hash(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        else:
            h.update(fh.read(PART_BYTES))
            fh.seek(size - PART_BYTES)
            h.update(fh.read(PART_BYTES))
            h.update(str(size).encode())
    return h.hexdigest()


def fingerprint(role: str, path: str | Path, known: Fingerprint | None = None) -> Fingerprint | None:
    """The file's fingerprint (None when it is not there: the run's own checks say so); `known`, the stored one
    of the same file, is reused when size and mtime are unchanged."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    if not p.is_file():
        return None
    if known is not None and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
        return Fingerprint(role, str(p), st.st_size, st.st_mtime_ns, known.sha256)
    return Fingerprint(role, str(p), st.st_size, st.st_mtime_ns, content_hash(p, st.st_size))


def campaign_files(campaign: Any, ensemble: Any) -> dict[str, str]:
    """role -> absolute path of every file the campaign's stored results depend on: the ensemble's YAML files (its
    own or the built-in one, and those it names as `base:` or `rmse_from:`), each member's checkpoint, the replay
    data of a replay DFT backend, the data files of the candidate sources, and a VASP INCAR template."""
    out: dict[str, str] = dict(getattr(ensemble, "sources", ()))
    for m in ensemble.members:
        if m.checkpoint is not None:
            out[f"checkpoint of member {m.name}"] = str(Path(m.checkpoint).resolve())
    dft = campaign.labels.dft
    if dft.backend == "replay" and dft.replay is not None:
        for k, src in enumerate(dft.replay.sources):
            out[f"replay data {k + 1}"] = str(Path(src).resolve())
    if dft.backend == "vasp" and dft.vasp is not None and getattr(dft.vasp, "incar_template", None):
        out["VASP INCAR template"] = str(Path(dft.vasp.incar_template).resolve())
    for k, src in enumerate(campaign.generate.sources):
        out[f"candidate source {k + 1}" + (f" ({src.name})" if getattr(src, "name", None) else "")] = str(Path(src.path).resolve())
    return out


def changed_files(stored: dict[tuple[str, str], Fingerprint], files: dict[str, str]) -> tuple[list[Fingerprint], list[tuple[Fingerprint, Fingerprint]]]:
    """(the current fingerprints, (old, new) for each file whose content differs from the stored one). A file
    the database has no fingerprint of yet (a new campaign, a path the campaign file now names) is no change."""
    current, changed = [], []
    for role, path in files.items():
        old = stored.get((role, path))
        new = fingerprint(role, path, old)
        if new is None:
            continue
        current.append(new)
        if old is not None and old.sha256 != new.sha256:
            changed.append((old, new))
    return current, changed


def describe(old: Fingerprint, new: Fingerprint) -> str:
    size = f"{old.size} -> {new.size} bytes" if old.size != new.size else f"{new.size} bytes"
    return f"{old.role} {new.path} changed ({size}, sha256 {old.sha256[:12]} -> {new.sha256[:12]})"
