"""The one prepared GPU check: does the paper's path fit and run on this card, and how fast.

    python benchmarks/device_check.py --out device_check          # on a GPU: under 8 min on one H100
    python benchmarks/device_check.py --dry-run --out /tmp/dc     # the same code on a CPU, tiny shapes

Nothing is downloaded: every model is random-initialised from a Qwen3-0.6B-, 1.7B- or 4B-shaped
config (the 1.7B and 4B ones are the configs `uniopd plan` ships). It needs only torch,
transformers, accelerate, pydantic and pyyaml of the project's dependencies, so a stock CUDA image
runs it after `pip install --no-deps -e .` and pydantic's wheels (docs/scale.md, "The device
check"). Sections, in the order they run, each inside a time budget (`--budget-s`; a section that
would start after it is recorded as skipped):

- machine: the card, its memory, the versions.
- update/<shape>: a bf16-mixed policy update (fp32 master weights, AdamW, OPD's PPO term,
  token-budget micro-batches) of a random student, three steps; peak GPU memory against the
  plan's own terms for the same settings (`uniopd plan`'s arithmetic: the resident student terms
  + the update phase, without the CUDA context), the ratio and whether it is within 15 %; update
  tokens/s and MFU (6 x parameters x tokens x epochs / seconds / the card's dense bf16 peak). A
  shape the plan refuses for this card is recorded with the plan's reason and not run.
- logprob_memory: the log-prob pass over V = 151,936 (forward and backward through the output
  head), naive float32 [T, V] logits vs uniopd's chunked pass: peak GPU memory of each.
- rollout/<engine>/<new tokens>: `hf` vs `hf-paged` sampling tokens/s of the 0.6B shape under
  bf16-mixed, at 1024 and 2048 new tokens (no stop token: every row runs to its length).
- two_process: with 2 GPUs or more, a 2-process update (torch.distributed.run, NCCL, uniopd's
  bucketed gradient sum) whose ranks must end with the same weights, and its step time.

Output: `<out>/device_check.json` (rewritten after every section, so a run cut short keeps what
it measured) and `<out>/device_check.md` (the same figures as tables). The JSON: {"machine":
{...}, "sections": {name: {"status": "ok" | "refused" | "skipped" | "failed", ...figures}},
"dry_run": bool, "seconds": float}. docs/scale.md lists every field.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_check_parts import (  # noqa: E402  (the benchmarks folder is not a package)
    logprob_memory,
    machine,
    render_markdown,
    rollout_speed,
    two_process_worker,
    update_check,
)

REPO = Path(__file__).resolve().parents[1]


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds

    @property
    def used(self) -> float:
        return time.monotonic() - self.start

    def allows(self, estimate: float) -> bool:
        return self.used + estimate <= self.seconds


def sections(dry: bool, gpus: int) -> list[tuple[str, float, object]]:
    """(name, estimated seconds on one H100, thunk) in the order they run: the memory questions
    first, since they decide whether the paper's file runs at all."""
    if dry:
        shapes = [("tiny", 64, False), ("tiny", 64, True)]
        lengths, rows, logprob_t = [8, 16], 4, 64
    else:
        shapes = [("qwen3-0.6b", 16384, False), ("qwen3-1.7b", 32768, True)]
        shapes.append(("qwen3-4b", 16384, True))
        lengths, rows, logprob_t = [1024, 2048], 64, 8192
    out: list[tuple[str, float, object]] = []
    for shape, tokens, ckpt in shapes[:2]:
        name = f"update/{shape}" + ("+ckpt" if ckpt and dry else "")
        out.append((name, 45.0, lambda s=shape, t=tokens, c=ckpt: update_check(s, t, c, dry)))
    out.append(("logprob_memory", 15.0, lambda: logprob_memory(logprob_t, dry)))
    for new in lengths:
        for engine in ("hf", "hf-paged"):
            est = 0.04 * new  # seconds for one timed pass at 64 rows, from rollout_speed.py figures
            out.append(
                (
                    f"rollout/{engine}/{new}",
                    est,
                    lambda e=engine, n=new: rollout_speed(e, n, rows, dry),
                )
            )
    for shape, tokens, ckpt in shapes[2:]:
        out.append(
            (f"update/{shape}", 75.0, lambda s=shape, t=tokens, c=ckpt: update_check(s, t, c, dry))
        )
    if gpus >= 2 or dry:
        out.append(("two_process", 60.0, lambda: two_process(dry)))
    return out


def two_process(dry: bool) -> dict:
    """The 2-process update, in two fresh processes started by torch's own launcher."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "two_process.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            __file__,
            "--two-process-worker",
            str(result),
        ] + (["--dry-run"] if dry else [])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
        if done.returncode != 0 or not result.exists():
            tail = (done.stdout + done.stderr)[-2000:]
            return {"status": "failed", "error": f"exit code {done.returncode}", "output": tail}
        return json.loads(result.read_text())


def run(a: argparse.Namespace) -> dict:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(a.budget_s)
    gpus = torch.cuda.device_count()
    record: dict = {"machine": machine(a.dry_run), "dry_run": a.dry_run, "sections": {}}
    for name, estimate, thunk in sections(a.dry_run, gpus):
        if not a.dry_run and not budget.allows(estimate):
            record["sections"][name] = {"status": "skipped", "why": "time budget (--budget-s)"}
            continue
        t0 = time.monotonic()
        try:
            result = thunk()  # type: ignore[operator]
        except Exception as exc:  # a failed section is a finding: record it and go on
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            result["traceback"] = traceback.format_exc()[-3000:]
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        result["seconds"] = round(time.monotonic() - t0, 2)
        record["sections"][name] = result
        record["seconds"] = round(budget.used, 1)
        write(out, record)
        print(f"device_check: {name}: {result.get('status')} ({result['seconds']} s)", flush=True)
    record["seconds"] = round(budget.used, 1)
    write(out, record)
    return record


def write(out: Path, record: dict) -> None:
    (out / "device_check.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "device_check.md").write_text(render_markdown(record))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="device_check", help="folder for the JSON and Markdown")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (tests)")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip sections past this")
    p.add_argument("--two-process-worker", metavar="RESULT", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.two_process_worker:
        two_process_worker(Path(a.two_process_worker), a.dry_run)
        return 0
    if not a.dry_run and not torch.cuda.is_available():
        print("device_check: no CUDA device here; --dry-run runs the same code on a CPU")
        return 2
    record = run(a)
    failed = [n for n, s in record["sections"].items() if s.get("status") == "failed"]
    print(f"device_check: wrote {a.out}/device_check.json and .md; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
