"""The per-process member cache: `load_member(spec)` loads a model once per process and keeps it.

A Dask task is a plain function call, so a model that must outlive one task (be loaded once per worker
for the campaign) has to live in the worker process itself. Keyed by the spec, so any number of members
share one worker (and one GPU) without reloading. A member with `python:` runs in a worker process of
that interpreter (alloop.ensemble.worker.RemoteMember); every other one in this interpreter
(alloop.ensemble.members.load_local).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from alloop.ensemble.members import Member, load_local
from alloop.ensemble.spec import MemberSpec
from alloop.ensemble.worker import RemoteMember

_CACHE: dict[str, Member] = {}
_CACHE_LOCK = threading.Lock()  # a Dask worker with several threads must not load one model twice
# Fields that change neither the model nor its outputs, so members differing only there share a load.
_NOT_IN_KEY = {"rmse", "in_u"}


def _cache_key(spec: MemberSpec) -> str:
    return spec.model_dump_json(exclude=_NOT_IN_KEY)


def load_member(spec: MemberSpec | Mapping[str, Any]) -> Member:
    """The loaded member for `spec`, loading it on first use in this process."""
    spec = spec if isinstance(spec, MemberSpec) else MemberSpec.model_validate(spec)
    key = _cache_key(spec)
    with _CACHE_LOCK:
        member = _CACHE.get(key)
        if member is None:
            member = RemoteMember(spec) if spec.python is not None else load_local(spec)
            _CACHE[key] = member
    return member


def loaded_members() -> list[str]:
    """Names of the members loaded in this process, in load order (what a worker holds)."""
    return [m.spec.name for m in _CACHE.values()]


def unload_all() -> None:
    """Drop every cached model and stop every worker process of this process."""
    with _CACHE_LOCK:
        members = list(_CACHE.values())
        _CACHE.clear()
    for m in members:
        m.close()
