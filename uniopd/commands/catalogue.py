"""What is registered, as `uniopd list` and `uniopd fields` print it: every registry's entries
with their origin (uniopd or a plugin's distribution), help, and options; objectives also with
their kind and needs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registries load when listed, not when `uniopd --help` builds its parsers
    from uniopd.registry import Registry

# name in `uniopd list` -> (module, attribute, where an experiment file uses its names)
REGISTRIES = {
    "objectives": ("uniopd.objectives", "OBJECTIVES", "method.name"),
    "verifiers": ("uniopd.verifiers", "VERIFIERS", "a row's domain, or verifiers.<domain>"),
    "sources": ("uniopd.data.sources", "SOURCES", "data.train / data.eval: <scheme>:<rest>"),
    "balancers": ("uniopd.strategies", "ONLINE_BALANCERS", "balance.online.strategy"),
    "calibrators": ("uniopd.strategies", "CALIBRATORS", "calibration.strategy"),
}
# where an experiment file sets the options of each kind of entry
OPTIONS_AT = {
    "objectives": "method.options.{name}",
    "balancers": "balance.online.options",
    "calibrators": "calibration.options",
}


def registry(name: str) -> Registry:
    module, attr, _ = REGISTRIES[name]
    return getattr(importlib.import_module(module), attr)


def listing(only: str | None = None) -> list[str]:
    """The lines of `uniopd list`; reading a registry loads its plugins (a broken one raises)."""
    lines: list[str] = []
    for name in [only] if only else list(REGISTRIES):
        reg = registry(name)
        entries = reg.entries()
        if lines:
            lines.append("")
        lines.append(f"{name} ({REGISTRIES[name][2]}; plugins: entry-point group {reg.group})")
        for e in entries:
            lines.append(f"  {e.name:14} [{e.origin}]  {' '.join(e.help.split()) or '-'}")
            lines += [f"  {'':14} {line}" for line in _details(name, e.obj)]
    return lines


def _details(registry_name: str, obj) -> list[str]:
    """Kind and needs of an objective; the options (with defaults) of anything that has them."""
    lines = []
    if registry_name == "objectives":
        try:
            needs = ", ".join(sorted(str(n) for n in obj(obj.Options()).needs())) or "-"
        except Exception as exc:  # noqa: BLE001 - a required option: needs depend on it
            needs = f"(depends on its options: {type(exc).__name__})"
        lines.append(f"kind: {obj.kind}   needs: {needs}")
    options = getattr(obj, "Options", None)
    for field_name, info in (getattr(options, "model_fields", None) or {}).items():
        default = (
            "(required)"
            if info.is_required()
            else "=" + repr(info.get_default(call_default_factory=True))
        )
        lines.append(f"option {field_name}{default}  {info.description or ''}".rstrip())
    return lines


def option_rows() -> list[tuple[str, str, str, str]]:
    """(dotted name, type, default, help) of every registered entry's options, for `uniopd fields`."""
    from uniopd.config import describe_fields

    rows = []
    for name, at in OPTIONS_AT.items():
        for entry in registry(name).entries():
            prefix = at.format(name=entry.name)
            where = "" if "{name}" in at else f"(strategy {entry.name}) "
            rows += [
                (f"{prefix}.{field}", typ, default, where + help_text)
                for field, typ, default, help_text in describe_fields(entry.obj.Options, "")
            ]
    return rows
