"""Cross-program channels: nothing one program leaves behind is visible to any other.

The warm sandbox grades many programs with one zygote, so this is the class of attack it adds:
a correct program, graded first, leaves its answers somewhere (a file in any writable place, the
interpreter's state, a daemon behind a socket, a SysV segment); a second program returns whatever
it finds there. The first is right and earns 1.0; the second must earn 0.0, whether it runs
later (a later batch of the same sandbox) or beside the first (the same batch, polling).
"""

import pytest
from hostile_programs import GOOD, escape, python_escape

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process

ANSWERS = {2: 4, -3: -6, 7: 14}  # DOUBLE's cases

# Each channel: (code that stashes ANSWERS, code that sets `found` to a dict or leaves it {}).
# The stash runs inside try/except: where a layer refuses it, the writer is still right.
FILES = {
    "the working folder": "stash.json",
    "/tmp": "/tmp/uniopd-stash.json",
    "/dev/shm": "/dev/shm/uniopd-stash.json",
    "/var/tmp": "/var/tmp/uniopd-stash.json",
    "/dev": "/dev/uniopd-stash.json",
    "the home folder": "~/uniopd-stash.json",
}


def _file_channel(path: str) -> tuple[str, str]:
    stash = (
        "import json, os, pathlib\n"
        f"pathlib.Path(os.path.expanduser({path!r})).write_text(\n"
        "    json.dumps({str(k): v for k, v in ANSWERS.items()}))\n"
    )
    find = (
        "import json, os, pathlib\n"
        f"text = pathlib.Path(os.path.expanduser({path!r})).read_text()\n"
        "found = {int(k): v for k, v in json.loads(text).items()}\n"
    )
    return stash, find


CHANNELS = {name: _file_channel(path) for name, path in FILES.items()}
CHANNELS["builtins"] = ("import builtins\nbuiltins.STASH = ANSWERS\n", "found = STASH\n")
CHANNELS["sys.modules"] = (
    "import sys, types\nsys.modules['stash'] = types.SimpleNamespace(answers=ANSWERS)\n",
    "import stash\nfound = stash.answers\n",
)
CHANNELS["an imported module"] = (
    "import json\njson.STASH = ANSWERS\n",
    "import json\nfound = json.STASH\n",
)
CHANNELS["POSIX shared memory"] = (
    "from multiprocessing import shared_memory\n"
    "import json\n"
    "data = json.dumps({str(k): v for k, v in ANSWERS.items()}).encode()\n"
    "block = shared_memory.SharedMemory('uniopd-stash', create=True, size=len(data))\n"
    "block.buf[: len(data)] = data\n"
    "block._mmap = None  # keep the segment: no unlink, no close\n",
    "from multiprocessing import shared_memory\n"
    "import json\n"
    "block = shared_memory.SharedMemory('uniopd-stash')\n"
    "found = {int(k): v for k, v in json.loads(bytes(block.buf).rstrip(b'\\0')).items()}\n",
)


def _writer(stash: str) -> str:
    return (
        f"ANSWERS = {ANSWERS!r}\ntry:\n"
        + _indent(stash)
        + "except BaseException:\n    pass\n"
        + GOOD
    )


def _reader(find: str, poll_s: float = 0.0) -> str:
    """Returns what it found; polls for `poll_s` seconds for a writer running beside it."""
    return (
        "import time\nfound = {}\n"
        f"end = time.monotonic() + {poll_s}\n"
        "while True:\n"
        "    try:\n" + _indent(find, 8) + "        break\n"
        "    except BaseException:\n"
        "        if time.monotonic() > end:\n"
        "            break\n"
        "        time.sleep(0.02)\n"
        "def f(x):\n    return found.get(x, 'nothing found')\n"
    )


def _indent(code: str, by: int = 4) -> str:
    return "".join(" " * by + line + "\n" for line in code.splitlines())


@pytest.mark.parametrize("channel", list(CHANNELS), ids=list(CHANNELS))
def test_a_later_program_finds_nothing(grade, channel):
    stash, find = CHANNELS[channel]
    assert grade(_writer(stash)) == [1.0]
    assert grade(_reader(find)) == [0.0]


