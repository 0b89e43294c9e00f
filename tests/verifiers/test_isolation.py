"""Isolation below Python: chosen once, said loudly when missing, never a silent downgrade."""

import logging
import os
import pathlib
import stat

import pytest

from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier, isolation
from uniopd.verifiers.sandbox import Limits

DOUBLE = Problem(
    id="d", domain="code", prompt="", entry_point="f", tests=[{"args": [2], "expected": 4}]
)
GOOD, BAD = "def f(x):\n    return 2 * x\n", "def f(x):\n    return x\n"


@pytest.fixture
def fresh_choice():
    """Each test probes anew, and leaves the real choice to be probed anew after it."""
    isolation.choose.cache_clear()
    yield
    isolation.choose.cache_clear()


@pytest.fixture
def no_bwrap(monkeypatch, tmp_path, fresh_choice):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no bwrap on the PATH
    return tmp_path


def grade(*programs, **kwargs):
    verifier = get_verifier("code", **kwargs)
    try:
        return verifier.grade([DOUBLE] * len(programs), list(programs)), verifier.counts
    finally:
        verifier.close()


def test_missing_bwrap_warns_once_and_falls_back(no_bwrap, caplog):
    with caplog.at_level(logging.WARNING, logger="uniopd.verifiers.isolation"):
        assert grade(GOOD, BAD)[0] == [1.0, 0.0]
        assert grade(GOOD)[0] == [1.0]
    [warning] = [r for r in caplog.records if "NO ISOLATION BELOW PYTHON" in r.message]
    assert "bubblewrap (bwrap) is not installed" in warning.message
    assert "Python layers" in warning.message


def test_a_kernel_that_refuses_namespaces_is_named(no_bwrap, caplog):
    fake = no_bwrap / "bwrap"  # stands in for the kernel's answer, which no test can change
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with caplog.at_level(logging.WARNING, logger="uniopd.verifiers.isolation"):
        how = isolation.choose()
    assert how.kind == "python"
    assert "No permissions to creating new namespace" in how.reason
    assert "No permissions to creating new namespace" in caplog.text


def test_required_bwrap_that_is_missing_grades_nothing(no_bwrap, monkeypatch, caplog):
    monkeypatch.setenv(isolation.ENV_VAR, "bwrap")
    with caplog.at_level(logging.ERROR, logger="uniopd.verifiers.isolation"):
        scores, counts = grade(GOOD, BAD)
    assert scores == [None, None]  # "could not grade", never a reward or a penalty
    assert counts["could_not_grade"] == 2
    assert "no program can be graded" in caplog.text


def test_off_is_said_too(fresh_choice, monkeypatch, caplog):
    monkeypatch.setenv(isolation.ENV_VAR, "off")
    with caplog.at_level(logging.WARNING, logger="uniopd.verifiers.isolation"):
        assert grade(GOOD, BAD)[0] == [1.0, 0.0]
    assert "isolation below Python is off" in caplog.text


def test_an_unknown_mode_names_the_variable(fresh_choice, monkeypatch):
    monkeypatch.setenv(isolation.ENV_VAR, "docker")
    with pytest.raises(ValueError, match="UNIOPD_SANDBOX_ISOLATION='docker'"):
        isolation.choose()


def test_a_job_that_cannot_start_is_could_not_grade():
    """bwrap refuses the job's own settings (a zero-size /tmp): None, counted, the batch goes on,
    and a later job with good settings is graded as usual."""
    if isolation.choose().kind != "bwrap":
        pytest.skip("no bubblewrap here: its refusal cannot be provoked")
    scores, counts = grade(GOOD, BAD, limits=Limits(tmp_bytes=0))
    assert scores == [None, None] and counts["could_not_grade"] == 2
    assert grade(GOOD)[0] == [1.0]


def test_the_server_runs_this_code_not_a_checkout_in_the_cwd(tmp_path, monkeypatch):
    shadow = tmp_path / "uniopd"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the wrong uniopd was imported')\n")
    monkeypatch.chdir(tmp_path)
    assert grade(GOOD)[0] == [1.0]
    assert os.getcwd() == str(tmp_path)


def test_folders_under_the_private_tmp_are_bound_back():
    paths = ["/tmp/a/.venv", "/tmp/a/.venv/lib/site-packages", "/usr/lib", "/tmp/a/uniopd", "/tmpx"]
    assert isolation.shadowed([*paths, "/dev/shm/y"]) == [
        "/tmp/a/.venv",
        "/tmp/a/uniopd",
        "/dev/shm/y",
    ]


def test_a_harness_under_tmp_still_runs_in_the_sandbox(tmp_path, monkeypatch, fresh_choice):
    """A checkout (or venv) under /tmp, as CI clones are: the private /tmp would hide it and every
    job would fall back to the Python layers. The probe runs the real harness from such a place."""
    if not isolation.probe():
        pass  # bubblewrap works here: the copy below must work too
    else:
        pytest.skip(f"no bubblewrap here: {isolation.probe()}")
    import shutil

    for name in ("harness.py", "audit.py", "values.py", "frames.py", "plumbing.py"):
        shutil.copy(pathlib.Path(isolation.HARNESS).with_name(name), tmp_path / name)
    assert str(tmp_path).startswith("/tmp/")
    monkeypatch.setattr(isolation, "HARNESS", str(tmp_path / "harness.py"))
    assert isolation.probe() == ""
