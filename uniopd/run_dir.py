"""The run directory: the ground truth of a run, which trackers mirror and analysis reads.

    runs/<name>/
      config.yaml          resolved experiment config (re-loads to the same config)
      meta.json            git commit, versions, device, command, start time
      metrics.jsonl        one line per training step
      eval.jsonl           one line per held-out evaluation (accuracy per domain, avg@N, pass@k)
      eval/step_XXXXXX.jsonl      per-sample held-out outputs
      rollouts/step_XXXXXX.jsonl  per-rollout records (completion, reward, per-token log-probs)
      pairs.jsonl          sampled (correct, incorrect) pairs: per-token OPD advantages before / after calibration
      difficulty/          offline balancing: difficulty table and before / after histograms
      images/              a few held-out pictures per domain (multimodal runs) + index.json
      checkpoints/step_XXXXXX/    HF model (a LoRA run: its adapter) + tokenizer + trainer_state.pt

Every file is appended line by line or written to a temporary name and renamed, so a killed run
leaves complete lines and complete checkpoints behind, never half of one. A write refused for space
or I/O raises uniopd.storage.faults.StorageFault naming the file and what it held, after cutting a
half-appended line back and removing the temporary file or checkpoint folder it started.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

from uniopd.data.images import open_image
from uniopd.storage.faults import append_line, write_text_atomic, writing
from uniopd.tasks.problem import Problem
from uniopd.tracking.mirrors import NullTracker, Tracker

log = logging.getLogger(__name__)

IMAGES_PER_DOMAIN = 4  # held-out pictures kept for the report


def _safe(name: str) -> str:
    """A prompt id as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]


