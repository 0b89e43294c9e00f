"""Whole-loop training speed of uniopd's OPD against the TRL trainers a user would pick instead.

    python benchmarks/vs_trl.py                          # 16 prompts x 8 samples, 64 new tokens
    python benchmarks/vs_trl.py --engine hf-static       # uniopd's rollout.engine: hf | hf-static | hf-paged
    python benchmarks/vs_trl.py --engine hf-paged --uniopd-set rollout.max_batch_tokens=512
    python benchmarks/vs_trl.py --method reverse_kl      # uniopd on TRL's objective
    python benchmarks/vs_trl.py --reps 10 --json vs_trl.json
    python benchmarks/vs_trl.py --tiny                   # a seconds-long smoke run of the same code

Three systems train the tiny world's student (`builtin:student`; `--student`) against its math expert
(`builtin:teacher-math`) on the world's math training prompts, each in its own copy of the models,
fp32 on the CPU (or `--device cuda`):

  uniopd   the real loop: `uniopd.loop.runner.prepare(...).train()` on an experiment config (OPD, or any
           `--method`; one optimizer step per rollout batch, no eval, no checkpoints but the final
           one, tracking and rollout logging off, no offline balancing). A step is the trainer's
           whole step: rollout, grading, teacher log-probs, update, metrics.
  trl-dist `trl.DistillationTrainer(...).train()`: on-policy generation with HF `generate`, then the
           generalized JSD at beta = 1 (reverse KL over the full vocabulary, chunked), one optimizer
           step per generation batch.
  trl-gkd  `trl.experimental.gkd.GKDTrainer(...).train()` at lmbda = 1 (always on-policy) and
           beta = 1 (reverse KL over full logits).

Parity: the same B prompts x G samples per step (uniopd's prompt sampler decides the order; TRL's
datasets hold the same prompts, each repeated G times, read in order), the same chat-template
token ids (checked), the same max new tokens, sampling at temperature 1, top-p 1 and no top-k
(the logits processors each system's `generate` really builds are recorded and printed: with
transformers >= 5, a GenerationConfig whose top_k is None gets the global default top_k = 50),
the same AdamW (lr, betas, weight decay; TRL leaves biases and norms out of the decay), constant
learning rate, no warm-up, grad-norm clip 1, no gradient checkpointing. The objectives differ by
design (OPD is sampled-token reverse KL with PPO-clip; TRL's two are full-vocabulary reverse KL);
`--method reverse_kl` runs uniopd on TRL's objective.

Timing: each system runs its own `train()` in a thread, and a baton lets exactly one run at a time,
one optimizer step per turn, interleaved A, B, C, A, B, C, ...: the first `--warmup` rounds are not
counted, then `--reps` rounds are. A step is the wall time from one step's start to the next one's
(TRL: `on_step_begin` to `on_step_begin`, so the batch fetch and logging count; uniopd: `train_step`
to `train_step`), so nothing outside the loop's own work is in it. Generation is the time inside
the student's `generate` (or `generate_batch`) calls; uniopd's own rollout phase (generate plus
packing) is printed next to it. Samples/s = B x G / median step seconds.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

SYSTEMS = ("uniopd", "trl-dist", "trl-gkd")


# ---------------------------------------------------------------------------------------- baton
class Abort(Exception):
    pass


class Baton:
    """Lets exactly one system's training loop run at a time, one optimizer step per turn.

    A loop calls `gate(name)` at the start of each of its steps: that marks the end of its previous
    step and blocks until the main thread gives it the next turn with `run_step(name)`."""

    def __init__(self, names):
        self.cond = threading.Condition()
        self.turn: str | None = None
        self.arrivals = {n: [] for n in names}  # perf_counter at each gate, before waiting
        self.starts = {n: [] for n in names}  # perf_counter when each step began
        self.errors: dict[str, BaseException] = {}
        self.done: set[str] = set()
        self.abort = False

    def gate(self, name: str) -> None:
        with self.cond:
            self.arrivals[name].append(time.perf_counter())
            if self.turn == name:
                self.turn = None
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.turn == name or self.abort)
            if self.abort:
                raise Abort
        self.starts[name].append(time.perf_counter())

    def finished(self, name: str, error: BaseException | None = None) -> None:
        with self.cond:
            if error is not None:
                self.errors[name] = error
            self.done.add(name)
            if self.turn == name:
                self.turn = None
            self.cond.notify_all()

    def _check(self, name: str) -> None:
        if name in self.errors:
            raise RuntimeError(f"{name} failed: {self.errors[name]!r}") from self.errors[name]
        if name in self.done:
            raise RuntimeError(f"{name} ended before its steps were all run")

    def wait_parked(self, name: str, arrivals: int) -> None:
        """Until `name` has reached its gate `arrivals` times (or failed)."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.arrivals[name]) >= arrivals or name in self.done)
            if len(self.arrivals[name]) < arrivals:
                self._check(name)

    def run_step(self, name: str) -> None:
        """Give `name` one step and wait until it is back at its gate."""
        with self.cond:
            n = len(self.arrivals[name])
            self.turn = name
            self.cond.notify_all()
            self.cond.wait_for(lambda: len(self.arrivals[name]) > n or name in self.done)
            if len(self.arrivals[name]) == n:
                self._check(name)

    def run_to_end(self, name: str, thread: threading.Thread) -> None:
        """The last (uncounted) step and whatever the loop does after it, alone."""
        with self.cond:
            self.turn = name
            self.cond.notify_all()
        thread.join()
        if name in self.errors:
            raise RuntimeError(f"{name} failed: {self.errors[name]!r}") from self.errors[name]

    def stop(self) -> None:
        with self.cond:
            self.abort = True
            self.cond.notify_all()


