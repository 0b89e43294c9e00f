"""The describe task (SENTINEL on the tiny world, docs/method.md 9.3): the two detectors' agreement
rule, sentence classification, CHAIR on hand-made responses, and the context-coherent sentence
pairs down to the gradient the update takes from them. The loop runs them in
tests/test_describe_run.py."""

import random
from pathlib import Path

import pytest
import torch

from uniopd.config.load import ConfigError, load_experiment
from uniopd.engine.distributed import Dist
from uniopd.loop.preference import PreferenceUpdate
from uniopd.loop.sentinel import SentencePair, first_sentence, next_pair, pair_rows
from uniopd.objectives import OBJECTIVES
from uniopd.tasks import describe
from uniopd.tasks.problem import Problem
from uniopd.verifiers.describe import DescribeVerifier, chair, classify, mentions, sentences
from uniopd.verifiers.detectors import (
    DETECTORS,
    Detector,
    agreement,
    detector_verdicts,
    truth_verdicts,
)

CDPO = Path(__file__).resolve().parents[1] / "experiments/preference/cdpo_describe.yaml"
SCENE = {"red": 3, "green": 0, "blue": 1, "yellow": 0}


def _problem(counts: dict, pid: str = "p0") -> Problem:
    return Problem(id=pid, domain="describe", prompt=describe.PROMPT, meta={"objects": counts})


def test_the_agreement_rule():
    assert agreement(True, True) == "real"
    assert agreement(False, False) == "hallucinated"
    assert agreement(True, False) == agreement(False, True) == "uncertain"


def test_detectors_are_fixed_per_scene_and_object_and_err_at_their_own_rates():
    a, b = DETECTORS
    assert a.miss_rate != b.miss_rate and a.false_rate != b.false_rate
    scenes = [f"scene-{i}" for i in range(3000)]
    for d in DETECTORS:
        missed = sum(not d.sees(s, {"red": 2}, "red") for s in scenes) / len(scenes)
        seen = sum(d.sees(s, {"red": 0}, "red") for s in scenes) / len(scenes)
        assert abs(missed - d.miss_rate) < 0.025 and abs(seen - d.false_rate) < 0.025
        assert [d.sees(s, {"red": 2}, "red") for s in scenes[:50]] == [
            d.sees(s, {"red": 2}, "red") for s in scenes[:50]
        ]
    # two detectors err independently: a copy with another name misses other scenes
    twin = Detector("twin", a.miss_rate, a.false_rate)
    assert [a.sees(s, {"red": 2}, "red") for s in scenes] != [
        twin.sees(s, {"red": 2}, "red") for s in scenes
    ]
    verdicts = detector_verdicts("scene-7", SCENE)
    for obj, verdict in verdicts.items():
        assert verdict == agreement(a.sees("scene-7", SCENE, obj), b.sees("scene-7", SCENE, obj))


def test_sentences_and_the_objects_they_mention():
    text = "There are 3 red squares. There is 1 blue square. There are no green squares. Red"
    assert sentences(text) == [
        "There are 3 red squares.",
        "There is 1 blue square.",
        "There are no green squares.",
        "Red",
    ]
    assert mentions(text) == {"red": 3, "blue": 1}  # 'no green' is no mention; red once
    assert mentions("A yellow square and 0 red squares.") == {"yellow": 1}
    assert mentions("Nothing here.") == {}


def test_a_sentence_is_hallucinated_when_it_mentions_a_hallucinated_object():
    verdicts = {"red": "real", "green": "hallucinated", "blue": "uncertain", "yellow": "real"}
    assert classify("There are 3 red squares.", verdicts) == "faithful"
    assert classify("There are 2 green squares.", verdicts) == "hallucinated"
    assert classify("There is 1 blue square.", verdicts) == "uncertain"
    assert classify("2 blue and 2 green squares.", verdicts) == "hallucinated"
    assert classify("The picture is small.", verdicts) == "faithful"


def test_chair_on_hand_made_responses():
    problems = [_problem(SCENE), _problem(SCENE), _problem({"red": 0, "green": 2, "blue": 0})]
    responses = [
        "There are 3 red squares. There is 1 blue square.",  # faithful and complete
        "There are 2 red squares. There are 4 green squares. There is 1 yellow square.",
        "There are 2 green squares. There are 2 green squares.",  # one object, named twice
    ]
    got = chair(problems, responses)
    # mentions: 2 + 3 + 1 = 6, hallucinated: green and yellow of the second = 2
    assert got["chair_i"] == pytest.approx(2 / 6)
    assert got["chair_s"] == pytest.approx(1 / 3)
    assert got["recall"] == pytest.approx((2 + 1 + 1) / (2 + 2 + 1))
    # counts of mentioned real objects: 3 red ok, 1 blue ok, 2 red wrong, 2 green ok
    assert got["count_accuracy"] == pytest.approx(3 / 4)
    # the outcome: every object of the picture and no other (counts aside)
    assert DescribeVerifier().grade(problems, responses) == [1.0, 0.0, 1.0]
    assert DescribeVerifier().grade(problems[:1], ["There are 3 red squares."]) == [0.0]
    assert DescribeVerifier().grade(problems[:1], [""]) == [0.0]


