"""Small process helpers shared by the sandbox's supervisor and the harness inside it.

Standard library only: the harness imports this file by path, inside the sandbox.
"""

from __future__ import annotations

import os


def describe(exc: BaseException) -> str:
    """`Type: message`, at most 300 characters, even when the message itself raises."""
    try:
        return f"{type(exc).__name__}: {exc}"[:300]
    except BaseException:  # a program-defined __str__ can raise anything
        return type(exc).__name__


def to_devnull(*fds: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd)
    os.close(null)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