# ------------------------------------------------------------------------------ instrumentation
class GenProbe:
    """Seconds inside a model's generate calls, response tokens produced, and the logits
    processors its `generate` built (the sampling it really did)."""

    def __init__(self, model, eos_ids, pad_id):
        self.seconds = 0.0
        self.rows = 0
        self.tokens = 0
        self.processors: set[tuple[str, ...]] = set()
        self.eos = set(eos_ids)
        self.pad = pad_id
        for method in ("generate", "generate_batch"):
            if hasattr(model, method):
                setattr(model, method, self._timed(getattr(model, method)))
        if hasattr(model, "_get_logits_processor"):
            original = model._get_logits_processor

            @functools.wraps(original)
            def recorded(*args, **kwargs):
                out = original(*args, **kwargs)
                self.processors.add(tuple(type(p).__name__ for p in out))
                return out

            model._get_logits_processor = recorded

    def _timed(self, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - t0
            self._count(out, kwargs.get("input_ids", args[0] if args else None))
            return out

        return timed

    def _count(self, out, input_ids) -> None:
        seqs = getattr(out, "sequences", out)
        if isinstance(seqs, torch.Tensor) and isinstance(input_ids, torch.Tensor):
            for row in seqs[:, input_ids.shape[1] :].tolist():
                n = next((i + 1 for i, t in enumerate(row) if t in self.eos), None)
                if n is None:  # no EOS: trailing padding is not a generated token
                    n = len(row)
                    while n and row[n - 1] == self.pad:
                        n -= 1
                self.rows += 1
                self.tokens += n
        elif isinstance(out, dict):  # generate_batch: request id -> output with generated_tokens
            for r in out.values():
                tokens = getattr(r, "generated_tokens", None)
                if tokens is not None:
                    self.rows += 1
                    self.tokens += len(tokens)

    def snapshot(self) -> tuple[float, int, int]:
        return self.seconds, self.rows, self.tokens


# ------------------------------------------------------------------------------------- systems
def uniopd_system(a, root: Path, baton: Baton):
    import yaml

    from uniopd.config import ExperimentConfig
    from uniopd.launch.start import build_models
    from uniopd.loop.runner import prepare
    from uniopd.run_dir import RunDir
    from uniopd.setup.plan import make_plan

    rollout = {
        "group_size": a.group_size,
        "prompts_per_batch": a.prompts,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "max_new_tokens": a.new_tokens,
    }
    if a.engine is not None:
        rollout["engine"] = a.engine
    raw = {
        "name": "vs-trl",
        "seed": a.seed,
        "device": a.device,
        "precision": "fp32",
        "student": a.student,
        "teachers": {"math": a.teacher},
        "data": {"train": ["builtin:math/train"], "eval": []},
        "method": {"name": a.method},
        "rollout": rollout,
        "train": {
            "steps": a.warmup + a.reps + 1,
            "lr": a.lr,
            "warmup_steps": 0,
            "lr_schedule": "constant",
            "betas": [0.9, 0.98],
            "weight_decay": 0.1,
            "epochs": 1,
            "max_grad_norm": 1.0,
        },
        "eval": {"every": 0},
        "output": {
            "root": str(root),
            "checkpoint_every": 0,
            "log_rollouts_every": 0,
            "advantage_pairs": 0,
            "progress": False,
        },
        "tracking": {"wandb": "disabled"},
    }
    for item in a.uniopd_set:
        key, _, value = item.partition("=")
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except Exception as exc:
        if a.engine is not None and "engine" in str(exc):
            raise SystemExit(
                f"--engine {a.engine}: this uniopd has no usable rollout.engine field yet ({exc})"
            ) from None
        raise
    run = RunDir.create(cfg.output.root, cfg.name)
    trainer = prepare(make_plan(cfg), run, build=build_models)
    notes: list[str] = []
    sampling = getattr(trainer, "sampling", None)
    if hasattr(sampling, "as_dict"):
        notes.append(f"uniopd sampling: {json.dumps(sampling.as_dict(), default=str)}")
    tok = trainer.tokenizer
    probe = GenProbe(trainer.student, [tok.eos_token_id], tok.pad_token_id)
    phases: list[dict] = []
    inner_step = trainer.train_step

    def gated_step():
        baton.gate("uniopd")
        return inner_step()

    trainer.train_step = gated_step
    trainer.on_step = lambda step, metrics: phases.append(
        {k: v for k, v in metrics.items() if k.startswith("time/")}
    )

    # the prompts of every step, in uniopd's order, for the peers' datasets
    from uniopd.data import PromptSampler

    sampler = PromptSampler(trainer.sampler.problems, seed=cfg.seed)
    batches = [sampler.next_batch(a.prompts) for _ in range(a.warmup + a.reps + 1)]
    prompt_ids = {p.id: trainer.rollouts.prompt_ids[p.id] for b in batches for p in b}
    return trainer.train, probe, phases, batches, prompt_ids, notes


def tiny_pair(root: Path) -> tuple[str, str]:
    """Two random 2-layer checkpoints with the tiny world's kind of tokenizer, trained here: the
    smoke run needs no built world."""
    from transformers import AutoTokenizer

    from uniopd.world import models
    from uniopd.world.tokenizer import train_tokenizer

    train_tokenizer(root / "tokenizer", vocab_size=512)
    tok = AutoTokenizer.from_pretrained(root / "tokenizer")
    models.SIZES.setdefault("bench32x2", (32, 2, 4))
    paths = []
    for name, seed in (("student", 1), ("teacher", 2)):
        models.build_model("bench32x2", tok, seed=seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths.append(str(root / name))
    return paths[0], paths[1]


def load_pair(a):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniopd.refs import resolve_model

    device, attn = a.device, a.attn
    student_path = resolve_model(a.student)
    teacher_path = resolve_model(a.teacher)
    kw = {"dtype": torch.float32, "attn_implementation": attn}
    student = AutoModelForCausalLM.from_pretrained(student_path, **kw).to(device)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_path, **kw).to(device)
    tok = AutoTokenizer.from_pretrained(student_path)
    tok.padding_side = "left"
    return student, teacher, tok


def trl_common(a, out: Path) -> dict:
    return {
        "output_dir": str(out),
        "per_device_train_batch_size": a.prompts * a.group_size,
        "gradient_accumulation_steps": 1,
        "max_steps": a.warmup + a.reps + 1,
        "learning_rate": a.lr,
        "adam_beta1": 0.9,
        "adam_beta2": 0.98,
        "weight_decay": 0.1,
        "optim": "adamw_torch",
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "max_grad_norm": 1.0,
        "bf16": False,
        "fp16": False,
        "gradient_checkpointing": False,
        "use_cpu": a.device == "cpu",
        "report_to": "none",
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "seed": a.seed,
        "temperature": 1.0,
        "beta": 1.0,
    }


def quiet(trainer):
    """No per-run metrics dict printed at the end of `train()` (the figures are ours)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def gate_callback(baton: Baton, name: str):
    from transformers import TrainerCallback

    class Gate(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            baton.gate(name)

    return Gate()


def trl_dist_system(a, out: Path, baton: Baton, rows: list[dict]):
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    student, teacher, tok = load_pair(a)
    probe = GenProbe(student, [tok.eos_token_id], tok.pad_token_id)
    args = DistillationConfig(
        **trl_common(a, out),
        max_completion_length=a.new_tokens,
        top_p=1.0,
        top_k=0,
        shuffle_dataset=False,
    )
    trainer = quiet(
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=args,
            train_dataset=Dataset.from_list([{"prompt": r["messages"][:1]} for r in rows]),
            processing_class=tok,
            callbacks=[gate_callback(baton, "trl-dist")],
        )
    )
    ids, _, _ = trainer._tokenize_prompts([r["messages"][:1] for r in rows])
    return trainer.train, probe, [list(x) for x in ids]


def trl_gkd_system(a, out: Path, baton: Baton, rows: list[dict]):
    from datasets import Dataset
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    student, teacher, tok = load_pair(a)
    eos = student.generation_config.eos_token_id
    probe = GenProbe(student, [eos] if isinstance(eos, int) else eos, tok.pad_token_id)
    args = GKDConfig(
        **trl_common(a, out),
        lmbda=1.0,
        max_new_tokens=a.new_tokens,
        train_sampling_strategy="sequential",
    )
    dataset = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    trainer = quiet(
        GKDTrainer(
            model=student,
            teacher_model=teacher,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[gate_callback(baton, "trl-gkd")],
        )
    )
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    ids = [
        row[mask.bool()].tolist()
        for row, mask in zip(batch["prompts"], batch["prompt_attention_mask"])
    ]
    return trainer.train, probe, ids


# ----------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16, help="prompts per step (B)")
    p.add_argument("--group-size", type=int, default=8, help="samples per prompt (G)")
    p.add_argument("--new-tokens", type=int, default=64, help="max new tokens per sample")
    p.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    p.add_argument("--reps", type=int, default=5, help="counted rounds (one step per system)")
    p.add_argument("--lr", type=float, default=1.5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="opd", help="uniopd's method.name (reverse_kl = TRL's)")
    p.add_argument(
        "--engine",
        default=None,
        help="uniopd's rollout.engine (hf, hf-static, hf-paged); passed only when given",
    )
    p.add_argument(
        "--uniopd-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="more fields of uniopd's experiment config, e.g. rollout.max_batch_tokens=512",
    )
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--attn", default="sdpa", help="the TRL models' attn_implementation")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's)")
    p.add_argument("--student", default="builtin:student", help="the student (any model ref)")
    p.add_argument("--teacher", default="builtin:teacher-math", help="the teacher (any model ref)")
    p.add_argument(
        "--tiny", action="store_true", help="a seconds-long smoke run on random 2-layer models"
    )
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args(argv)
    if a.tiny:
        a.prompts, a.group_size, a.new_tokens, a.warmup, a.reps = 2, 2, 8, 1, 1
    return a


def main(argv=None) -> None:
    a = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if a.threads:
        torch.set_num_threads(a.threads)
    names = [s for s in SYSTEMS if s in a.systems]
    n_rows = a.prompts * a.group_size
    steps = a.warmup + a.reps + 1
    baton = Baton(names)
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    notes: list[str] = []
    if a.tiny:
        a.student, a.teacher = tiny_pair(root / "models")

    # uniopd first: its sampler decides which prompts each step holds, for everyone
    run_uniopd, uprobe, phases, batches, uids, unotes = uniopd_system(a, root / "uniopd", baton)
    notes += unotes
    rows = [
        {
            "id": p.id,
            "messages": [
                {"role": "user", "content": p.prompt},
                {"role": "assistant", "content": p.solution or ""},
            ],
        }
        for batch in batches
        for p in batch
        for _ in range(a.group_size)
    ]
    want = [uids[r["id"]] for r in rows]
    loops = {"uniopd": (run_uniopd, uprobe)}
    if "trl-dist" in names:
        run, probe, ids = trl_dist_system(a, root / "trl-dist", baton, rows)
        loops["trl-dist"] = (run, probe)
        notes.append(f"trl-dist prompt token ids == uniopd's: {ids == want}")
    if "trl-gkd" in names:
        run, probe, ids = trl_gkd_system(a, root / "trl-gkd", baton, rows)
        loops["trl-gkd"] = (run, probe)
        notes.append(f"trl-gkd prompt token ids == uniopd's: {ids == want}")
    loops = {n: loops[n] for n in names}

    def body(name, run):
        def target():
            try:
                run()
            except Abort:
                baton.finished(name)
            except BaseException as exc:  # reported by the main thread
                baton.finished(name, exc)
            else:
                baton.finished(name)

        return target

    threads = {
        n: threading.Thread(target=body(n, r), name=n, daemon=True) for n, (r, _) in loops.items()
    }
    gen_at_gate = {n: [] for n in names}
    try:
        for n, t in threads.items():
            t.start()
            baton.wait_parked(n, 1)  # set-up done, at the first step's gate
            gen_at_gate[n].append(loops[n][1].snapshot())
        for _ in range(steps - 1):
            for n in names:
                baton.run_step(n)
                gen_at_gate[n].append(loops[n][1].snapshot())
        for n in names:
            baton.run_to_end(n, threads[n])
    except BaseException:
        baton.stop()
        raise
    finally:
        tmp.cleanup()

    # ------------------------------------------------------------------------------ figures
    counted = range(a.warmup, a.warmup + a.reps)
    results: dict[str, dict] = {}
    for n in names:
        step_s = [baton.arrivals[n][k + 1] - baton.starts[n][k] for k in counted]
        g = gen_at_gate[n]
        gen_s = [g[k + 1][0] - g[k][0] for k in counted]
        gen_rows = [g[k + 1][1] - g[k][1] for k in counted]
        gen_tok = [g[k + 1][2] - g[k][2] for k in counted]
        med = statistics.median(step_s)
        results[n] = {
            "step_seconds": [round(s, 4) for s in step_s],
            "median_step_seconds": round(med, 4),
            "samples_per_s": round(n_rows / med, 3),
            "generate_seconds": [round(s, 4) for s in gen_s],
            "generate_share": round(sum(gen_s) / sum(step_s), 4),
            "generated_rows_per_step": statistics.mean(gen_rows) if gen_rows else 0,
            "mean_response_tokens": round(sum(gen_tok) / max(1, sum(gen_rows)), 2),
            "sampling_processors": sorted("+".join(x) or "(none)" for x in loops[n][1].processors),
        }
    if "uniopd" in results and len(phases) >= a.warmup + a.reps:
        cnt = [phases[k] for k in counted]
        rollout = sum(m.get("time/rollout", 0.0) for m in cnt)
        results["uniopd"]["rollout_phase_share"] = round(
            rollout / sum(results["uniopd"]["step_seconds"]), 4
        )
        results["uniopd"]["phase_seconds"] = {
            k: round(statistics.median(m.get(k, 0.0) for m in cnt), 4)
            for k in sorted({k for m in cnt for k in m})
        }
    ratios = {
        f"uniopd/{n}": round(results["uniopd"]["samples_per_s"] / results[n]["samples_per_s"], 3)
        for n in names
        if n != "uniopd" and "uniopd" in results
    }
    summary = {
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        "rows_per_step": n_rows,
        "prompts": a.prompts,
        "group_size": a.group_size,
        "new_tokens": a.new_tokens,
        "warmup_rounds": a.warmup,
        "counted_rounds": a.reps,
        "method": a.method,
        "engine": a.engine or "(uniopd's default)",
        "uniopd_set": a.uniopd_set,
        "ratios": ratios,
        "notes": notes,
        "at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"{'system':10}{'samples/s':>11}{'step s':>9}{'gen share':>11}{'resp tok':>10}  sampling")
    for n, r in results.items():
        print(
            f"{n:10}{r['samples_per_s']:11.2f}{r['median_step_seconds']:9.3f}"
            f"{100 * r['generate_share']:10.1f}%{r['mean_response_tokens']:10.1f}  "
            + ", ".join(r["sampling_processors"])
        )
    if "uniopd" in results and "rollout_phase_share" in results["uniopd"]:
        print(
            f"uniopd rollout phase (generate + packing): "
            f"{100 * results['uniopd']['rollout_phase_share']:.1f}% of its step; median phases "
            + json.dumps(results["uniopd"]["phase_seconds"])
        )
    for k, v in ratios.items():
        print(f"ratio {k}: {v:.3f}x")
    for note in notes:
        print(f"note: {note}")
    print("summary " + json.dumps(summary))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "systems": results}, indent=1))


if __name__ == "__main__":
    main()
