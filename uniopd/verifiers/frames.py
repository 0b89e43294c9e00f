"""The frames a program's process sends the harness, checked one by one (the protocol).

Standard library only: the harness imports this file by path, inside the sandbox.
"""

from __future__ import annotations

import json
import os
import select
import time

# Bytes of frames the child may send in all: enough for any honest output, bounded so a flood is
# cut off (and failed) long before memory runs out.
FRAME_BYTES = 16 << 20


class FrameReader:
    """The child's frames, checked one by one: {"ready": true} (or {"setup_error": text}) first,
    sent before the program is loaded; then one frame per case, in order, {"case": i, KIND: value}
    or {"case": i, "raised": text} (which ends the cases); then {"done": true}. Anything else, or
    more than FRAME_BYTES in all, is a fail: the program wrote on the channel itself."""

    def __init__(self, n_cases: int, kind: str):
        self.n_cases, self.kind = n_cases, kind
        self.ready = self.done = False
        self.setup_error = self.problem = ""
        self.results: list[tuple[str, object]] = []

    def read(self, fd: int, deadline: float) -> bool:
        """Read until the end frame, a problem or EOF (True), or the deadline (False)."""
        buffer, total = b"", 0
        while not (self.done or self.problem or self.setup_error):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                if buffer:
                    self.problem = "malformed report: an unterminated frame"
                return True
            total += len(chunk)
            if total > FRAME_BYTES:
                self.problem = f"more than {FRAME_BYTES} bytes of frames"
                return True
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                problem = self._accept(line)
                if problem:
                    self.problem = f"malformed report: {problem}"
                if self.done or self.problem or self.setup_error:
                    break
        return True

    def _accept(self, line: bytes) -> str:
        if self.done:
            return "a frame after the end"
        try:
            frame = json.loads(line)
        except ValueError:
            return f"not JSON: {line[:60]!r}"
        if type(frame) is not dict:
            return f"not an object: {line[:60]!r}"
        if not self.ready:
            if frame == {"ready": True}:
                self.ready = True
            elif set(frame) == {"setup_error"}:
                self.setup_error = str(frame["setup_error"])[:300]
            else:
                return f"a frame before the program was loaded: {line[:60]!r}"
            return ""
        ended = bool(self.results) and self.results[-1][0] == "raised"
        if frame == {"done": True}:
            if len(self.results) != self.n_cases and not ended:
                return f"the end after {len(self.results)} of {self.n_cases} cases"
            self.done = True
            return ""
        if ended:
            return "a frame after the program raised"
        if len(frame) != 2 or frame.get("case") != len(self.results):
            return f"unexpected frame {line[:60]!r}"
        if len(self.results) >= self.n_cases:
            return "more cases than were given"
        (kind,) = set(frame) - {"case"}
        if kind not in (self.kind, "raised"):
            return f"unexpected frame {line[:60]!r}"
        if kind == "raised" and type(frame[kind]) is not str:
            return "a non-text exception"
        self.results.append((kind, frame[kind]))
        return ""
