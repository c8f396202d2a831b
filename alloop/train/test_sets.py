"""External test sets (`train.test_sets`): DFT a campaign never trains on, on which every potential is
scored after its fit, by the code path of `alloop evaluate` (alloop.train.evaluate.compute_errors)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alloop.generate.sources import checked_indices


class TestSet(BaseModel):
    """One labelled structure file (anything `alloop evaluate` reads), optionally a slice of it."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="labelled structure file: extxyz, pacemaker .pckl.gzip, JSON or npz (relative: to the campaign file)")
    name: str | None = Field(None, description="the set's name in status and the report (default: the file's stem)")
    indices: str | None = Field(None, description="entries to keep, 0-based and inclusive: '0-1025,1030' (default: all)")
    every: int = Field(1, ge=1, description="keep every n-th of the kept entries (a cheaper, evenly spread sample)")

    _ranges = field_validator("indices")(lambda v: checked_indices(v))

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]


def read_test_set(test_set: TestSet) -> list[Atoms]:
    """The set's structures with their reference energies and forces."""
    from alloop.generate.sources import selected_indices
    from alloop.io import read_labelled

    frames = read_labelled(test_set.path)
    return [frames[i] for i in selected_indices(test_set.indices, len(frames), test_set.path)[:: test_set.every]]


def evaluate_test_sets(potential: str | Path, test_sets: Sequence[TestSet]) -> dict[str, dict[str, Any]]:
    """Per set (by its label): the metrics of alloop evaluate (energies meV/atom raw and without the mean
    offset, forces eV/Å per component), or {"error": reason} for a set that cannot be read or predicted."""
    from alloop.errors import AlloopError
    from alloop.train.evaluate import compute_errors

    out: dict[str, dict[str, Any]] = {}
    for ts in test_sets:
        try:
            metrics, _ = compute_errors(potential, read_test_set(ts))
        except AlloopError as exc:
            out[ts.label] = {"error": str(exc)}
            continue
        metrics.pop("potential", None)
        out[ts.label] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()}
    return out
