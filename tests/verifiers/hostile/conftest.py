"""The hostile-program suite: programs written as an adversarial policy would write them.

Each program would earn the reward if its attack worked: its `f` returns the right answer only when
the attack got what it was after (the expected values, the secret, the network, a file outside its
job, a signal to the grader), or it reaches for a verdict it did not earn. Each must be graded 0.0;
the honest program next to it in the batch must still get 1.0; and the host is checked untouched
afterwards (no file, no process, no connection, the victim process alive).

Tests marked `needs_namespaces` attack the layers below Python (they go around the audit hook with
`_posixsubprocess.fork_exec`); where this machine cannot give the sandbox its own namespaces they
are skipped by name, because without them such an escape really does reach the host.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hostile_programs import DOUBLE, GOOD, WALL_S

from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier, isolation
from uniopd.verifiers.sandbox import Limits


@pytest.fixture(scope="module", params=["auto", "off"], ids=["namespaces", "python-layers"])
def verifier(request):
    """The code verifier with this machine's isolation, and with the Python layers only: the
    fallback must hold against everything that does not go below Python."""
    v = get_verifier("code", limits=Limits(wall_s=WALL_S), isolation=request.param)
    yield v
    v.close()


@pytest.fixture
def how(verifier):
    return isolation.choose(verifier.sandbox.isolation_mode)


@pytest.fixture
def needs_namespaces(how):
    if how.kind != "bwrap":
        pytest.skip(f"no namespaces here ({how.reason}): this escape would reach the host")


@pytest.fixture
def grade(verifier):
    """grade(*programs) -> their scores; each runs beside GOOD, which must still score 1.0."""

    def run(*programs: str, problem: Problem = DOUBLE) -> list:
        scores = verifier.grade([problem] * len(programs) + [DOUBLE], [*programs, GOOD])
        assert scores[-1] == 1.0, "the honest neighbour was affected"
        return scores[:-1]

    return run


@pytest.fixture
def outside(tmp_path_factory):
    """A directory of the host's that is not a temp dir: under the user's home, removed after."""
    path = os.path.join(os.path.expanduser("~"), f".uniopd-hostile-{uuid.uuid4().hex[:8]}")
    os.makedirs(path)
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)
