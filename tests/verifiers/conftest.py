"""Shared by every grader test: floods never overlap a test that grades.

Under xdist a fork bomb or a memory flood in one worker's sandbox is felt across the host for
seconds (the pids and memory are shared): the honest program graded beside it in another worker
comes back ungraded, and a test that watches a job from outside (a one-second program looked for
in /proc) misses it, because one walk of /proc through the bomb's thousands of processes takes
seconds.
A test marked `exhausts_host` holds this lock alone; every other test under tests/verifiers
shares it, so a flood waits for the other worker's grader test to end and holds the next one off.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest

_LOCK = Path(tempfile.gettempdir()) / f"uniopd-hostile-{os.getuid()}.lock"


@pytest.fixture(autouse=True)
def _one_flood_at_a_time(request):
    exclusive = request.node.get_closest_marker("exhausts_host") is not None
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
