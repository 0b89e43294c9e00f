"""Length-prefixed pickles over pipes: how the caller, the sandbox server and its supervisors talk."""

from __future__ import annotations

import os
import pickle
import select
import struct
import time


def send_msg(fd: int, obj) -> None:
    data = pickle.dumps(obj)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def recv_msg(fd: int, deadline: float | None = None):
    """One length-prefixed pickle; None on a clean EOF; TimeoutError past the deadline."""
    header = _read_exact(fd, 8, deadline)
    if header is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", header)[0], deadline)
    if body is None:
        raise EOFError("truncated message")
    return pickle.loads(body)


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("no reply from the sandbox server")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
