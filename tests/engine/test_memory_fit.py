"""Memory the first update of a 4B student must not spend: gradients summed bucket by bucket,
not through a float32 copy of all of them; the log-prob pass keeps one hidden state, not every
layer's; a sharded student gathers its weights in bf16 under bf16-mixed (float32 shards and Adam
state), once per rollout rather than once per decoded token."""

import os
import subprocess
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from uniopd.config.train import TrainConfig
from uniopd.engine import distributed, loading
from uniopd.engine.fsdp import shard_model
from uniopd.engine.logprobs import _forward, response_hidden, response_logprobs
from uniopd.engine.precision import Precision
from uniopd.engine.sequences import pack
from uniopd.launch.multiprocess import free_port, launch_command
from uniopd.loop.optim import make_optimizer

CPU = torch.device("cpu")
DP = Path(__file__).parent.parent / "dp"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _launch(script: str, *args) -> list[dict]:
    """`script` run by accelerate's launcher in 2 processes (gloo); what each process saved."""
    out = args[-1]
    cmd = launch_command(2, [])[:-2] + [str(DP / script), *map(str, args)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(f"{out}.{rank}") for rank in range(2)]


def _batch(tok, vocab, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(5, vocab, (2 + 3 * (i % 3),), generator=g).tolist() for i in range(n)]
    responses = [
        torch.randint(5, vocab, (1 + 4 * (i % 4),), generator=g).tolist() for i in range(n)
    ]
    return pack(prompts, responses, tok.pad_token_id)


# ---------------------------------------------------------------- gradient sum across processes
def test_buckets_cover_every_gradient_element_once_in_order():
    grads = [torch.zeros(s) for s in (7, 3, 20, 1, 4)]
    buckets = list(distributed.grad_buckets(grads, 6))
    assert all(sum(b - a for _, a, b in bucket) <= 6 for bucket in buckets)
    flat = [(id(g), i) for bucket in buckets for g, a, b in bucket for i in range(a, b)]
    assert flat == [(id(g), i) for g in grads for i in range(g.numel())]


@pytest.mark.slow  # starts a 2-process group
def test_bucketed_gradient_sum_equals_the_flat_one_within_one_bucket_of_memory(tmp_path):
    ranks = _launch("sum_grads.py", tmp_path / "sums")
    for got in ranks:
        for flat, bucketed in zip(got["flat"], got["bucketed"], strict=True):
            assert flat.dtype == bucketed.dtype and torch.equal(flat, bucketed)
        # the meter sees the flat copy (larger than a bucket) and at most one bucket now
        bucket = distributed.GRAD_BUCKET_BYTES
        assert got["grad_bytes"] > bucket and got["flat_peak_bytes"] > got["grad_bytes"]
        assert 0 < got["peak_bytes"] <= bucket, got["peak_bytes"]
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["bucketed"], ranks[1]["bucketed"]))


# ---------------------------------------------------------------- hidden states of the log-prob pass
@pytest.fixture
def model_and_tok(make_checkpoint):
    path = str(make_checkpoint(11, layers=4))
    return loading.load_model(path, CPU, torch.float32, True), loading.load_tokenizer(path)


def test_logprob_pass_keeps_no_layer_hidden_state_beyond_its_use(model_and_tok):
    """Counted when the output head runs (every layer done): the layers' outputs still alive.
    Without gradients nothing needs them any more; output_hidden_states=True kept all 4."""
    model, tok = model_and_tok
    outputs: list[weakref.ref] = []
    alive_at_head: list[int] = []
    for layer in model.model.layers:
        layer.register_forward_hook(lambda m, i, o: outputs.append(weakref.ref(o)))
    model.lm_head.register_forward_pre_hook(
        lambda m, i: alive_at_head.append(sum(r() is not None for r in outputs))
    )
    with torch.no_grad():
        response_logprobs(model, _batch(tok, model.config.vocab_size))
    # the model's own call of the head comes first (then the check and the log-prob chunks)
    assert len(outputs) == 4 and alive_at_head[0] == 0


def test_hidden_states_and_logprobs_are_what_output_hidden_states_gave(model_and_tok):
    model, tok = model_and_tok
    batch = _batch(tok, model.config.vocab_size)
    with torch.no_grad():
        before = _forward(model, batch, output_hidden_states=True).hidden_states[-1]
        hidden, head = response_hidden(model, batch)
        logp = response_logprobs(model, batch)
    assert torch.equal(hidden, before[:, batch.prompt_width - 1 : -1])
    mask = batch.response_mask_N_T.bool()
    want = torch.log_softmax(head(before[:, batch.prompt_width - 1 : -1]), -1)
    want = want.gather(-1, batch.response_ids_N_T[..., None]).squeeze(-1)
    assert torch.allclose(logp[mask], want[mask], atol=1e-6)


# ---------------------------------------------------------------- FSDP mixed precision
@pytest.fixture
def one_process_group():
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_sharded_student_computes_in_bf16_and_keeps_float32_masters(
    one_process_group, make_checkpoint
):
    path = str(make_checkpoint(11))
    precision = Precision("bf16-mixed", CPU)
    model = loading.load_model(path, CPU, precision.student_dtype, True)
    model = shard_model(model, CPU, 1, precision.compute_dtype)
    seen = []
    q_proj = model.model.layers[0].self_attn.q_proj
    q_proj.register_forward_hook(lambda m, i, o: seen.append(m.weight.dtype))
    optimizer, _ = make_optimizer(model, TrainConfig(lr=1e-3, warmup_steps=0))
    batch = _batch(loading.load_tokenizer(path), model.config.vocab_size)
    with precision.autocast():
        logp = response_logprobs(model, batch)
    logp.sum().backward()
    optimizer.step()
    assert seen == [torch.bfloat16]  # the gathered weights the forward computed with
    assert all(isinstance(p, DTensor) and p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    moments = [s["exp_avg"] for s in optimizer.state.values()]
    assert moments and all(m.dtype == torch.float32 for m in moments)


@pytest.mark.slow  # starts a 2-process group
def test_sharded_rollout_gathers_bf16_weights_once_not_per_token(tmp_path, make_checkpoint):
    ranks = _launch("fsdp_gathers.py", make_checkpoint(11), tmp_path / "gathers")
    for got in ranks:
        assert got["master_dtypes"] == got["grad_dtypes"] == ["torch.float32"]
        assert set(got["train_gathers"]) == {"torch.bfloat16"}
        assert set(got["train_reductions"]) == {"torch.float32"}
        # each layer gathered once for the whole rollout (and the root, kept by torch), in bf16
        assert got["decode_gathers"] == ["torch.bfloat16"] * (got["layers"] + 1)
        assert got["resharded_after"]
        # the same greedy rollout as a plain generate, which gathers each layer per token
        assert got["responses"] == got["plain_responses"]
        assert len(got["plain_gathers"]) >= got["layers"] * 6
