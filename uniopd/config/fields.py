"""The field table behind `uniopd fields` and docs/experiments.md: every leaf of a schema model with its
type, default and help, found by walking the model (so a new field needs no edit here)."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel

from uniopd.config.schema import ExperimentConfig
from uniopd.config.section import section_type


def describe_fields(
    model: type[BaseModel] = ExperimentConfig, prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    """(dotted name, type, default, help) for every leaf field, in schema order: the table behind
    `uniopd fields` and docs/experiments.md."""
    rows = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        section = section_type(info.annotation)
        if section is not None and isinstance(info.annotation, type):  # always present
            rows += describe_fields(section, dotted + ".")
            continue
        if info.is_required():
            default = "required"
        else:
            default = info.get_default(call_default_factory=True)
            default = repr(list(default) if isinstance(default, tuple) else default)
        bounds = _bounds(info.metadata)
        kind = _type_name(info.annotation) + (f" ({bounds})" if bounds else "")
        rows.append((dotted, kind, default, info.description or ""))
        # an optional section (student.lora): its own row, None by default, then its fields
        if section is not None:
            rows += describe_fields(section, dotted + ".")
    return rows


def _bounds(metadata: list) -> str:
    signs = {
        annotated_types.Ge: ">=",
        annotated_types.Gt: ">",
        annotated_types.Le: "<=",
        annotated_types.Lt: "<",
    }
    parts = []
    for item in metadata:
        sign = signs.get(type(item))
        if sign:
            parts.append(f"{sign} {getattr(item, type(item).__name__.lower())}")
    return ", ".join(parts)


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))
