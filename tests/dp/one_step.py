"""One policy update on a fixed rollout batch, in however many processes launched this script.

    python tests/dp/one_step.py STUDENT TEACHER METHOD OUT               # one process, B prompts
    (METHOD: opd | uniopd, with -fsdp: the student sharded over the processes)
    accelerate launch --multi_gpu --num_processes 2 tests/dp/one_step.py ...  # 2 x B/2 prompts

Every process builds the same B x G batch (seeded), keeps its share of whole groups, and runs the
trainer's own pieces on it: teacher scoring, online balancing over every process's outcomes,
PolicyUpdate with global-scope calibration. The first process saves the student's weights and
the step's metrics to OUT, for tests/test_data_parallel.py to compare.
"""

from __future__ import annotations

import sys

import torch

from uniopd.config import ExperimentConfig
from uniopd.engine import loading
from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import full_state_dict, is_sharded, shard_model
from uniopd.engine.precision import Precision
from uniopd.engine.sequences import pack
from uniopd.engine.teachers import TeacherPool
from uniopd.loop.optim import make_optimizer
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.sharding import balance_globally
from uniopd.loop.update import PolicyUpdate

B, G = 4, 4  # prompts, rollouts per prompt


def config(student: str, teacher: str, method: str) -> ExperimentConfig:
    recipe: dict = {}
    if method.startswith("uniopd"):  # the whole recipe, statistics over the whole batch
        recipe = {
            "balance": {"online": {"enabled": True, "scope": "global"}},
            "calibration": {"margin_shift": True, "scope": "global", "delta": 0.4},
        }
    return ExperimentConfig.model_validate(
        {
            "name": "dp",
            "device": "cpu",
            "student": student,
            "teachers": {"math": teacher},
            "data": {"train": ["builtin:math/train"]},
            "rollout": {"group_size": G, "prompts_per_batch": B},
            "train": {"lr": 1e-3, "warmup_steps": 0, "epochs": 2, "micro_batch_size": 3},
            **recipe,
        }
    )


def fixed_batch(vocab: int):
    """B x G rows of varied prompt and response lengths; outcomes mixed within and across groups."""
    g = torch.Generator().manual_seed(0)
    prompts, responses = [], []
    for i in range(B):
        prompt = torch.randint(5, vocab, (3 + i,), generator=g).tolist()
        for _ in range(G):
            prompts.append(prompt)
            n = 2 + int(torch.randint(0, 6, (1,), generator=g))
            responses.append(torch.randint(5, vocab, (n,), generator=g).tolist())
    correct = torch.tensor([float((i * 7 + i // G) % 3 == 0) for i in range(B * G)])
    return prompts, responses, correct


def main(student_path: str, teacher_path: str, method: str, out: str) -> None:
    cfg = config(student_path, teacher_path, method)
    dist = Dist.from_env(cpu=True)
    cpu = torch.device("cpu")
    tok = loading.load_tokenizer(student_path)
    student = loading.load_model(student_path, cpu, torch.float32, trainable=True)
    if method.endswith("-fsdp"):  # each process holds half of the student
        student = shard_model(student, cpu, dist.world)
    teacher = loading.load_model(teacher_path, cpu, torch.float32, trainable=False)
    prompts, responses, correct = fixed_batch(student.config.vocab_size)
    mine = dist.shard(list(range(B)))  # this process's groups
    rows = [i * G + j for i in mine for j in range(G)]
    batch = pack([prompts[r] for r in rows], [responses[r] for r in rows], tok.pad_token_id)
    correct = correct[rows]
    group_ids = torch.tensor([r // G for r in rows])
    keep = torch.ones(len(rows), dtype=torch.bool)
    if cfg.balance.online.enabled:
        gen = torch.Generator().manual_seed(3)
        keep = balance_globally(cfg.balance.online.balancer(), correct, group_ids, gen, dist)
    pool = TeacherPool({"t": teacher}, {"math": "t"})
    domains = ["math"] * len(rows)
    scored = TeacherSignals(domains, teacher_logp_N_T=pool.logprobs(batch, domains))
    optimizer, _ = make_optimizer(student, cfg.train)
    update = PolicyUpdate(
        student,
        optimizer,
        cfg.method.objectives(),
        cfg.train,
        calibrator=cfg.calibration.calibrator(),
        precision=Precision("fp32", cpu),
        dist=dist,
    )
    result = update(batch, scored, correct, group_ids, keep, correct.clone())
    kept = dist.sum(float(keep.sum()))
    weights = full_state_dict(student) if is_sharded(student) else student.state_dict()
    if dist.is_main:
        metrics = {"loss": result.loss, "grad_norm": result.grad_norm, "kept": kept}
        metrics.update(result.advantages.calibration)
        torch.save({"weights": weights, "metrics": metrics}, out)
    dist.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
