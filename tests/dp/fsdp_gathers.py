"""What an FSDP-sharded student gathers under bf16-mixed, in however many processes launched this
script:

    accelerate launch --multi_gpu --num_processes 2 tests/dp/fsdp_gathers.py STUDENT OUT

The student is sharded as `load_parts` shards it under bf16-mixed. Every all-gather and
reduce-scatter FSDP issues is recorded with its dtype (torch 2.13's FSDP2 calls
`torch.distributed.all_gather_single` and `reduce_scatter_single` through its default comms,
torch/distributed/fsdp/_fully_shard/_fsdp_collectives.py; the spies call them through), during
one training pass (forward and backward) and during one `hf` engine rollout of NEW_TOKENS tokens.
Each process saves the records to OUT.<rank>, for tests/engine/test_memory_fit.py.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from uniopd.engine import loading
from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import shard_model
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.precision import Precision
from uniopd.engine.rollout.hf import HFEngine, generation_config
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.sequences import pack

NEW_TOKENS = 6
PROMPTS = [[11, 12, 13, 14], [21, 22]]


class Spy:
    """Records the dtype of each call's tensor argument, then calls the real collective."""

    def __init__(self, name: str, arg: str):
        self.name, self.arg, self.real = name, arg, getattr(dist, name)
        self.dtypes: list[str] = []
        setattr(dist, name, self)

    def __call__(self, *args, **kwargs):
        tensor = kwargs[self.arg] if self.arg in kwargs else args[1]
        self.dtypes.append(str(tensor.dtype))
        return self.real(*args, **kwargs)

    def take(self) -> list[str]:
        out, self.dtypes = self.dtypes, []
        return out


def main(student_path: str, out: str) -> None:
    world = Dist.from_env(cpu=True)
    cpu = torch.device("cpu")
    precision = Precision("bf16-mixed", cpu)
    tok = loading.load_tokenizer(student_path)
    student = loading.load_model(student_path, cpu, precision.student_dtype, trainable=True)
    student = shard_model(student, cpu, world.world, precision.compute_dtype)
    gathers = Spy("all_gather_single", "input_tensor")
    reductions = Spy("reduce_scatter_single", "input")

    batch = pack(PROMPTS, [[31, 32, 33], [41]], tok.pad_token_id)
    with precision.autocast():
        logp = response_logprobs(student, batch)
    logp.sum().backward()
    record = {"train_gathers": gathers.take(), "train_reductions": reductions.take()}
    record["master_dtypes"] = sorted({str(p.dtype) for p in student.parameters()})
    record["grad_dtypes"] = sorted({str(p.grad.dtype) for p in student.parameters()})  # type: ignore[union-attr]

    greedy = SamplingSettings(NEW_TOKENS, (), tok.pad_token_id, temperature=0.0)
    with precision.autocast():
        generated = HFEngine(student, tok).generate(PROMPTS, greedy)
    record["decode_gathers"] = gathers.take()
    layers = [m for m in student.modules() if isinstance(m, FSDPModule) and m is not student]
    record["layers"] = len(layers)
    record["resharded_after"] = all(
        isinstance(p, DTensor) for unit in layers for p in unit.parameters()
    )
    record["responses"] = generated.responses
    with precision.autocast(), torch.no_grad():  # the same greedy rollout, gathering per token
        plain = student.generate(
            input_ids=torch.tensor([PROMPTS[0], [tok.pad_token_id] * 2 + PROMPTS[1]]),
            attention_mask=torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]]),
            generation_config=generation_config(greedy),
            synced_gpus=True,
        )
    record["plain_responses"] = plain[:, 4:].tolist()
    record["plain_gathers"] = gathers.take()
    torch.save(record, f"{out}.{world.rank}")
    world.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