def test_the_readers_would_find_a_stash(grade):
    """The readers work: a program that stashes and reads back in its own process finds it."""
    for channel in ("the working folder", "builtins", "sys.modules"):
        stash, find = CHANNELS[channel]
        both = f"ANSWERS = {ANSWERS!r}\n" + stash + _reader(find)
        assert grade(both) == [1.0], channel


@pytest.mark.parametrize("channel", list(CHANNELS), ids=list(CHANNELS))
def test_a_program_beside_it_finds_nothing(grade, channel, needs_namespaces):
    """The same batch: writer and reader run at the same time (the reader polls for a second).
    Without namespaces the jobs' temp dirs share the host's /tmp, so this needs them."""
    stash, find = CHANNELS[channel]
    assert grade(_writer(stash), _reader(find, poll_s=1.0)) == [1.0, 0.0]


def _daemon_writer() -> str:
    """A correct program that leaves a daemon (started below the audit hook, detached) serving
    the answers on an abstract unix socket, which no file system hides."""
    serve = (
        "import os, socket, json\n"
        "if os.fork(): os._exit(0)\n"
        "os.setsid()\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.bind('\\0uniopd-stash')\n"
        "s.listen(8)\n"
        "s.settimeout(5)\n"
        f"data = json.dumps({ {str(k): v for k, v in ANSWERS.items()}!r}).encode()\n"
        "while True:\n"
        "    c, _ = s.accept()\n"
        "    c.sendall(data)\n"
        "    c.close()\n"
    )
    return python_escape(serve) + GOOD


def _daemon_reader(poll_s: float) -> str:
    ask = (
        "import socket, time\n"
        f"end = time.monotonic() + {poll_s}\n"
        "while True:\n"
        "    try:\n"
        "        s = socket.socket(socket.AF_UNIX)\n"
        "        s.connect('\\0uniopd-stash')\n"
        "        open('found.json', 'wb').write(s.recv(4096))\n"
        "        break\n"
        "    except OSError:\n"
        "        if time.monotonic() > end: break\n"
        "        time.sleep(0.02)\n"
    )
    return python_escape(ask) + _reader(
        "import json\nfound = {int(k): v for k, v in json.load(open('found.json')).items()}\n"
    )


def test_a_daemon_left_behind_serves_no_one(grade, needs_namespaces):
    assert grade(_daemon_writer()) == [1.0]
    assert grade(_daemon_reader(0.0)) == [0.0]
    assert grade(_daemon_writer(), _daemon_reader(1.0)) == [1.0, 0.0]


def test_sysv_ipc_left_behind_says_nothing(grade, needs_namespaces):
    """A SysV segment outlives its process unless removed: its size carries the answer."""
    make = " ; ".join(f"ipcmk -M {1000 + v + 100}" for v in ANSWERS.values())
    writer = escape(["/bin/sh", "-c", make]) + GOOD
    reader = escape(["/bin/sh", "-c", "ipcs -m > segments.txt"]) + _reader(
        "sizes = [int(w) - 1100 for line in open('segments.txt') for w in line.split()[4:5]"
        " if w.isdigit()]\n"
        f"found = {{x: 2 * x for x in {list(ANSWERS)!r} if 2 * x in sizes}}\n"
    )
    assert grade(writer) == [1.0]
    assert grade(reader) == [0.0]


def test_the_jobs_namespaces_cannot_be_undone(grade, needs_namespaces):
    """What would reach the zygote's /proc, /tmp or network again: a new user namespace (where
    the program would hold every capability) or unmounting its own private mounts."""
    attempts = [
        escape(["/usr/bin/unshare", "-r", "-m", "/bin/true"]),
        escape(["/bin/umount", "-l", "/proc"]),
        escape(["/bin/umount", "-l", "/tmp"]),
        escape(["/bin/mount", "-t", "proc", "proc", "/proc"]),
    ]
    wins = "def f(x):\n    return 2 * x if escaped == 0 else -1\n"
    assert grade(*[a + wins for a in attempts]) == [0.0] * len(attempts)
