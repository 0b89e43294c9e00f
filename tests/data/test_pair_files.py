"""Preference pairs from files (uniopd.data.pair_files): the usual shape loads unchanged from
JSONL and from a `datasets` folder; a bad row is refused naming the file, the row and the column."""

import json

import pytest

from uniopd.data.errors import DataError
from uniopd.data.pair_files import load_pair_file


def _jsonl(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {"prompt": "2+2?", "chosen": "\\boxed{4}", "rejected": "\\boxed{5}", "scores": [9, 2]}


def test_a_jsonl_pair_file_loads_with_its_scores(tmp_path):
    rows = [GOOD, {"prompt": "1+1?", "chosen": "2", "rejected": "3"}]
    pairs = load_pair_file(_jsonl(tmp_path, rows))
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ("2+2?", "\\boxed{4}", "\\boxed{5}"),
        ("1+1?", "2", "3"),
    ]
    assert (pairs[0].score_chosen, pairs[0].score_rejected) == (9.0, 2.0)
    assert pairs[1].score_chosen is None


def test_the_release_score_columns_and_conversational_rows_load(tmp_path):
    row = {
        "prompt": [{"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
        "score_chosen": 8.5,
        "score_rejected": 3,
    }
    (pair,) = load_pair_file(_jsonl(tmp_path, [row]))
    assert (pair.prompt, pair.chosen, pair.rejected) == ("2+2?", "4", "5")
    assert (pair.score_chosen, pair.score_rejected) == (8.5, 3.0)


def test_a_datasets_folder_loads_unchanged(tmp_path):
    from datasets import Dataset

    Dataset.from_list([GOOD, GOOD | {"chosen": "4"}]).save_to_disk(str(tmp_path / "ds"))
    pairs = load_pair_file(tmp_path / "ds")
    assert len(pairs) == 2 and pairs[1].chosen == "4"


@pytest.mark.parametrize(
    "row, says",
    [
        ({"prompt": "q", "chosen": "a"}, "row 2: missing column rejected"),
        (GOOD | {"chosen": "  "}, "row 2: column chosen is empty"),
        (GOOD | {"rejected": "\\boxed{4}"}, "row 2: chosen and rejected are the same response"),
        (GOOD | {"scores": [1]}, "row 2: column scores must be [score_chosen, score_rejected]"),
        (GOOD | {"scores": [1, "x"]}, "row 2: column scores: score_rejected must be a finite"),
        (GOOD | {"chosen": 3}, "row 2: column chosen must be text"),
    ],
)
def test_a_bad_row_is_refused_naming_the_file_row_and_column(tmp_path, row, says):
    path = _jsonl(tmp_path, [GOOD, row])
    with pytest.raises(DataError) as err:
        load_pair_file(path)
    assert str(err.value).startswith(f"{path}: {says}")


def test_an_empty_or_missing_file_is_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no pairs"):
        load_pair_file(empty)
    with pytest.raises(DataError, match="file not found"):
        load_pair_file(tmp_path / "nope.jsonl")
