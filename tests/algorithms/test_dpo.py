"""The preference objectives (docs/method.md 9): DPO against TRL's DPOTrainer loss (TRL 1.16),
Omni-DPO's weights, c-NLL and its reduction to DPO, C-DPO's reduction to DPO, and the objectives'
pair losses against the algorithm functions."""

import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from uniopd.algorithms.dpo import (
    calibrated_nll,
    cdpo_loss,
    dpo_loss,
    dynamics_weight,
    omni_dpo_loss,
    quality_weight,
    sequence_logps,
)
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.preference import Pairs, PairSignals


def _batch(seed, P=6, T=7):
    """Per-token log-probs of P chosen and P rejected responses (policy and reference), their
    response masks (each at least one token) and scores."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(2 * P, T, generator=g, dtype=torch.float64) * 3
    ref = -torch.rand(2 * P, T, generator=g, dtype=torch.float64) * 3
    lengths = torch.randint(1, T + 1, (2 * P,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float64)
    scores = torch.rand(2 * P, generator=g, dtype=torch.float64) * 10
    return logp, ref, mask, scores


def _trl_dpo_loss(logp, ref, mask, beta):
    """TRL's DPOTrainer._compute_loss (the "sigmoid" loss, reverse KL: standard DPO) on given
    per-token log-probs. Its trainer and model are stand-ins holding exactly what that method
    reads: the model's output carries the log-probs, the reference's come precomputed."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import DPOTrainer

    n, T = logp.shape
    pad = torch.zeros(n, 1, dtype=logp.dtype)  # TRL shifts: token t+1 is scored at position t
    completion_mask = torch.cat([torch.zeros(n, 1), mask.float()], dim=1).long()
    ref_logps = (ref * mask).sum(-1)
    outputs = SimpleNamespace(
        log_probs=logp * mask,
        entropy=torch.zeros(n, T),
        mean_logits=torch.zeros(n, T),
        is_top1=torch.zeros(n, T, dtype=torch.bool),
    )
    accelerator = SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=accelerator,
        aux_loss_enabled=False,
        precompute_ref_logps=True,
        ld_alpha=None,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        use_weighting=False,
        _metrics={"train": __import__("collections").defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        args=SimpleNamespace(gradient_checkpointing_kwargs=None),
    )
    inputs = {
        "input_ids": torch.cat([pad.long(), torch.ones(n, T, dtype=torch.long)], dim=1),
        "attention_mask": torch.ones(n, T + 1, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_logps[: n // 2],
        "ref_rejected_logps": ref_logps[n // 2 :],
    }
    return DPOTrainer._compute_loss(trainer, lambda **kw: outputs, inputs, False)


@pytest.mark.slow  # imports TRL (about 3 s)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_equals_trl_dpo_loss_on_random_batches(seed, beta):
    logp, ref, mask, _ = _batch(seed)
    P = logp.shape[0] // 2
    seq, rseq = sequence_logps(logp, mask), sequence_logps(ref, mask)
    ours = dpo_loss(seq[:P], seq[P:], rseq[:P], rseq[P:], beta).mean()
    theirs = _trl_dpo_loss(logp, ref, mask, beta)
    assert abs(float(ours) - float(theirs)) < 1e-6


def test_dpo_loss_is_minus_log_sigmoid_of_the_reward_margin():
    # chosen gains 1.0 over the reference, rejected loses 0.5: margin 1.5
    got = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5]), 0.5
    )
    assert torch.allclose(got, -F.logsigmoid(torch.tensor([0.75])))


def test_sequence_logps_sum_and_length_norm():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-4.0, -9.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert sequence_logps(logp, mask).tolist() == [-3.0, -4.0]
    assert sequence_logps(logp, mask, length_norm=True).tolist() == [-1.5, -4.0]


def test_quality_weight_grows_with_the_score_margin():
    w = quality_weight(torch.tensor([9.0, 9.0, 5.0]), torch.tensor([1.0, 8.0, 5.0]), 0.7)
    assert w[0] > w[1] > w[2] and abs(float(w[2]) - 0.5) < 1e-7
    assert abs(float(w[0]) - float(torch.sigmoid(torch.tensor(5.6)))) < 1e-7


def test_dynamics_weight_is_a_focal_weight_on_the_margin():
    c, r = torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([-3.0, -2.0, -1.0])
    w = dynamics_weight(c, r, beta=2.0, tau_ref=2.0, gamma=3.0)
    # well separated pairs fade out, pairs the model has backwards keep nearly full weight
    assert w[0] < w[1] < w[2] < 1
    assert torch.allclose(w, (1 - torch.sigmoid(2.0 * (c - r) - 2.0)) ** 3)
    assert torch.equal(dynamics_weight(c, r, 2.0, 2.0, 0.0), torch.ones(3))
    # implicit margin: the reference's log-ratio comes off
    implicit = dynamics_weight(
        c, r, 2.0, 2.0, 3.0, torch.tensor([-1.0] * 3), torch.tensor([-3.0] * 3)
    )
    assert torch.allclose(implicit, (1 - torch.sigmoid(2.0 * (c - r - 2.0) - 2.0)) ** 3)


