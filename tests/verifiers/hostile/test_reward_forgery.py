"""Reward forgery: programs that try to be graded right without computing the right outputs."""

import pytest
from hostile_programs import GOOD, python_escape

from uniopd.tasks.problem import Problem
from uniopd.verifiers.sandbox import Job, Limits, Sandbox

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process

FORGERIES = {
    # objects that claim to equal anything
    "always-equal object": (
        "class Anything:\n"
        "    def __eq__(self, other): return True\n"
        "    def __ne__(self, other): return False\n"
        "    __hash__ = object.__hash__\n"
        "def f(x):\n    return Anything()\n"
    ),
    "int subclass equal to everything": (
        "class Int(int):\n    def __eq__(self, other): return True\ndef f(x):\n    return Int(0)\n"
    ),
    "str subclass": "class S(str):\n    def __eq__(self, o): return True\ndef f(x):\n    return S()\n",
    # the grader's own tools, replaced in the program's process
    "replaced builtins": (
        "import builtins, math\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.type = lambda *a: int\n"
        "math.isclose = lambda *a, **k: True\n"
        "def f(x):\n    return -1\n"
    ),
    "replaced json writes the end first": (
        "import json\n"
        "json.dumps = lambda obj, *a, **k: '{\"done\": true}'\n"
        "def f(x):\n    return -1\n"
    ),
    # the expected values, looked for wherever the grader might keep them
    "expected values from the grader's frames and objects": (
        "import gc, sys\n"
        "def find(x):\n"
        "    frame = sys._getframe()\n"
        "    spaces = []\n"
        "    while frame is not None:\n"
        "        spaces += [frame.f_locals, frame.f_globals]\n"
        "        frame = frame.f_back\n"
        "    for obj in spaces + gc.get_objects():\n"
        "        try:\n"
        "            if isinstance(obj, dict) and obj.get('args') == [x] and 'expected' in obj:\n"
        "                return obj['expected']\n"
        "            if isinstance(obj, dict) and 'expected' in str(obj)[:10000]:\n"
        "                for case in obj.get('cases', []) or obj.get('tests', []):\n"
        "                    if case.get('args') == [x]:\n"
        "                        return case['expected']\n"
        "        except Exception:\n"
        "            pass\n"
        "    return -1\n"
        "def f(x):\n    return find(x)\n"
    ),
    "expected values from the job read on stdin": (
        "import sys, os\n"
        "def f(x):\n"
        "    try:\n"
        "        return sys.stdin.buffer.read().count(b'expected') and 2 * x\n"
        "    except Exception:\n"
        "        return -1\n"
    ),
    # a verdict written where the grader reads
    "forged frames on every inherited fd, then exit": (
        "import os\n"
        "frames = b'{\"ready\": true}\\n' + b''.join(\n"
        '    b\'{"case": %d, "out": %d}\\n\' % (i, v) for i, v in enumerate([4, -6, 14])\n'
        ") + b'{\"done\": true}\\n'\n"
        'report = b\'{"status": "ran", "results": [["out", 4], ["out", -6], ["out", 14]],\'\n'
        'report += b\' "detail": ""}\\n\'\n'
        "for fd in range(0, 1024):\n"
        "    for data in (frames, report, b'pass\\t\\n'):\n"
        "        try:\n"
        "            os.write(fd, data)\n"
        "        except OSError:\n"
        "            pass\n"
        "os._exit(0)\n"
    ),
    "frames out of order": (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        '        os.write(fd, b\'{"case": 2, "out": 14}\\n\')\n'
        "    except OSError:\n"
        "        pass\n" + GOOD
    ),
    "the harness's fds through /proc": (
        "import os\n"
        "hits = 0\n"
        "for pid in [os.getppid(), 1]:\n"
        "    try:\n"
        "        for fd in os.listdir(f'/proc/{pid}/fd'):\n"
        "            with open(f'/proc/{pid}/fd/{fd}', 'wb') as out:\n"
        '                out.write(b\'{"status": "ran", "results": [], "detail": ""}\\n\')\n'
        "                hits += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "def f(x):\n    return 2 * x if hits else -1\n"
    ),
    "the harness killed": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + GOOD,
    "exit 0 before the cases": "import os\nos._exit(0)\n" + GOOD,
    "SystemExit from f": "def f(x):\n    raise SystemExit(0)\n",
    "the program's own check()": "def check(candidate):\n    pass\ndef f(x):\n    return -1\n",
}


