"""The network namespace every job shares: nothing one program does there reaches another.

Under namespaces the jobs share one empty network namespace, the zygote's template's, because no
process of a job can make a socket (uniopd/verifiers/no_sockets.py). Without that filter, a shared
namespace keeps what a program leaves even after every process of its job is dead. The state
attacked here is what a count of the namespace's sockets would miss: an IPv6 flow label made to be
shared with anyone outlives its socket by its linger time (up to 150 s unprivileged), and a later
program probes for it. The other channel a shared namespace opens is a socket itself, served while
its writer still runs: test_cross_program.py's daemon on an abstract unix socket, kept up here for
as long as the reader beside it looks.
"""

import pytest
from hostile_programs import GOOD, python_escape
from test_cross_program import ANSWERS, _daemon_reader, _daemon_writer, _reader

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process

# struct in6_flowlabel_req: a destination (any but ::), the label, action GET (0), share ANY
# (255), flags, expires, linger, padding; IPV6_FLOWLABEL_MGR is socket option 32
_REQUEST = (
    "import socket, struct\n"
    "dst = socket.inet_pton(socket.AF_INET6, '2001:db8::1')\n"
    "def request(x, y, flags, linger):\n"
    "    label = ((x + 128) << 8) | (y + 128)\n"
    "    return dst + struct.pack('!I', label) + struct.pack('=BBHHHI', 0, 255, flags, 0, linger, 0)\n"
)


def _flow_label_writer() -> str:
    """A correct program that, below the audit hook, makes one flow label per case: (x, f(x))."""
    make = (
        _REQUEST
        + "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        + f"for x, y in {ANSWERS!r}.items():\n"
        + "    s.setsockopt(socket.IPPROTO_IPV6, 32, request(x, y, 1, 60))  # CREATE\n"
    )
    return python_escape(make) + GOOD


def _flow_label_reader() -> str:
    """Probes every candidate label: CREATE|EXCL says EEXIST (17) where one is there already."""
    probe = (
        _REQUEST
        + "import json\nfound = {}\n"
        + f"for x in {list(ANSWERS)!r}:\n"
        + "    for y in range(-20, 21):\n"
        + "        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        + "        try:\n"
        + "            s.setsockopt(socket.IPPROTO_IPV6, 32, request(x, y, 3, 0))\n"
        + "        except OSError as e:\n"
        + "            if e.errno == 17:\n"
        + "                found[x] = y\n"
        + "        s.close()\n"
        + "open('found.json', 'w').write(json.dumps(found))\n"
    )
    return python_escape(probe) + _reader(
        "import json\nfound = {int(k): v for k, v in json.load(open('found.json')).items()}\n"
    )


def test_a_flow_label_left_behind_says_nothing(grade, needs_namespaces):
    assert grade(_flow_label_writer()) == [1.0]
    assert grade(_flow_label_reader()) == [0.0]


def test_a_socket_served_beside_it_serves_no_one(grade, needs_namespaces):
    """The writer is correct but takes its time (0.8 s), while its daemon serves the answers on an
    abstract unix socket; the reader, in the same batch, polls for that socket for a second."""
    writer = _daemon_writer().replace(GOOD, "import time\ntime.sleep(0.8)\n" + GOOD)
    assert grade(writer, _daemon_reader(1.0)) == [1.0, 0.0]


def test_a_program_can_make_no_socket_at_all(grade, needs_namespaces):
    """Below the audit hook too, where only the kernel's filter stands: a program that could make
    a socket (unix, IPv6, a pair, vsock, which no network namespace confines) or an io_uring
    (which makes sockets by itself) earns 1.0. Made only, never connected."""
    tries = (
        "import socket, ctypes\n"
        "made = 0\n"
        "for make in (lambda: socket.socket(socket.AF_UNIX), socket.socketpair,\n"
        "             lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),\n"
        "             lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)):\n"
        "    try:\n"
        "        make()\n"
        "        made += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed\n"
        "made += ctypes.CDLL(None).syscall(425, 4, params) >= 0  # io_uring_setup\n"
        "raise SystemExit(made)\n"
    )
    wins = "def f(x):\n    return 2 * x if escaped != 0 else -1\n"
    assert grade(python_escape(tries) + wins) == [0.0]