def test_describe_problems_carry_their_scene_and_the_habit_invents_one_object():
    rng = random.Random(0)
    problems = [describe.make_problem(rng, level) for level in describe.LEVELS * 10]
    for p in problems:  # the scene key is the layout: one letter per filled cell
        assert {c: p.meta["scene"].count(c[0]) for c in SCENE} == p.meta["objects"]
    assert [sum(k > 0 for k in p.meta["objects"].values()) for p in problems[:4]] == [1, 2, 3, 4]
    verifier = DescribeVerifier()
    assert verifier.grade(problems, [p.solution for p in problems]) == [1.0] * len(problems)
    assert chair(problems, [p.solution for p in problems])["chair_i"] == 0.0
    for p in problems:
        assert len(sentences(p.solution)) == p.meta["level"]
        invented = describe.hallucinated_solution(p, rng)
        said = mentions(invented)
        absent = [o for o in said if p.meta["objects"][o] == 0]
        assert len(absent) == (1 if p.meta["level"] < 4 else 0)
        assert set(said) - set(absent) == {o for o, k in p.meta["objects"].items() if k}


def _ids(text: str) -> list[int]:
    """Character-level token ids: the pair builder works on any tokenization."""
    return [ord(c) for c in text]


def _decode(ids) -> str:
    return "".join(chr(i) for i in ids)


STOP = 0


def test_pairs_share_their_context_exactly_and_reject_where_the_hallucination_starts():
    verdicts = truth_verdicts(SCENE)
    continuations = [
        _ids(" There are 2 green squares. There is 1 blue square.") + [STOP],  # hallucinated
        _ids(" There is 1 blue square.") + [STOP],  # faithful
        _ids(" There are 4 yellow squares. There are 2 green squares.") + [STOP],  # hallucinated
        [STOP],  # the description ended: no sentence
    ]
    faithful, rejected = next_pair(continuations, _decode, {STOP}, verdicts)
    assert _decode(faithful) == " There is 1 blue square."
    assert _decode(rejected) == " There are 2 green squares."  # the first hallucinated one
    assert first_sentence(_ids(" There is 1") + [STOP], _decode, {STOP}) == _ids(" There is 1")
    assert next_pair(continuations[1:2], _decode, {STOP}, verdicts) == (faithful, None)
    # uncertain sentences take no part
    unsure = {**verdicts, "green": "uncertain"}
    assert next_pair(continuations[:1], _decode, {STOP}, unsure) == (None, None)

    context = _ids("There are 3 red squares.")
    pair = SentencePair(_problem(SCENE), context, faithful, rejected)
    batch, weight = pair_rows([pair], {"p0": [7, 8, 9]}, None, pad_id=STOP)
    responses = batch.response_ids_N_T
    assert torch.equal(responses[0, : len(context)], responses[1, : len(context)])
    assert _decode(responses[0, : len(context)].tolist()) == "There are 3 red squares."
    for row, sentence in ((0, faithful), (1, rejected)):
        span = weight[row].nonzero().flatten()
        assert span.tolist() == list(range(len(context), len(context) + len(sentence)))
        assert responses[row, span].tolist() == sentence


def test_the_update_learns_from_the_sentences_alone():
    context, chosen, rejected = _ids("ab."), _ids(" cd."), _ids(" efgh.")
    pair = SentencePair(_problem(SCENE), context, chosen, rejected)
    batch, weight = pair_rows([pair], {"p0": [1, 2]}, None, pad_id=STOP)
    update = PreferenceUpdate([("cdpo", 1.0, OBJECTIVES.get("cdpo")())], Dist())
    mask = batch.response_mask_N_T
    step = update.pairs(
        torch.tensor([1.0, 0.0]),
        torch.tensor([0, 0]),
        torch.ones(2, dtype=torch.bool),
        mask,
        None,
        pair_weight_N_T=weight,
    )
    assert len(step.pairs["cdpo"]) == 1
    logp = -torch.rand(mask.shape) * mask
    grad = update.coefficients(step, logp, logp - 0.3 * mask, mask, record=True)
    assert grad is not None
    assert torch.all(grad[:, : len(context)] == 0)  # the shared context is not learnt
    assert torch.all(grad[0, 3:7] < 0) and torch.all(grad[1, 3:8] > 0)
    assert torch.all(grad[0, 7:] == 0)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["data.train=[builtin:math/train]"], "data.train has builtin:math/train"),
        (
            ["data.train=[]", "data.pairs=data/tiny_pairs.jsonl"],
            "data.pairs gives pairs from a file",
        ),
    ],
)
def test_sentinel_pairs_refuse_what_they_cannot_read(overrides, says):
    with pytest.raises(ConfigError, match="method.name") as caught:
        load_experiment(CDPO, overrides)
    assert says in str(caught.value)