def _git_commit() -> dict:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            != ""
        )
        return {"commit": commit or None, "dirty": dirty if commit else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _plain_architecture(config: Path) -> None:
    """A sharded model's class is FSDP<Name>: record <Name>, so the folder loads as plain HF."""
    data = json.loads(config.read_text())
    data["architectures"] = [a.removeprefix("FSDP") for a in data.get("architectures") or []]
    atomic_write_text(config, json.dumps(data, indent=2) + "\n")


def atomic_write_text(path: Path, text: str, what: str | None = None) -> None:
    write_text_atomic(path, text, what or path.name)


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.mirror: Tracker = NullTracker()  # a tracker (wandb) that copies what is logged here

    @classmethod
    def create(cls, root: str | Path, name: str) -> RunDir:
        """A fresh directory `root/name`, or `root/name-2`, ... if taken: nothing is overwritten."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = root / (name if n == 1 else f"{name}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            for sub in ("eval", "rollouts", "checkpoints"):
                (path / sub).mkdir()
            return cls(path)
        raise RuntimeError(f"could not find a free run directory for {name!r} under {root}")

    def write_meta(self, device: torch.device, extra: dict | None = None) -> None:
        import transformers

        meta = {
            "git": _git_commit(),
            "command": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # `--gpus` pinning
            **(extra or {}),
        }
        atomic_write_text(self.path / "meta.json", json.dumps(meta, indent=2) + "\n", "meta.json")

    def read_meta(self) -> dict:
        path = self.path / "meta.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def update_meta(self, fields: dict) -> None:
        text = json.dumps({**self.read_meta(), **fields}, indent=2) + "\n"
        atomic_write_text(self.path / "meta.json", text, "meta.json")

    def _append(self, path: Path, record: dict, what: str) -> None:
        append_line(path, json.dumps(record) + "\n", what)

    def log_metrics(self, record: dict) -> None:
        self._append(self.path / "metrics.jsonl", record, f"the metrics of step {record['step']}")
        self.mirror.log_metrics(record)

    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None:
        what = f"the evaluation at step {step}"
        self._write_lines(self.path / "eval" / f"step_{step:06d}.jsonl", samples, what)
        self._append(self.path / "eval.jsonl", {"step": step, **summary}, what)
        self.mirror.log_eval(step, summary, samples)

    def save_images(self, problems: Iterable[Problem], per_domain: int = IMAGES_PER_DOMAIN) -> None:
        """The pictures of the first `per_domain` held-out problems of each domain, as PNG files
        in images/ with images/index.json (prompt id -> question, answer, files): what the
        report shows beside the responses to them."""
        index: list[dict] = []
        seen: Counter[str] = Counter()  # problems kept per domain
        for p in problems:
            if seen[p.domain] >= per_domain:
                continue
            seen[p.domain] += 1
            files = []
            for k, ref in enumerate(p.images):
                name = f"{_safe(p.id)}-{k}.png"
                out = self.path / "images" / name
                with writing(out, "a held-out picture"):
                    out.parent.mkdir(parents=True, exist_ok=True)
                    open_image(ref).save(out, format="PNG")
                files.append(name)
            index.append(
                {"prompt_id": p.id, "domain": p.domain, "prompt": p.prompt, "answer": p.answer}
                | {"files": files}
            )
        if index:
            atomic_write_text(self.path / "images" / "index.json", json.dumps(index, indent=1))

    def log_rollouts(self, step: int, records: list[dict]) -> None:
        path = self.path / "rollouts" / f"step_{step:06d}.jsonl"
        self._write_lines(path, records, f"the rollouts of step {step}")

    def log_pairs(self, records: list[dict]) -> None:
        """(correct, incorrect) rollout pairs with per-token advantages before / after calibration."""
        for record in records:
            what = f"the advantage pairs of step {record.get('step')}"
            self._append(self.path / "pairs.jsonl", record, what)

    def _write_lines(self, path: Path, records: list[dict], what: str) -> None:
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records), what)

    def save_checkpoint(
        self, step: int, model, tokenizer, trainer_state: dict, keep: int, weights=None
    ) -> Path:
        """HF weights + tokenizer (an image-text model's processor) + optimizer/scheduler/RNG/
        sampler state, written then renamed.
        `weights`: the whole state dict when `model` holds only a shard of it (FSDP)."""
        ckpts = self.path / "checkpoints"
        final = ckpts / f"step_{step:06d}"
        tmp = ckpts / f".step_{step:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with writing(tmp, f"the checkpoint of step {step}"):
            try:
                if weights is None:
                    model.save_pretrained(tmp)
                else:
                    model.save_pretrained(tmp, state_dict=weights)
                    _plain_architecture(tmp / "config.json")
                tokenizer.save_pretrained(tmp)
                torch.save(trainer_state, tmp / "trainer_state.pt")
            except BaseException:  # a full disk: the half-written folder gives its space back
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(ckpts / "latest", final.name + "\n", f"the checkpoint of step {step}")
        for old in sorted(ckpts.glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def latest_checkpoint(self) -> Path | None:
        marker = self.path / "checkpoints" / "latest"
        if not marker.exists():
            return None
        return self.path / "checkpoints" / marker.read_text().strip()

    def newest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder: they appear only by renaming a finished one."""
        ckpts = sorted((self.path / "checkpoints").glob("step_*"))
        return ckpts[-1] if ckpts else None

    def drop_unfinished_checkpoints(self) -> None:
        """Removes `.step_*.tmp` folders, the checkpoints a full disk or a kill interrupted: never
        resumed from, and their space is what the resumed run needs."""
        for tmp in (self.path / "checkpoints").glob(".step_*.tmp"):
            log.warning("removing the unfinished checkpoint %s", tmp)
            shutil.rmtree(tmp, ignore_errors=True)

    def resumable_checkpoint(self) -> tuple[Path, dict]:
        """The newest checkpoint that loads completely, with its trainer state. A truncated or
        corrupt one (a kill during a copy, a full disk) is skipped with a warning naming it."""
        from safetensors import safe_open

        self.drop_unfinished_checkpoints()
        ckpts = sorted((self.path / "checkpoints").glob("step_*"), reverse=True)
        for ckpt in ckpts:
            try:
                # a LoRA run's checkpoint holds its adapter: adapter_config.json, no config.json
                adapter = (ckpt / "adapter_config.json").exists()
                config = ckpt / ("adapter_config.json" if adapter else "config.json")
                json.loads(config.read_text())
                weights = sorted(ckpt.glob("*.safetensors"))
                if not weights:
                    raise FileNotFoundError("no *.safetensors weights")
                for w in weights:
                    with safe_open(str(w), "pt") as f:
                        for key in f.keys():
                            f.get_tensor(key)  # reads every tensor: a truncated file fails here
                state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
                if state.get("step") != int(ckpt.name.removeprefix("step_")):
                    raise ValueError(f"trainer_state.pt is for step {state.get('step')}")
                return ckpt, state
            except Exception as exc:  # noqa: BLE001 - any failure means "not this one"
                log.warning(
                    "checkpoint %s is unusable (%s: %s); trying the one before it",
                    ckpt,
                    type(exc).__name__,
                    exc,
                )
        raise FileNotFoundError(
            f"{self.path}: no usable checkpoint to resume from "
            f"(checked {len(ckpts)}); was output.checkpoint_every 0?"
        )

    def rewind_logs(self, step: int) -> None:
        """Drop log lines written after `step`, which a resumed run is about to write again."""
        for name in ("metrics.jsonl", "eval.jsonl", "pairs.jsonl"):
            path = self.path / name
            if not path.exists():
                continue
            kept = []
            for n, line in enumerate(path.read_text().splitlines(), 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line torn by the kill
                    log.warning("%s line %d is incomplete; dropped", path, n)
                    continue
                if record.get("step", 0) <= step:
                    kept.append(line + "\n")
            atomic_write_text(path, "".join(kept), f"{name} rewound to step {step}")

    def note_resume(self, step: int, checkpoint: Path) -> None:
        resumes = self.read_meta().get("resumes", [])
        resumes.append(
            {
                "from_step": step,
                "checkpoint": checkpoint.name,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": sys.argv,
            }
        )
        self.update_meta({"resumes": resumes})
