"""Folders a command will write, checked before any model loads: a run's output root, the
$UNIOPD_HOME the tiny world is copied or built into, a sweep's folder. A root that is read-only,
has a file in its way or lacks permission is refused with a message naming it and why, instead of
a traceback after minutes of loading."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class FolderNotWritable(Exception):
    """`path` (the `what` of a command) cannot be created or written."""

    def __init__(self, path: Path, what: str, why: str):
        self.path, self.what, self.why = Path(path), what, why
        super().__init__(f"{what} {path}: {why}")


def check_writable(path: str | Path, what: str) -> Path:
    """Proves `path` can be created and a file written in it; raises FolderNotWritable
    otherwise. Returns the path. Folders it had to create are removed again: a check leaves
    nothing behind (a run stopped later, e.g. by a teacher that is down, has no run folder)."""
    path = Path(path).expanduser()
    blocker = _file_in_the_way(path)
    if blocker is not None:
        where = "it is a file" if blocker == path else f"{blocker} is a file"
        raise FolderNotWritable(path, what, f"cannot be a folder: {where}")
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderNotWritable(path, what, f"cannot be created ({_words(exc)})") from exc
    try:  # permission bits do not tell: a read-only mount or root's rights decide
        fd, probe = tempfile.mkstemp(dir=path, prefix=".uniopd-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FolderNotWritable(path, what, f"is not writable ({_words(exc)})") from exc
    finally:
        for folder in created:  # innermost first; one something else filled since stays
            try:
                folder.rmdir()
            except OSError:
                break
    return path


def _file_in_the_way(path: Path) -> Path | None:
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _words(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
