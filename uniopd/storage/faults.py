"""A write that fails for space or I/O, as one fault that names the path and what was being
written, so a run ends with a message instead of a traceback from deep inside a library.

The errors come in several shapes: Python's OSError with its errno; safetensors (Rust) puts
"(os error N)" in its message; torch's zip writer reports a short write as "unexpected pos" or
"file write failed", without an errno. All of them mean the same thing here: the disk (or a quota,
or a file-size limit) refused the bytes.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_STORAGE_FAULT = 3  # the run stopped because a write of its directory failed

# space, quota, file-size limit, the device itself, a folder gone read-only under the run
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
# torch.save's zip writer: a short write, without an errno
_SHORT_WRITE = ("unexpected pos", "file write failed")


class StorageFault(Exception):
    """Writing `what` to `path` failed for space or I/O (`reason`: the system's words)."""

    def __init__(self, path: Path, what: str, reason: str):
        self.path, self.what, self.reason = Path(path), what, reason
        super().__init__(f"could not write {what} to {path}: {reason}")


def storage_reason(exc: BaseException) -> str | None:
    """The system's words for `exc` when it is a write refused for space or I/O, else None."""
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return exc.strerror or os.strerror(exc.errno)
    text = str(exc)
    found = _RUST_OS_ERROR.search(text)
    if found and int(found.group(1)) in STORAGE_ERRNOS:
        return os.strerror(int(found.group(1)))
    if isinstance(exc, RuntimeError) and any(s in text for s in _SHORT_WRITE):
        return f"short write ({text.strip().splitlines()[-1]})"
    return None


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turns a space or I/O failure inside the block into a StorageFault naming `path`."""
    try:
        yield
    except StorageFault:
        raise
    except Exception as exc:
        reason = storage_reason(exc)
        if reason is None:
            raise
        raise StorageFault(path, what, reason) from exc


def append_line(path: Path, line: str, what: str) -> None:
    """Appends one line, whole or not at all: a failed write is cut back to where the file
    ended, so every reader (resume, analysis, the board) sees complete JSON lines only."""
    data = line.encode()
    with writing(path, what):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:  # a full disk can accept part of a write before refusing the rest
                    view = view[os.write(fd, view) :]
            except OSError:
                _cut_back(fd, start)
                raise
        finally:
            os.close(fd)


def _cut_back(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:  # a device that cannot be truncated: the write error is the news
        pass


def write_text_atomic(path: Path, text: str, what: str) -> None:
    """Written to a temporary name and renamed, so `path` is the old file or the new one, never
    half of one; the temporary file is removed when the write fails, giving its space back."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, what):
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
