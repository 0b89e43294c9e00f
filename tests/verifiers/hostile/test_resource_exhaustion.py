"""Resource exhaustion: time, memory, disk, files, output and threads are bounded per job, and the
next job (and the host) does not notice."""

import shutil
import time

import pytest
from hostile_programs import GOOD, WALL_S

from uniopd.verifiers.sandbox import Job, Limits, Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.exhausts_host]  # sandboxed floods


def test_infinite_loops_time_out(grade):
    start = time.monotonic()
    plain = "def f(x):\n    while True:\n        pass\n"
    # Swallows every exception too, so only the kill can stop it.
    stubborn = (
        "def f(x):\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    assert grade(plain, stubborn) == [0.0, 0.0]
    assert time.monotonic() - start < WALL_S + 10


def test_memory_bombs_fail(grade):
    huge = "x = [0] * 10**12\n" + GOOD
    growing = "def f(x):\n    hoard = []\n    while True:\n        hoard.append(' ' * 10**7)\n"
    assert grade(huge, growing) == [0.0, 0.0]
    sandbox = Sandbox(Limits(wall_s=5.0, memory_bytes=256 << 20))
    try:
        [result] = sandbox.run([Job("call", growing, "f", [["list", [1]]])])
    finally:
        sandbox.close()
    assert (result.status, result.results[0][0]) == ("ran", "raised")
    assert result.results[0][1].startswith("MemoryError")


def test_filling_the_disk_stops_at_the_job(grade):
    free_before = shutil.disk_usage("/").free
    fill = (
        "import os\n"
        "written = 0\n"
        "for name in ['a', 'b', 'c', '/dev/shm/d']:\n"
        "    try:\n"
        "        with open(name, 'wb') as out:\n"
        "            for _ in range(1024):\n"
        "                out.write(b'x' * (1 << 20))\n"
        "                written += 1 << 20\n"
        "    except BaseException:\n"
        "        pass\n"
        "def f(x):\n    return 2 * x if written >= 1 << 30 else -1\n"
    )
    assert grade(fill) == [0.0]
    assert shutil.disk_usage("/").free > free_before - (256 << 20)


def test_open_files_threads_and_floods(grade):
    files = (
        "import os\nfds = []\n"
        "try:\n    while True:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError:\n    pass\n"
        "def f(x):\n    return 2 * x if len(fds) > 10000 else -1\n"
    )
    threads = (
        "import threading, time\nn = 0\n"
        "try:\n"
        "    for _ in range(100000):\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "        n += 1\n"
        "except BaseException:\n    pass\n"
        "def f(x):\n    return 2 * x if n >= 100000 else -1\n"
    )
    flood = (
        "import os\nfor fd in range(3, 16):\n    try:\n        os.write(fd, b'x' * (64 << 20))\n    except OSError:\n        pass\n"
        + GOOD
    )
    assert grade(files, threads, flood) == [0.0, 0.0, 0.0]


def test_megabytes_of_prints_are_fine(grade):
    noisy = (
        "import os, sys\nprint('x' * 5_000_000)\nsys.stderr.write('e' * 5_000_000)\n"
        "os.write(1, b'y' * 1_000_000)\n" + GOOD
    )
    assert grade(noisy) == [1.0]
