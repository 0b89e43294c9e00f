"""Environment: nothing of the caller's environment is readable anywhere in the sandbox."""

import pytest
from hostile_programs import python_escape

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process

SECRET = "hunter2-uniopd-test-secret"


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("UNIOPD_TEST_SECRET", SECRET)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return SECRET


SEARCH = (
    "def found():\n"
    "    import os\n"
    "    if SECRET in repr(dict(os.environ)):\n"
    "        return True\n"
    "    for pid in ['self', '1', str(os.getppid())] + os.listdir('/proc'):\n"
    "        try:\n"
    "            with open(f'/proc/{pid}/environ', 'rb') as env:\n"
    "                if SECRET.encode() in env.read():\n"
    "                    return True\n"
    "        except Exception:\n"
    "            pass\n"
    "    return False\n"
)


def test_the_environment_is_empty_and_proc_hides_the_callers(grade, secret):
    program = f"SECRET = {secret!r}\n" + SEARCH + "def f(x):\n    return 2 * x if found() else -1\n"
    assert grade(program) == [0.0]


def test_proc_read_below_python_finds_nothing(grade, secret, needs_namespaces):
    search = f"SECRET = {secret!r}\n" + SEARCH + "import sys\nsys.exit(0 if found() else 1)\n"
    program = python_escape(search) + "def f(x):\n    return 2 * x if escaped == 0 else -1\n"
    assert grade(program) == [0.0]
