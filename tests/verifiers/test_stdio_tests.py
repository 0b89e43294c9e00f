"""stdin/stdout code tests (LiveCodeBench / APPS): the real sandbox runs each program as a script."""

import json
import time

import pytest

from uniopd.data import DataError, load_source
from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier
from uniopd.verifiers.code import same_stdout
from uniopd.verifiers.sandbox import Limits

SUM = Problem(
    id="sum",
    domain="code",
    prompt="Read two integers per line and print their sum.",
    tests={"inputs": ["1 2\n", "10 -3\n5 5\n"], "outputs": ["3\n", "7\n10\n"]},
)


@pytest.fixture(scope="module")
def verifier():
    v = get_verifier("code", limits=Limits(wall_s=2.0))
    yield v
    v.close()


def fenced(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


def test_right_programs_pass_in_the_usual_styles(verifier):
    programs = [
        "import sys\nfor line in sys.stdin:\n    a, b = map(int, line.split())\n    print(a + b)\n",
        # a main guard, trailing spaces, exit() at the end, open(0) and sys.stdin.buffer
        "def main():\n    for line in open(0):\n        print(sum(map(int, line.split())), '  ')\n"
        "if __name__ == '__main__':\n    main()\n    exit()\n",
        "import sys\ndata = sys.stdin.buffer.read().split()\n"
        "sys.stdout.write('\\n'.join(str(int(a) + int(b)) for a, b in zip(data[::2], data[1::2])))\n",
    ]
    assert verifier.grade([SUM] * 3, [fenced(p) for p in programs]) == [1.0, 1.0, 1.0]


@pytest.mark.slow  # waits out hanging programs
def test_wrong_crashing_hanging_overreading_and_flooding_programs_fail(verifier):
    programs = {
        "wrong": "import sys\nfor line in sys.stdin:\n    a, b = map(int, line.split())\n    print(a - b)\n",
        "extra line": "import sys\nfor line in sys.stdin:\n    print(sum(map(int, line.split())))\nprint()\nprint(0)\n",
        "crash": "raise RuntimeError('boom')\n",
        "exit 1": "import sys\nprint(3)\nsys.exit(1)\n",
        "hang": "while True:\n    pass\n",
        "over-read": "a, b = map(int, input().split())\nc = input()\nprint(a + b)\n",
        "flood": "while True:\n    print('x' * 1000)\n",
        "flood, caught": "try:\n    while True:\n        print('x' * 1000)\nexcept BaseException:\n    pass\nprint(3)\n",
    }
    start = time.monotonic()
    scores = verifier.grade([SUM] * len(programs), [fenced(p) for p in programs.values()])
    assert dict(zip(programs, scores)) == dict.fromkeys(programs, 0.0)
    assert time.monotonic() - start < 20  # the hang is cut at the sandbox's wall limit


def test_output_is_compared_as_livecodebench_does():
    assert same_stdout("3\n7  \n", "3\n7")  # trailing whitespace and newlines
    assert same_stdout("  3\n", "3\n")  # LiveCodeBench strips each line on both sides
    assert same_stdout("3.0 1e2\n", "3 100\n")  # numbers compare as Decimals
    assert not same_stdout("3.0000001\n", "3\n")  # exactly, without a tolerance
    assert not same_stdout("3\n\n7\n", "3\n7\n")  # an inner blank line is a line
    assert not same_stdout("3 7\n", "3\n7\n")
    assert not same_stdout("yes\n", "YES\n")


def test_apps_style_json_tests_and_call_based_cases(tmp_path, verifier):
    rows = [
        {
            "question": "Add the two numbers on the line.",
            "input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}),
        },
        {
            "question": "Write add(a, b).",
            "input_output": json.dumps({"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}),
        },
    ]
    path = tmp_path / "apps.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stdio, call = load_source(
        str(path), domain="code", columns={"prompt": "question", "tests": "input_output"}
    )
    assert stdio.tests == {"inputs": ["1 2\n"], "outputs": ["3\n"]}
    assert call.entry_point == "add" and call.tests == [{"args": [1, 2], "expected": 3}]
    script = fenced("a, b = map(int, input().split())\nprint(a + b)\n")
    function = fenced("def add(a, b):\n    return a + b\n")
    assert verifier.grade([stdio, call], [script, function]) == [1.0, 1.0]


@pytest.mark.parametrize(
    "tests, says",
    [
        ({"inputs": ["1 2\n", "3 4\n"]}, "2 inputs but no 'outputs'"),
        ({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n"]}, "2 inputs but 1 expected outputs"),
        ('{"inputs": ["1 2\\n"], "outputs": [null]}', "1 inputs but 0 expected outputs"),
    ],
)
def test_a_case_without_its_expected_output_is_a_data_error(tmp_path, tests, says):
    path = tmp_path / "stdio.jsonl"
    rows = [{"prompt": "p", "domain": "code", "tests": {"inputs": ["1\n"], "outputs": ["1\n"]}}]
    rows.append({"prompt": "q", "domain": "code", "tests": tests})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as info:
        load_source(str(path))
    assert str(info.value).startswith(f"{path}: row 2: field 'tests': {says}")