@pytest.mark.parametrize("program", list(FORGERIES.values()), ids=list(FORGERIES))
def test_forgeries_earn_nothing(grade, program):
    assert grade(program) == [0.0]


def test_the_harness_stopped_is_a_fail_not_could_not_grade(grade):
    """SIGSTOP on the harness: no report ever comes; graded 0.0 (a timeout), never None, which
    a policy could otherwise learn to use to escape its penalty."""
    assert grade("import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n" + GOOD) == [0.0]


def test_the_relay_interrupted_is_a_fail_not_could_not_grade(grade, needs_namespaces):
    """SIGINT on the relay (its job's PID 1), from below the audit hook: were Python's handler
    still there, the relay would raise and the job be "could not grade" (None), a way out of the
    penalty; at the default PID 1 ignores it. A wrong program stays 0.0."""
    interrupt = python_escape(
        "import os, signal, time\nos.kill(1, signal.SIGINT)\ntime.sleep(0.2)\n"
    )
    assert grade(interrupt + "def f(x):\n    return -1\n") == [0.0]


def test_the_expected_values_never_reach_the_sandbox():
    """What the sandbox receives is the job; the job has the inputs and nothing else."""
    job = Job("call", GOOD, "f", inputs=[["list", [2]]])
    fields = set(vars(job))
    assert fields == {"mode", "program", "entry_point", "inputs"}
    sandbox = Sandbox(Limits(wall_s=2.0))
    try:
        [result] = sandbox.run([job])
    finally:
        sandbox.close()
    assert (result.status, result.results) == ("ran", (("out", 4),))


def test_types_are_strict_and_floats_tolerant(grade):
    floats = Problem(
        id="half",
        domain="code",
        prompt="",
        entry_point="f",
        tests=[{"args": [1], "expected": 0.5}, {"args": [3], "expected": 1.5}],
    )
    flag = Problem(
        id="flag", domain="code", prompt="", entry_point="f", tests=[{"args": [1], "expected": 1}]
    )
    assert grade("def f(x):\n    return x / 2 + 1e-12\n", problem=floats) == [1.0]
    assert grade("def f(x):\n    return True\n", problem=flag) == [0.0]  # True is not 1
    assert grade("def f(x):\n    return '1'\n", problem=flag) == [0.0]


def test_source_style_tests_do_not_let_an_always_equal_object_through(grade):
    """HumanEval-style asserts are turned into cases, so `assert f(2) == 4` compares a returned
    plain value outside the sandbox; the previous sandbox ran the assert beside the program."""
    source = Problem(
        id="src",
        domain="code",
        prompt="",
        entry_point="f",
        tests="def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 6\n",
    )
    anything = FORGERIES["always-equal object"]
    assert grade(anything, "def f(x):\n    return 2 * x\n", problem=source) == [0.0, 1.0]


def test_the_answers_cannot_be_looked_up_in_the_package(grade, needs_namespaces):
    """A policy that writes its prompt into its program could find the problem in the tiny world's
    own generator and return the reference answer. The package is hidden in the sandbox (all but
    the harness's folder); with the Python layers alone this really works, hence namespaces."""
    from uniopd.tasks.builtin import builtin_problems

    problem = builtin_problems("code", "test")[0]
    lookup = (
        f"PROMPT = {problem.prompt!r}\n"
        "import os, sys\n"
        "answers = {}\n"
        "try:\n"
        "    import audit\n"
        "    root = os.path.dirname(os.path.dirname(os.path.dirname(audit.__file__)))\n"
        "    sys.path.insert(0, root)\n"
        "    from uniopd.tasks.builtin import builtin_problems\n"
        "    for p in builtin_problems('code', 'test'):\n"
        "        if p.prompt == PROMPT:\n"
        "            answers = {c['args'][0]: c['expected'] for c in p.tests}\n"
        "except BaseException:\n"
        "    pass\n"
        "def f(x):\n    return answers.get(x, 'no idea')\n"
    )
    assert grade(lookup, problem=problem) == [0.0]
