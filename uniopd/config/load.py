"""Read an experiment file into a validated `ExperimentConfig`.

    cfg = load_experiment("experiments/opd_math.yaml", ["train.lr=3e-4", "teachers.math=ckpt/t"])

Layers, lowest first: the `base:` chain (a top-level `base: other.yaml`, relative to the file that
names it), the file itself, then the dotted overrides in order. Every other relative path (data
files, models) follows the same rule, falling back to the working directory (paths.py). A key
written twice in one mapping is refused (strict_yaml.py). Mappings merge key by key;
everything else (lists, scalars) is replaced whole, except a section's shorthand string
(`student: x` is `student: {model: x}`), which merges as the mapping it stands for. Every leaf
remembers which layer set it, so a validation error names the file or override to fix, not just
the field.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from uniopd.config import strict_yaml
from uniopd.config.paths import anchor_paths
from uniopd.config.schema import ExperimentConfig
from uniopd.config.section import section_type


class Fault(NamedTuple):
    source: str  # a file path, or "override 'train.lr=abc'"
    field: str | None  # dotted field, None when the fault is the file itself
    reason: str


class ConfigError(Exception):
    """A bad experiment file or override. The message is one line per fault,
    `source: field: reason`; the attributes describe the first fault."""

    def __init__(self, source: str, field: str | None, reason: str, more: Sequence[Fault] = ()):
        self.problems = [Fault(source, field, reason), *more]
        self.source, self.field, self.reason = source, field, reason
        super().__init__("\n".join(_format(p) for p in self.problems))

    def __reduce__(self):  # keeps the error intact across process boundaries (sweep workers)
        return ConfigError, (self.source, self.field, self.reason, self.problems[1:])


def _format(p: Fault) -> str:
    return f"{p.source}: {p.field}: {p.reason}" if p.field else f"{p.source}: {p.reason}"


Key = tuple  # a dotted field as a key tuple, e.g. ("train", "lr") or ("data", "train", 0)

# provenance: key tuple of a leaf -> (rank, source). Rank orders layers: bases < the file < overrides,
# so for a conflict between two values the most recently set one is blamed.
Provenance = dict[Key, tuple[int, str]]


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    if isinstance(overrides, str):  # a lone "seed=2" would otherwise be read character by character
        raise TypeError(
            "overrides must be a sequence of 'dotted.key=value' strings, not one string"
        )
    top = str(path)
    data, prov = _read_with_bases(Path(path), stack=())
    for i, text in enumerate(overrides, start=1):
        _merge(data, _parse_override(text), prov, (), f"override '{text}'", rank=i)
    anchor_paths(data, lambda key: _source_of(key, prov))  # paths.py: beside the file naming them
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc.errors(include_url=False), prov, top)
        raise ConfigError(*problems[0], more=problems[1:]) from None


# Problems listed one by one; past that, one line counts the rest (a file of thousands of unknown
# keys is reported in a few lines, in bounded time).
MAX_LISTED = 8


def _problems(errors: list, prov: Provenance, top: str) -> list[Fault]:
    """One line per problem, at most MAX_LISTED of them, the unknown keys of one section and
    file on one line; past that, a line that counts the rest."""
    unknown: dict[tuple, list[str]] = {}
    others = []
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = tuple(part for part in err["loc"] if part not in _NOT_FIELDS)
            where = (_source_of(loc, prov) or top, loc[:-1])
            unknown.setdefault(where, []).append(str(loc[-1]))
        else:
            others.append(err)
    problems = []
    for (source, section), keys in unknown.items():
        if len(keys) == 1:
            problems.append(
                Fault(source, _dotted((*section, keys[0])), _unknown_key((*section, keys[0])))
            )
            continue
        known = list(model.model_fields) if (model := _section_at(section)) else []
        shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        problems.append(
            Fault(
                source,
                _dotted(section) or None,
                f"{len(keys)} unknown keys: {shown}"
                + (f"; known keys: {', '.join(known)}" if known else ""),
            )
        )
    problems += [_explain(dict(err), prov, top) for err in others]
    if len(problems) > MAX_LISTED:
        rest = len(problems) - MAX_LISTED
        problems = [*problems[:MAX_LISTED], Fault(top, None, f"and {rest} more problems")]
    return problems


def resolved_dict(cfg: ExperimentConfig) -> dict:
    """Plain JSON/YAML types with every default filled in: what a run saves next to its outputs."""
    return cfg.model_dump(mode="json")


def save_resolved(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML; `load_experiment(path)` gives back an equal config."""
    text = yaml.safe_dump(resolved_dict(cfg), sort_keys=False, allow_unicode=True)
    header = (
        f"# resolved config of run '{cfg.name}': every default filled in, no base, no overrides\n"
    )
    Path(path).write_text(header + text)


