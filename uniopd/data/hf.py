"""`hf:<folder or hub id>[:<split>]`: rows read by Hugging Face `datasets`, offline.

    hf:/data/deepmath-103k            a local folder of parquet / arrow / JSONL files (the
                                      layout of a downloaded hub repository), or a
                                      `save_to_disk` folder
    hf:/data/apps:test                the same, split `test`
    hf:zwhe99/DeepMath-103K           a hub id already in the local cache: `datasets`' own cache
                                      ($HF_DATASETS_CACHE, filled by an earlier `load_dataset`) or
                                      the hub's (`huggingface-cli download --repo-type dataset`)

The split defaults to `train`, or to the only split there is. In an experiment file the mapping
form adds `split`, `subset` (a hub dataset's configuration name), a constant `domain` and the
column mapping (uniopd.data.rows; docs/data.md). Nothing is downloaded under HF_HUB_OFFLINE=1: an
id that is not cached is a DataError saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

from uniopd.data.errors import DataError
from uniopd.data.rows import Table, problems_from_table
from uniopd.data.sources import SOURCES
from uniopd.tasks.problem import Problem

SPEC_FORM = "hf:<folder or hub id>[:<split>]"


@SOURCES.register("hf")
def load_hf(rest: str) -> list[Problem]:
    """Rows of a local dataset folder or a cached hub dataset, read by Hugging Face `datasets`."""
    return problems_from_table(read_hf_table(rest), name=f"hf:{rest}")


def read_hf_table(
    rest: str, *, split: str | None = None, subset: str | None = None, limit: int | None = None
) -> Table:
    spec = f"hf:{rest}"
    target, colon, in_spec = rest.rpartition(":")
    if not colon or "/" in in_spec:  # no split in the spec (a colon inside a path is kept)
        target, in_spec = rest, ""
    if in_spec and split is not None and in_spec != split:
        raise DataError(f"{spec}: the spec names split {in_spec!r} and `split` {split!r}; keep one")
    split = split or in_spec or None
    if not target.strip():
        raise DataError(f"{spec}: expected {SPEC_FORM}, e.g. hf:/data/deepmath-103k:train")
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"{spec}: reading it needs the `datasets` package ({err})") from err

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per arrow shard would drown `uniopd validate`
    try:
        loaded = _load(datasets, target, subset, spec)
    finally:
        if bars:
            datasets.enable_progress_bars()
    dataset, split = _pick_split(loaded, split, spec)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    stem = Path(target.rstrip("/")).name + (f"-{split}" if split else "")
    rows = list(enumerate(dataset.to_list(), start=1))
    folder = Path(target).expanduser()  # relative image paths start here; a hub id has none
    return Table(stem, list(dataset.column_names), rows, base=folder if folder.is_dir() else None)


def _load(datasets, target: str, subset: str | None, spec: str):
    folder = Path(target).expanduser()
    if folder.is_dir():
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            if subset is not None:
                raise DataError(f"{spec}: a save_to_disk folder has no subsets (got {subset!r})")
            return datasets.load_from_disk(str(folder))
        return _guarded(lambda: datasets.load_dataset(str(folder), name=subset), spec)
    if target.startswith(("/", ".", "~")) or target.count("/") > 1 or folder.exists():
        raise DataError(
            f"{spec}: no folder at {folder.resolve()} (hf: reads a dataset folder or a hub id)"
        )
    try:
        return datasets.load_dataset(target, name=subset)
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as err:
        snapshot = _hub_snapshot(target)
        if snapshot is None:
            raise DataError(_not_cached(spec, target, err)) from err
    except Exception as err:  # e.g. a subset to choose
        raise DataError(
            f"{spec}: `datasets` could not read it: {type(err).__name__}: {err}"
        ) from err
    return _guarded(lambda: datasets.load_dataset(snapshot, name=subset), spec)


def _guarded(load, spec: str):
    try:
        return load()
    except DataError:
        raise
    except Exception as err:  # datasets raises many types for a folder it cannot read
        raise DataError(
            f"{spec}: `datasets` could not read it: {type(err).__name__}: {err}"
        ) from err


def _hub_snapshot(repo_id: str) -> str | None:
    """The folder of a hub dataset downloaded whole into the hub cache, if it is there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def _not_cached(spec: str, repo_id: str, err: Exception) -> str:
    import datasets
    from huggingface_hub import constants

    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
    why = (
        f"HF_HUB_OFFLINE={offline} forbids downloading it"
        if offline and offline.upper() not in ("0", "FALSE", "NO", "OFF")
        else f"it could not be downloaded either ({type(err).__name__}: {err})"
    )
    return (
        f"{spec}: the hub dataset {repo_id!r} is not in the local cache (looked in "
        f"{datasets.config.HF_DATASETS_CACHE} and {constants.HF_HUB_CACHE}), and {why}; "
        f"download it once where the network is reachable (`huggingface-cli download "
        f"--repo-type dataset {repo_id}`, or `datasets.load_dataset({repo_id!r})`), or point "
        "hf: at a local folder"
    )


def _pick_split(loaded, split: str | None, spec: str):
    if not hasattr(loaded, "keys"):  # a single Dataset (a save_to_disk of one split)
        if split is not None and split != str(loaded.split or split):
            raise DataError(
                f"{spec}: the folder holds one dataset (split {loaded.split}), not {split!r}"
            )
        return loaded, split
    names = list(loaded.keys())
    if split is None:
        split = "train" if "train" in names else names[0] if len(names) == 1 else None
        if split is None:
            raise DataError(f"{spec}: several splits ({', '.join(names)}); choose one")
    if split not in names:
        raise DataError(f"{spec}: no split {split!r}; the splits are {', '.join(names)}")
    return loaded[split], split


load_hf.spec_form = SPEC_FORM
load_hf.read_table = read_hf_table
