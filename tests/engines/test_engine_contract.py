"""One contract for every registered rollout engine, on real 2-layer Qwen2 checkpoints (no mocks).

An engine that cannot run here is skipped with the reason: vllm when it is not installed or there
is no CUDA GPU. hf and hf-paged run on the CPU. Log-probs are compared with the trainer's
(`response_logprobs` on the packed batch) in float32 on the CPU within 1e-4.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.rollout import ENGINES, engine_problems, make_engine, rollout_batch
from uniopd.engine.rollout.base import logprobs_tensor
from uniopd.engine.sampling import resolve_sampling
from uniopd.engine.sequences import pack

ATOL = 1e-4  # float32 on a CPU: engine vs trainer log-probs of the same tokens
PROMPTS = ["Ana has 7 pens.", "Write f(x).", "How many pens now?"]


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "vllm" else "cpu")


def _runnable(name: str) -> None:
    reasons = engine_problems(name, sharded=False)
    if reasons:
        pytest.skip(f"{name}: {'; '.join(reasons)}")
    if _device(name).type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"{name}: needs a CUDA GPU")


# transformers' paged (continuous-batching) generation takes seconds per test on the CPU
SLOW_ENGINES = {"hf-paged"}


@pytest.fixture(
    params=[
        pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ENGINES else n for n in ENGINES.names()
    ]
)
def engine_name(request) -> str:
    _runnable(request.param)
    return request.param


def _load(path, name):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.to(_device(name)), AutoTokenizer.from_pretrained(path)


def _prompt_ids(tok) -> list[list[int]]:
    return [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]


def test_rollouts_are_prompt_major_and_reproducible(engine_name, make_checkpoint):
    model, tok = _load(make_checkpoint(41), engine_name)
    engine = make_engine(engine_name, model, tok)
    s = resolve_sampling(tok, model, max_new_tokens=10)
    prompts = _prompt_ids(tok)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        batch, logp = rollout_batch(engine, prompts, 3, s)
        runs.append((batch.input_ids_N_L.clone(), batch.response_mask_N_T.clone()))
        assert batch.input_ids_N_L.shape[0] == 9 and batch.response_mask_N_T.shape[1] <= 10
        P = batch.prompt_width
        for i, p in enumerate(prompts):  # rows i*G .. i*G+G-1 share prompt i
            for r in range(i * 3, i * 3 + 3):
                assert batch.input_ids_N_L[r, P - len(p) : P].tolist() == p
        assert logp is None or logp.shape == batch.response_mask_N_T.shape
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    torch.manual_seed(6)
    other, _ = rollout_batch(engine, prompts, 3, s)
    assert not torch.equal(other.input_ids_N_L, runs[0][0])  # the seed matters


def _with_extra_eos(src, dst, token: int):
    """A copy of the checkpoint whose generation_config.json adds `token` as an EOS."""
    shutil.copytree(src, dst)
    path = dst / "generation_config.json"
    gen = json.loads(path.read_text()) if path.exists() else {}
    eos = gen.get("eos_token_id")
    gen["eos_token_id"] = [*([] if eos is None else [eos] if isinstance(eos, int) else eos), token]
    path.write_text(json.dumps(gen))
    return dst


@pytest.mark.parametrize("where", ["generation_config.json", "rollout.stop_token_ids"])
def test_stops_at_each_stop_token_and_at_max_new_tokens(
    engine_name, where, make_checkpoint, tmp_path
):
    src = make_checkpoint(42)
    model, tok = _load(src, engine_name)
    prompts = _prompt_ids(tok)
    greedy = {"temperature": 0.0}  # the same prefix every time, whatever the batch
    free = make_engine(engine_name, model, tok).generate(
        prompts, replace(resolve_sampling(tok, model, max_new_tokens=12), **greedy)
    )
    for row in free.responses:  # no stop among the tokens: every row runs to max_new_tokens
        if not set(row) & {tok.eos_token_id}:
            assert len(row) == 12
    # the first token row 0 produces at a position j >= 1 it did not produce before (else j = 0)
    row0 = free.responses[0]
    j = next((j for j in range(1, len(row0)) if row0[j] not in row0[:j]), 0)
    stop = row0[j]
    if where == "generation_config.json":
        model, tok = _load(_with_extra_eos(src, tmp_path / "ckpt", stop), engine_name)
        s = replace(resolve_sampling(tok, model, max_new_tokens=12), **greedy)
    else:
        s = resolve_sampling(tok, model, max_new_tokens=12, stop_token_ids=[stop])
        s = replace(s, **greedy)
    assert stop in s.stop_token_ids
    gen = make_engine(engine_name, model, tok).generate(prompts, s)
    assert gen.responses[0] == row0[: j + 1]  # kept, and nothing after it
    for row, whole in zip(gen.responses, free.responses):
        cut = next((k + 1 for k, t in enumerate(whole) if t in s.stop_token_ids), len(whole))
        assert row == whole[:cut]  # a finished row carries no padding
        assert all(t not in s.stop_token_ids for t in row[:-1])


def test_engine_logprobs_equal_the_trainers(engine_name, make_checkpoint):
    model, tok = _load(make_checkpoint(43), engine_name)
    engine = make_engine(engine_name, model, tok)
    for s in (
        resolve_sampling(tok, model, max_new_tokens=10),  # plain sampling
        resolve_sampling(tok, model, max_new_tokens=10, temperature=0.7, top_k=20),
    ):
        torch.manual_seed(0)
        batch, logp = rollout_batch(engine, _prompt_ids(tok), 2, s)
        if logp is None:
            assert engine_name == "hf-paged" and not s.plain  # (documented: raw log-probs only)
            continue
        with torch.no_grad():
            trainer = response_logprobs(model, batch.to(model.device)).cpu()
        mask = batch.response_mask_N_T > 0
        assert (logp - trainer)[mask].abs().max() < ATOL


def test_after_an_optimizer_step_the_engine_samples_the_new_weights(engine_name, make_checkpoint):
    model, tok = _load(make_checkpoint(44), engine_name)
    engine = make_engine(engine_name, model, tok)
    s = resolve_sampling(tok, model, max_new_tokens=8)
    prompts = _prompt_ids(tok)
    torch.manual_seed(0)
    before = engine.generate(prompts, s)
    # one optimizer step that makes token 7 likely everywhere
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = pack(prompts, [[7] * 8 for _ in prompts], s.pad_token_id).to(model.device)
    (-response_logprobs(model, batch).sum()).backward()
    opt.step()
    opt.zero_grad()
    engine.update_weights(model)
    torch.manual_seed(0)
    after = engine.generate(prompts, s)
    assert after.responses != before.responses
    packed = pack(prompts, after.responses, s.pad_token_id)
    with torch.no_grad():
        trainer = response_logprobs(model, packed.to(model.device)).cpu()
    engine_logp = logprobs_tensor(after, packed.response_mask_N_T.shape[1])
    assert engine_logp is not None
    mask = packed.response_mask_N_T > 0
    assert (engine_logp - trainer)[mask].abs().max() < ATOL


def _near_uniform(path, name):
    """The checkpoint with an output head of tiny random weights: the next-token distribution is
    close to uniform over the 512-token vocabulary, without exact ties (a top-k of tied logits
    would keep them all and hide a default top_k)."""
    model, tok = _load(path, name)
    g = torch.Generator().manual_seed(0)
    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(
        torch.randn(head.weight.shape, generator=g).to(head.weight.device) * 1e-3
    )
    return model, tok


def _first_tokens(engine, tok, model, n=600, **settings) -> set[int]:
    s = resolve_sampling(tok, model, max_new_tokens=1, **settings)
    torch.manual_seed(0)
    gen = engine.generate([_prompt_ids(tok)[0]] * n, s)
    return {r[0] for r in gen.responses if r}


def test_no_library_default_and_every_setting_reaches_the_engine(engine_name, make_checkpoint):
    model, tok = _near_uniform(make_checkpoint(45), engine_name)
    engine = make_engine(engine_name, model, tok)
    engine.update_weights(model)
    assert len(_first_tokens(engine, tok, model, top_k=0)) > 50  # off is off: no top_k = 50
    assert len(_first_tokens(engine, tok, model, top_k=5)) <= 5
    assert len(_first_tokens(engine, tok, model, top_p=0.05)) <= 0.05 * 512 + 2
    assert len(_first_tokens(engine, tok, model, temperature=1e-4)) <= 2  # nearly greedy


def test_unknown_or_uninstalled_engine_and_sharded_students_are_refused_at_planning(tmp_path):
    from uniopd.config import ExperimentConfig
    from uniopd.setup.plan import PlanError, make_plan

    def plan(**over):
        cfg = {
            "name": "e",
            "device": "cpu",
            "student": "builtin:student",
            "method": {"name": "grpo"},
            "data": {"train": ["builtin:math/train"], "eval": [], "limit": 4},
            "rollout": {"group_size": 2, "prompts_per_batch": 2, **over.pop("rollout", {})},
            **over,
        }
        return make_plan(ExperimentConfig.model_validate(cfg), processes=over.get("_p", 1))

    with pytest.raises(PlanError, match=r"unknown rollout engine 'nope'; known: hf, hf-paged"):
        plan(rollout={"engine": "nope"})
    if engine_problems("vllm", sharded=False):
        with pytest.raises(PlanError, match=r"vllm.*pip install 'uniopd\[gpu\]'"):
            plan(rollout={"engine": "vllm"})
    reasons = engine_problems("hf-paged", sharded=True)
    assert any("FSDP-sharded" in r for r in reasons)
    assert not engine_problems("hf", sharded=True)
