"""Following a run directory while it is written: the complete lines appended to metrics.jsonl
and eval.jsonl since the last look, as TensorBoard events.

Only whole lines are read (a run still being written shows up to its last complete line; the
rest is read on a later look). Wall time is the run's start plus its summed step times, so
TensorBoard's "relative" axis is training seconds and runs side by side share one axis."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from uniopd.tracking.scalars import eval_scalars, metric_scalars


class RunFollower:
    def __init__(self, run: Path, writer):
        self.run, self.writer = run, writer
        self.offsets = {"metrics.jsonl": 0, "eval.jsonl": 0}
        self.start = _start_time(run)
        self.seconds = 0.0  # summed time/step of the steps read so far
        self.seconds_at: dict[int, float] = {0: 0.0}
        self.domains: set[str] = set()  # the domains its evaluations name, so far

    def _new_lines(self, name: str) -> list[dict]:
        path = self.run / name
        if not path.exists():
            return []
        with open(path, "rb") as handle:
            handle.seek(self.offsets[name])
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line waits for its end
        self.offsets[name] += len(complete)
        out = []
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a kill: the rest of the file is still good
        return out

    def poll(self) -> int:
        """Write what was appended since the last poll; the number of lines read."""
        metrics = self._new_lines("metrics.jsonl")
        for record in metrics:
            step = int(record["step"])
            self.seconds += float(record.get("time/step") or 0.0)
            self.seconds_at[step] = self.seconds
            for tag, value in metric_scalars(record):
                self.writer.add_scalar(tag, value, step, walltime=self.start + self.seconds)
        evals = self._new_lines("eval.jsonl")
        for record in evals:
            step = int(record["step"])
            when = self.start + self.seconds_at.get(step, self.seconds)
            self.domains |= {d for d, entry in record.items() if isinstance(entry, dict)}
            for tag, value in eval_scalars(record):
                self.writer.add_scalar(tag, value, step, walltime=when)
        if metrics or evals:
            self.writer.flush()
        return len(metrics) + len(evals)


def _start_time(run: Path) -> float:
    try:
        meta = json.loads((run / "meta.json").read_text())
        return datetime.fromisoformat(meta["started"]).timestamp()
    except (OSError, KeyError, ValueError):
        return (run / "config.yaml").stat().st_mtime
