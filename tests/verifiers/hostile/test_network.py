"""Network: a program reaches no socket of the host's, not even on loopback."""

import socket
import threading

import pytest
from hostile_programs import python_escape

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process


@pytest.fixture
def listener():
    """A TCP server on the host's loopback that records every connection it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn.recv(64))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def _connect(port: int) -> str:
    return (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "s.sendall(b'leak')\n"
        "s.close()\n"
    )


def test_python_sockets_are_refused(grade, listener):
    port, accepted = listener
    attack = f"try:\n    exec({_connect(port)!r})\n    ok = True\nexcept BaseException:\n    ok = False\n"
    assert grade(attack + "def f(x):\n    return 2 * x if ok else -1\n") == [0.0]
    assert accepted == []


def test_sockets_below_python_reach_nothing(grade, listener, needs_namespaces):
    port, accepted = listener
    program = (
        python_escape(_connect(port)) + "def f(x):\n    return 2 * x if escaped == 0 else -1\n"
    )
    outside = python_escape("import socket; socket.create_connection(('1.1.1.1', 53), timeout=1)")
    assert grade(program, outside + "def f(x):\n    return 2 * x if escaped == 0 else -1\n") == [
        0.0,
        0.0,
    ]
    assert accepted == []
