"""Own-row sources: each format round-trips, and every bad row is named precisely."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uniopd.data import DataError, load_source
from uniopd.tasks.problem import Problem

ROWS = [
    {
        "id": "add-1",
        "domain": "math",
        "prompt": "What is 2+3?",
        "answer": "5",
        "solution": "2+3=5. The answer is \\boxed{5}.",
        "level": 1,
    },
    {
        "domain": "code",
        "prompt": "Write inc(x).",
        "entry_point": "inc",
        "level": 2,
        "tests": [{"args": [1], "expected": 2}, {"args": [-1], "expected": 0}],
    },
    {
        "domain": "code",
        "prompt": "Write dec(x).",
        "level": 3,
        "tests": "def check(candidate):\n    assert candidate(1) == 0\n",
        "entry_point": "dec",
    },
]


def expected(stem):
    return [
        Problem(
            id="add-1",
            domain="math",
            prompt="What is 2+3?",
            answer="5",
            solution="2+3=5. The answer is \\boxed{5}.",
            meta={"level": 1},
        ),
        Problem(
            id=f"{stem}-1",
            domain="code",
            prompt="Write inc(x).",
            entry_point="inc",
            tests=[{"args": [1], "expected": 2}, {"args": [-1], "expected": 0}],
            meta={"level": 2},
        ),
        Problem(
            id=f"{stem}-2",
            domain="code",
            prompt="Write dec(x).",
            entry_point="dec",
            tests="def check(candidate):\n    assert candidate(1) == 0\n",
            meta={"level": 3},
        ),
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_jsonl_round_trip(tmp_path):
    write_jsonl(tmp_path / "mix.jsonl", ROWS)
    assert load_source(str(tmp_path / "mix.jsonl")) == expected("mix")


def test_json_round_trip(tmp_path):
    (tmp_path / "mix.json").write_text(json.dumps(ROWS, indent=2))
    assert load_source(str(tmp_path / "mix.json")) == expected("mix")


def test_parquet_round_trip(tmp_path):
    # Only the code rows: their tests column must be one type, and parquet stores it as a
    # list of structs, which must come back as plain dicts.
    code_rows = [{**ROWS[1], "id": "inc-0", "prompt": "Write inc(y)."}, ROWS[1]]
    pq.write_table(pa.Table.from_pylist(code_rows), tmp_path / "code.parquet")
    problems = load_source(str(tmp_path / "code.parquet"))
    assert [p.id for p in problems] == ["inc-0", "code-1"]
    assert problems[1] == expected("code")[1]
    assert problems[0].meta == {"level": 2}  # the column other rows lack (id) is null, not meta


def test_parquet_math_rows_with_nulls(tmp_path):
    rows = [
        {"domain": "math", "prompt": "1+1?", "answer": "2", "solution": None},
        {"domain": "math", "prompt": "2+2?", "answer": "4", "solution": "\\boxed{4}"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    problems = load_source(str(tmp_path / "m.parquet"))
    assert [(p.id, p.solution, p.meta) for p in problems] == [
        ("m-0", None, {}),
        ("m-1", "\\boxed{4}", {}),
    ]


def test_problem_to_dict_rows_round_trip(tmp_path):
    problems = expected("mix")
    write_jsonl(tmp_path / "dump.jsonl", [p.to_dict() for p in problems])
    assert load_source(str(tmp_path / "dump.jsonl")) == problems


def test_relative_path_resolves_against_base_dir_and_limit(tmp_path):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "mix.jsonl", ROWS)
    problems = load_source("data/mix.jsonl", base_dir=tmp_path, limit=2)
    assert problems == expected("mix")[:2]


def test_numeric_answer_and_id_are_kept_as_text(tmp_path):
    write_jsonl(tmp_path / "n.jsonl", [{"id": 7, "domain": "math", "prompt": "3+4?", "answer": 7}])
    [problem] = load_source(str(tmp_path / "n.jsonl"))
    assert (problem.id, problem.answer) == ("7", "7")


def bad(tmp_path, rows, name="x.jsonl"):
    write_jsonl(tmp_path / name, rows)
    with pytest.raises(DataError) as info:
        load_source(f"{tmp_path}/{name}")
    return str(info.value)


GOOD = {"domain": "math", "prompt": "1+1?", "answer": "2"}


@pytest.mark.parametrize("field", ["domain", "prompt"])
def test_missing_required_field_names_row_and_field(tmp_path, field):
    row = {k: v for k, v in GOOD.items() if k != field}
    message = bad(tmp_path, [GOOD, GOOD | {"id": "b"}, row])
    assert message.startswith(f"{tmp_path}/x.jsonl: row 3: missing field {field!r}; the row's ")
    assert ", ".join(sorted(row)) in message  # the columns it has, to map one onto the field


def test_row_without_answer_or_tests_is_an_error(tmp_path):
    message = bad(tmp_path, [{"domain": "math", "prompt": "1+1?"}])
    assert "row 1" in message and "'answer' or 'tests'" in message


def test_test_cases_need_an_entry_point(tmp_path):
    message = bad(
        tmp_path, [{"domain": "code", "prompt": "p", "tests": [{"args": [1], "expected": 2}]}]
    )
    assert "row 1: missing field 'entry_point'" in message


def test_malformed_test_case_is_named(tmp_path):
    row = {
        "domain": "code",
        "prompt": "p",
        "entry_point": "f",
        "tests": [{"args": [1], "expected": 2}, {"input": 1}],
    }
    message = bad(tmp_path, [row])
    assert "row 1: field 'tests': case 1" in message


def test_wrong_type_is_named(tmp_path):
    message = bad(tmp_path, [GOOD | {"prompt": ["not", "text"]}])
    assert "row 1: field 'prompt' must be a non-empty string" in message


def test_duplicate_ids_name_both_rows(tmp_path):
    message = bad(tmp_path, [GOOD | {"id": "a"}, GOOD | {"id": "b"}, GOOD | {"id": "a"}])
    assert "row 3: duplicate id 'a' (first used in row 1)" in message


def test_invalid_jsonl_names_the_line(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps(GOOD) + '\n\n{"domain": "math",\n')
    with pytest.raises(DataError, match=r"x\.jsonl: line 3: invalid JSON"):
        load_source(str(tmp_path / "x.jsonl"))


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "x.json").write_text('[\n  {"domain": "math"},\n  {oops}\n]')
    with pytest.raises(DataError, match=r"x\.json: line 3: invalid JSON"):
        load_source(str(tmp_path / "x.json"))


def test_json_must_be_a_list(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"rows": [GOOD]}))
    with pytest.raises(DataError, match="expected a JSON list of rows, got a dict"):
        load_source(str(tmp_path / "x.json"))


def test_row_must_be_an_object(tmp_path):
    assert "row 2: expected an object" in bad(tmp_path, [GOOD, ["a", "list"]])


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError) as info:
        load_source("nowhere/x.parquet", base_dir=tmp_path)
    assert str(info.value).startswith("nowhere/x.parquet: file not found")
    assert str(tmp_path / "nowhere" / "x.parquet") in str(info.value)


def test_damaged_parquet_is_a_data_error(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_source(str(tmp_path / "x.parquet"))


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "x.jsonl").write_text("\n")
    with pytest.raises(DataError, match="holds no problems"):
        load_source(str(tmp_path / "x.jsonl"))