def test_calibrated_nll_acts_only_below_the_reference_on_good_chosen_responses():
    chosen, ref = torch.tensor([-2.0, -1.0, -2.0]), torch.tensor([-1.0, -2.0, -1.0])
    score = torch.tensor([9.0, 9.0, 3.0])
    assert calibrated_nll(chosen, ref, score, tau_good=8.0).tolist() == [2.0, 0.0, 0.0]
    assert calibrated_nll(chosen, ref, score, tau_good=None).tolist() == [2.0, 0.0, 2.0]


def test_omni_dpo_with_both_weights_one_and_no_c_nll_is_dpo():
    logp, ref, mask, scores = _batch(5)
    P = logp.shape[0] // 2
    seq, rseq = sequence_logps(logp, mask), sequence_logps(ref, mask)
    args = (seq[:P], seq[P:], rseq[:P], rseq[P:])
    dpo = dpo_loss(*args, 2.0)
    for eta, gamma in [(None, None), (None, 0.0)]:  # switched off, or gamma 0 (w_perf = 1)
        omni = omni_dpo_loss(
            *args,
            scores[:P],
            scores[P:],
            beta=2.0,
            eta=eta,
            tau_ref=2.0,
            gamma=gamma,
            nll_lambda=0.0,
            tau_good=None,
        )
        torch.testing.assert_close(omni, dpo, rtol=0, atol=1e-12)


def test_omni_dpo_is_the_weighted_dpo_plus_the_c_nll():
    logp, ref, mask, s = _batch(6)
    P = logp.shape[0] // 2
    seq, rseq = sequence_logps(logp, mask, True), sequence_logps(ref, mask, True)
    c, r, rc, rr = seq[:P], seq[P:], rseq[:P], rseq[P:]
    got = omni_dpo_loss(
        c,
        r,
        rc,
        rr,
        s[:P],
        s[P:],
        beta=2.0,
        eta=0.7,
        tau_ref=2.0,
        gamma=3.0,
        nll_lambda=0.2,
        tau_good=5.0,
    )
    w_qual = torch.sigmoid(0.7 * (s[:P] - s[P:]))
    w_perf = (1 - torch.sigmoid(2.0 * (c - r) - 2.0)) ** 3
    gate = ((rc > c) & (s[:P] >= 5.0)).double()
    want = -w_qual * w_perf * F.logsigmoid(2.0 * ((c - rc) - (r - rr))) - 0.2 * gate * c
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_cdpo_on_one_sentence_responses_is_dpo():
    logp, ref, mask, _ = _batch(7)
    P = logp.shape[0] // 2
    chosen, rejected = torch.arange(P), torch.arange(P, 2 * P)
    got = cdpo_loss(logp, ref, mask, chosen, rejected, beta=0.3)
    seq, rseq = sequence_logps(logp, mask), sequence_logps(ref, mask)
    torch.testing.assert_close(got, dpo_loss(seq[:P], seq[P:], rseq[:P], rseq[P:], 0.3))


def test_cdpo_learns_only_where_the_sentences_differ():
    """A shared context before the deciding sentence: the context's log-probs cancel in the DPO
    margin, so weighting only the sentence gives the same summed loss, and the sentence's own
    tokens are all that C-DPO's length-normalised loss reads."""
    logp, ref, mask, _ = _batch(8, P=3, T=8)
    mask = torch.ones_like(mask)
    context = torch.zeros_like(mask)
    context[:, :3] = 1  # the first 3 tokens: the shared non-hallucinated context
    logp[3:, :3], ref[3:, :3] = logp[:3, :3], ref[:3, :3]  # the same context in both responses
    chosen, rejected = torch.arange(3), torch.arange(3, 6)
    sentence = mask - context
    whole = cdpo_loss(logp, ref, mask, chosen, rejected, 0.5)
    torch.testing.assert_close(cdpo_loss(logp, ref, sentence, chosen, rejected, 0.5), whole)
    normed = cdpo_loss(logp, ref, sentence, chosen, rejected, 0.5, length_norm=True)
    logp2 = logp.clone()
    logp2[:, :3] -= 5.0  # the context moves: the sentence-normalised loss does not
    moved = cdpo_loss(logp2, ref, sentence, chosen, rejected, 0.5, length_norm=True)
    torch.testing.assert_close(normed, moved)


@pytest.mark.parametrize("name", ["dpo", "omni_dpo", "cdpo"])
def test_each_objective_pair_loss_matches_its_function(name):
    logp, ref, mask, scores = _batch(9)
    P = logp.shape[0] // 2
    pairs = Pairs(torch.arange(P), torch.arange(P, 2 * P), scores)
    objective = OBJECTIVES.get(name)()
    got = objective.pair_loss(PairSignals(logp, ref, mask, pairs))
    o = objective.options
    seq = sequence_logps(logp, mask, o.length_norm)
    rseq = sequence_logps(ref, mask, o.length_norm)
    args = (seq[:P], seq[P:], rseq[:P], rseq[P:])
    if name == "omni_dpo":
        want = omni_dpo_loss(
            *args,
            scores[:P],
            scores[P:],
            beta=o.beta,
            eta=o.eta,
            tau_ref=o.tau_ref,
            gamma=o.gamma,
            nll_lambda=o.nll_lambda,
            tau_good=o.tau_good,
        )
    else:
        want = dpo_loss(*args, o.beta)
    torch.testing.assert_close(got, want)