# --- reading layers ---------------------------------------------------------------------------


def _read_with_bases(path: Path, stack: tuple[Path, ...], rank: int = 0) -> tuple[dict, Provenance]:
    data = _read_yaml(path)
    merged: dict = {}
    prov: Provenance = {}
    if "base" in data:
        base = data.pop("base")
        if not isinstance(base, str) or not base:
            raise ConfigError(
                str(path), "base", f"must be a path to another experiment file, got {base!r}"
            )
        base_path = Path(
            os.path.normpath(path.parent / base)
        )  # "exp/sub/../b.yaml" reads as "exp/b.yaml"
        chain = (*stack, path)
        if base_path.resolve() in [p.resolve() for p in chain]:
            names = " -> ".join(str(p) for p in (*chain, base_path))
            raise ConfigError(str(path), "base", f"inheritance cycle: {names}")
        if not base_path.is_file():
            raise ConfigError(str(path), "base", f"base file '{base_path}' not found")
        # A base's values rank below the file that names it; rank is negative so overrides stay above.
        merged, prov = _read_with_bases(base_path, chain, rank - 1)
    _merge(merged, data, prov, (), str(path), rank)
    return merged, prov


# An experiment file is a few KB; these bound what a wrong file (a checkpoint, a log, a generated
# monster) can cost before it is refused.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000


def _read_yaml(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                str(path),
                None,
                f"{size / 2**20:.1f} MiB is too large for an experiment file (at most "
                f"{MAX_FILE_BYTES >> 20} MiB): is this the right file?",
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(path), None, "is a directory, not an experiment file") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    if b"\0" in raw:
        raise ConfigError(str(path), None, "binary data (a NUL byte), not YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            str(path),
            None,
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} (save the file as UTF-8)",
        ) from None
    try:
        data = strict_yaml.load(text)
    except strict_yaml.DuplicateKeyError as exc:
        raise ConfigError(str(path), None, str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), None, _yaml_reason(exc)) from None
    except RecursionError:
        raise ConfigError(str(path), None, _too_deep()) from None
    if data is None:  # an empty file is an empty layer
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), None, f"top level must be a mapping of keys, got {type(data).__name__}"
        )
    _check_shape(data, str(path))
    return data


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels; no experiment field is"


def _check_shape(data: Any, source: str) -> None:
    """Refuse a structure nested deeper than MAX_DEPTH or with more than MAX_NODES values (YAML
    aliases can make a small file expand without bound), walking at most MAX_NODES of them."""
    stack, seen = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH:
            raise ConfigError(source, None, _too_deep())
        if seen > MAX_NODES:
            raise ConfigError(
                source, None, f"more than {MAX_NODES} values (YAML aliases expanding?); too large"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML{where}: {problem}"


def _parse_override(text: str) -> dict:
    """'train.lr=3e-4' -> {'train': {'lr': 3e-4}}: an override is a one-leaf layer."""
    source = f"override '{text}'"
    key, eq, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    usage = "expected dotted.key=value, e.g. train.lr=3e-4 or data.train=[a,b]"
    if not eq:
        raise ConfigError(source, None, f"no '=' in it; {usage}")
    if not all(parts):
        raise ConfigError(source, None, f"empty key part in '{key}'; {usage}")
    if parts[0] == "base":
        raise ConfigError(source, "base", "inheritance can only be set inside an experiment file")
    try:
        value = strict_yaml.load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(
            source, key, _yaml_reason(exc) + " (quote the value if it is text)"
        ) from None
    for part in reversed(parts):
        value = {part: value}
    return value


def _merge(dst: dict, src: dict, prov: Provenance, prefix: Key, source: str, rank: int) -> None:
    for key, value in src.items():
        here = (*prefix, key)
        value = _spell_out(dst, key, value, prov, here)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, prov, here, source, rank)
            continue
        for stale in [p for p in prov if p[: len(here)] == here]:
            del prov[stale]
        dst[key] = copy.deepcopy(value)
        _record(value, prov, here, source, rank)


