"""The base of every experiment-file section, and the cross-field error they raise."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError


class _Section(BaseModel):
    # Unknown keys are errors: a typo such as `trian.lr` must not silently train with the default.
    # NaN/inf are refused because no knob here means anything with them; a future field that does
    # (e.g. a ratio where inf means "drop all") opts in with Field(allow_inf_nan=True).
    # Numbers are accepted as text so that `name: 2024` or `name=1` on the command line just work.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)


def section_type(annotation: Any) -> type[BaseModel] | None:
    """The section class of a field annotated `Section` or `Section | None` (an optional section,
    such as `student.lora`, which is off until set), else None: a leaf."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        sections = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = sections[0] if len(sections) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def conflict(reason: str, *fields: str) -> PydanticCustomError:
    """A cross-field error. `fields` are dotted names relative to the model that raises it, the
    first being the one to report; `load.py` uses them to name the file that set the values."""
    return PydanticCustomError("conflict", "{reason}", {"reason": reason, "fields": fields})


def build_options(entry, options: dict, name: str):
    """`options` validated by a registered entry's `Options` model; errors name the option."""
    try:
        return entry.Options.model_validate(options)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err["loc"])
        raise conflict(
            f"{name}: {where}: {err['msg']}", f"options.{where}" if where else "options"
        ) from None
