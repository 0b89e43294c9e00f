"""Where a relative path in an experiment file is read from: one rule for data files (data.train,
data.eval, data.pairs; hf: folders), models (student, teachers) and teacher tokenizers, the same
as for `base:`.

    a relative path is read from the folder of the file that wrote it (a base file's paths from
    the base's folder); if nothing is there, from the working directory.

So a file and the data beside it work from any folder (`cd` does not break them), and files that
name paths from the repository root (`models/Qwen3-4B`, `data/aime24.jsonl`) still read them from
there. A path found beside its file is written out absolute in the resolved config (the run
directory's config.yaml), so a resumed run reads the same file. A path given as an override on the
command line is read from the working directory. A data file found in neither place is warned
about here, naming both places, and refused where the data is read; a model path found in neither
may be a hub id (`org/name`) and is left to the loader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uniopd.data.sources import FILE_SUFFIXES

log = logging.getLogger(__name__)

_NOT_PATHS = ("builtin:", "http://", "https://", "self")

# the key of a value -> the file that set it ("override '...'" for the command line)
SourceOf = Callable[[tuple], "str | None"]


def anchor_paths(data: dict, source_of: SourceOf) -> None:
    """Rewrite, in place, each relative path found beside the file that wrote it to that path."""
    for container, key, where, kind in _path_slots(data):
        value = container[key]
        source = source_of(where)
        if not isinstance(value, str) or not source or source.startswith("override "):
            continue
        folder = Path(source).parent
        anchored = _anchor(value, folder, kind)
        if anchored is not None:
            container[key] = anchored
        elif kind == "data" and _is_file_spec(value) and not Path(value).exists():
            log.warning(
                "%s: %s: data file '%s' is neither beside the file (%s) nor in the working "
                "directory (%s)",
                source,
                _dotted(where),
                value,
                os.path.abspath(folder / value),
                os.path.abspath(value),
            )


def _anchor(value: str, folder: Path, kind: str) -> str | None:
    """The path beside `folder` that `value` names, if there is one there; else None."""
    prefix, rest, suffix = "", value, ""
    if kind == "data" and value.startswith("hf:"):  # hf:<folder>[:<split>]
        prefix, (rest, colon, split) = "hf:", value[3:].partition(":")
        suffix = colon + split
    elif kind == "data" and not _is_file_spec(value):
        return None  # builtin:, humaneval, a plugin's scheme: no path
    if kind == "teacher" and rest.endswith("+privileged"):
        rest, suffix = rest.removesuffix("+privileged"), "+privileged"
    if not rest or rest.startswith(_NOT_PATHS) or Path(rest).expanduser().is_absolute():
        return None
    candidate = folder / rest
    if not candidate.exists():
        return None
    return prefix + os.path.abspath(candidate) + suffix


def _is_file_spec(value: str) -> bool:
    return value.lower().endswith(FILE_SUFFIXES) and ":" not in value.split("/")[0]


def _path_slots(data: dict) -> Iterator[tuple[Any, Any, tuple, str]]:
    """(container, key, dotted key tuple, kind) of every value that may be a path."""
    student = data.get("student")
    if isinstance(student, str):
        yield data, "student", ("student",), "model"
    elif isinstance(student, dict) and isinstance(student.get("model"), str):
        yield student, "model", ("student", "model"), "model"
    for section, kind in (("teachers", "teacher"), ("teacher_tokenizers", "model")):
        mapping = data.get(section)
        if isinstance(mapping, dict):
            for domain in mapping:
                yield mapping, domain, (section, domain), kind
    sources = data.get("data")
    if not isinstance(sources, dict):
        return
    if isinstance(sources.get("pairs"), str):  # a pair file, or a datasets folder
        yield sources, "pairs", ("data", "pairs"), "pairs"
    if isinstance(sources.get("pairs"), str):  # a preference pair file (docs/method.md 9.4)
        yield sources, "pairs", ("data", "pairs"), "data"
    for split in ("train", "eval"):
        entries = sources.get(split)
        if isinstance(entries, str):
            yield sources, split, ("data", split), "data"
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and "source" in entry:
                yield entry, "source", ("data", split, i, "source"), "data"
            else:
                yield entries, i, ("data", split, i), "data"


def _dotted(key: tuple) -> str:
    return ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in key).replace(".[", "[")