def _spell_out(dst: dict, key: Any, value: Any, prov: Provenance, here: Key) -> Any:
    """A section with a SHORTHAND field reads a string as {SHORTHAND: string} (`student: x` is
    `student: {model: x}`). Where a string meets a mapping, both are spelled out so they merge key
    by key: `student.lora.r=8` over `student: x` keeps x, `student=y` keeps student.lora."""
    short = getattr(_section_at(here), "SHORTHAND", None)
    if short is None:
        return value
    if isinstance(dst.get(key), str) and isinstance(value, dict):
        dst[key] = {short: dst[key]}
        if here in prov:
            prov[(*here, short)] = prov.pop(here)
    if isinstance(value, str) and isinstance(dst.get(key), dict):
        return {short: value}
    return value


def _record(value: Any, prov: Provenance, here: Key, source: str, rank: int) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _record(sub, prov, (*here, key), source, rank)
    else:
        prov[here] = (rank, source)


# --- explaining validation errors --------------------------------------------------------------


# what pydantic puts into a location besides field names: the tags of a tagged union (a data
# source is a plain spec or a mapping) and the marker of a bad dict key
_NOT_FIELDS = {"spec", "mapping", "[key]"}


def _explain(err: dict, prov: Provenance, top: str) -> Fault:
    loc = tuple(part for part in err["loc"] if part not in _NOT_FIELDS)
    kind = err["type"]
    if kind == "missing":
        info = _field_info(loc)
        hint = f" ({info.description})" if info is not None and info.description else ""
        return Fault(top, _dotted(loc), f"required field is missing{hint}")
    if kind == "extra_forbidden":
        return Fault(_source_of(loc, prov) or top, _dotted(loc), _unknown_key(loc))
    if kind == "conflict":
        fields = [(*loc, *f.split(".")) for f in err["ctx"]["fields"]]
        blamed = [_blame(f, prov) for f in fields]
        set_by = max((b for b in blamed if b), default=None)
        return Fault(set_by[1] if set_by else top, _dotted(fields[0]), err["msg"])
    if kind == "value_error":  # a validator's own message says what was wrong with the value
        reason = str(err.get("ctx", {}).get("error", err["msg"]))
        return Fault(_source_of(loc, prov) or top, _dotted(loc), reason)
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return Fault(_source_of(loc, prov) or top, _dotted(loc), f"{err['msg']} (got {got})")


def _source_of(loc: Key, prov: Provenance) -> str | None:
    found = _blame(loc, prov)
    return found[1] if found else None


def _blame(loc: Key, prov: Provenance) -> tuple[int, str] | None:
    """The layer that set the value at `loc`: the entry for it or its nearest recorded parent
    (a list is one leaf), else the most recent of the leaves under it (a whole section)."""
    for i in range(len(loc), 0, -1):
        if loc[:i] in prov:
            return prov[loc[:i]]
    under = [v for p, v in prov.items() if p[: len(loc)] == loc]
    return max(under, default=None)


def _unknown_key(loc: Key) -> str:
    key = str(loc[-1])
    section = _section_at(loc[:-1])
    known = list(section.model_fields) if section else []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'" + (f"; known keys: {', '.join(known)}" if known else "")


def _section_at(loc: Key) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        section = section_type(info.annotation) if info is not None else None
        if section is None:
            return None
        model = section
    return model


def _field_info(loc: Key) -> FieldInfo | None:
    section = _section_at(loc[:-1]) if loc else None
    return section.model_fields.get(loc[-1]) if section else None


def _dotted(loc: Key) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


__all__ = ["ConfigError", "Fault", "load_experiment", "resolved_dict", "save_resolved"]
