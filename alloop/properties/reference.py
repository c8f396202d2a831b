"""The reference table shipped with alloop (data/reference.yaml): published DFT values with their sources,
shown beside every computed property, and the experimental elastic constants the defect genome uses."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from alloop.properties.results import PROPERTIES, Structure

TABLE_PATH = Path(__file__).resolve().parent / "data" / "reference.yaml"
Kind = Literal["dft", "experiment"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    reference: str
    method: str
    cell: str
    note: str | None = None

    def describe(self) -> str:
        """One paragraph: reference, method, cell and the note, each ending its sentence."""
        parts = [self.reference, self.method, f"Cell: {self.cell}"] + ([f"Note: {self.note}"] if self.note else [])
        return " ".join(p.strip() if p.strip().endswith(".") else p.strip() + "." for p in parts)


class Entry(_Strict):
    value: float
    source: str


class ElementEntry(_Strict):
    structure: Structure
    dft: dict[str, Entry] = Field(default_factory=dict)
    experiment: dict[str, Entry] = Field(default_factory=dict)


class ReferenceTable(_Strict):
    sources: dict[str, Source]
    elements: dict[str, ElementEntry]

    def value(self, element: str, prop: str, kind: Kind = "dft") -> Entry | None:
        entry = self.elements.get(element)
        return None if entry is None else getattr(entry, kind).get(prop)

    def structure(self, element: str) -> Structure | None:
        entry = self.elements.get(element)
        return None if entry is None else entry.structure


@functools.cache
def reference_table() -> ReferenceTable:
    """The shipped table, checked: every value names a known source and a known property."""
    table = ReferenceTable.model_validate(yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8")))
    for el, entry in table.elements.items():
        for kind in ("dft", "experiment"):
            for prop, e in getattr(entry, kind).items():
                if prop not in PROPERTIES:
                    raise ValueError(f"{TABLE_PATH}: {el}.{kind}.{prop} is not a property alloop computes")
                if e.source not in table.sources:
                    raise ValueError(f"{TABLE_PATH}: {el}.{kind}.{prop} names the unknown source {e.source!r}")
    return table
