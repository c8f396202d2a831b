"""The campaign schema describing itself: every key's value, default, unit and meaning, read from the
settings models' `Field(description=..., json_schema_extra=unit("Å"))`.

    print(explain(campaign))            # `alloop validate --explain CAMPAIGN`
    settings_models(Campaign)           # every settings model a campaign file can reach

A field with `exclude=True` is a stage's copy of a campaign-wide key (passed down by alloop.config, e.g.
`generate.min_distance` from `min_distance`), not a key of its own: it is neither listed nor stored.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def unit(symbol: str) -> dict[str, str]:
    """`json_schema_extra` of a field measured in `symbol`, e.g. Field(0.8, json_schema_extra=unit("Å"))."""
    return {"unit": symbol}


def field_unit(field: FieldInfo) -> str | None:
    extra = field.json_schema_extra
    return extra.get("unit") if isinstance(extra, dict) else None  # type: ignore[return-value]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The settings models a field's type can hold (through Optional, unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for m in _models_in(arg):
            if m not in found:
                found.append(m)
    return found


def _is_section(annotation: Any) -> bool:
    """True when the field holds a model itself (or None), not a list or mapping of them."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_section(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_section(a) for a in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def keys_of(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The campaign keys of a settings model (its fields, pass-down copies left out)."""
    return {name: f for name, f in model.model_fields.items() if not f.exclude}


def settings_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """`root` and every settings model reachable from its keys, in the order they are met."""
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for f in keys_of(model).values():
            for m in _models_in(f.annotation):
                visit(m)

    visit(root)
    return seen


# --------------------------------------------------------------------------------------------- explain
@dataclass(frozen=True)
class Key:
    path: str
    depth: int
    section: bool
    value: Any = None
    default: Any = PydanticUndefined
    unit: str | None = None
    description: str = ""


def _default(field: FieldInfo) -> Any:
    if field.default is PydanticUndefined and field.default_factory is None:
        return PydanticUndefined
    return field.get_default(call_default_factory=True)


def walk(model: BaseModel | type[BaseModel], prefix: str = "", depth: int = 0) -> Iterator[Key]:
    """Every key of `model` (an instance: with its values; a class: its defaults), sections first, then
    their keys one level deeper."""
    cls = model if isinstance(model, type) else type(model)
    for name, field in keys_of(cls).items():
        path = f"{prefix}{name}"
        value = getattr(model, name) if not isinstance(model, type) else _default(field)
        description = field.description or ""
        if _is_section(field.annotation):
            yield Key(path, depth, True, value, description=description)
            if isinstance(value, BaseModel):
                yield from walk(value, f"{path}.", depth + 1)
            elif value is None and len(_models_in(field.annotation)) == 1:
                yield from walk(_models_in(field.annotation)[0], f"{path}.", depth + 1)
            continue
        yield Key(path, depth, False, value, _default(field), field_unit(field), description)


def _fmt(value: Any) -> str:
    if value is PydanticUndefined:
        return "-"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, PurePath):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, str) and not value:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def explain(model: BaseModel, width: int = 46) -> str:
    """One line per key: `key: value unit`, then its default (`(default)` when the value is it, `required`
    for a key without one) and what it means; a section's keys follow it, indented. A section that is
    not set shows its keys at their defaults."""
    lines = []
    unset_depth: int | None = None
    for k in walk(model):
        if unset_depth is not None and k.depth <= unset_depth:
            unset_depth = None
        indent = "  " * k.depth
        name = k.path.rsplit(".", 1)[-1]
        if k.section:
            if k.value is None:
                unset_depth = k.depth
            head = f"{indent}{name}:" + (" (not set)" if k.value is None else "")
            lines.append(f"{head:<{width}} {k.description}".rstrip())
            continue
        shown = "-" if unset_depth is not None else _fmt(k.value)
        unit_ = f" {k.unit}" if k.unit else ""
        head = f"{indent}{name}: {shown}{unit_ if shown not in ('-', 'null') else ''}"
        if k.default is PydanticUndefined:
            note = "required"
        elif unset_depth is None and _fmt(k.value) == _fmt(k.default):
            note = "(default)"
        else:
            note = f"(default {_fmt(k.default)}{unit_ if k.default is not None else ''})"
        lines.append(f"{head:<{width}} {note} {k.description}".rstrip())
    return "\n".join(lines)
