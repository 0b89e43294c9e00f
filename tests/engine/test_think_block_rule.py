"""uniopd's bridge to a strong-to-weak teacher against the release's rule, measured on the ids.

The release (github WenjinHou/Uni-OPD, miles/Uni_OPD_utils/OPD_reward/utils.py,
`maybe_convert_tokens_for_teacher_compat`, called from reward_manager.py:121) deletes every
non-overlapping `<think>\\n\\n</think>\\n\\n` token run from the whole prompt + response it sends an
Instruct-2507 teacher, then keeps the last response_length log-probs (post_process_rewards.py:57).
uniopd renders only the prompt in the teacher's template and appends the response unchanged. The
rule is restated below (not imported: the release is not a dependency) to compare the two.
"""

from __future__ import annotations

from test_prompts import THINK, _config, _rows, pair  # noqa: F401 - pair is a fixture

from uniopd.engine.prompts import encode_problems
from uniopd.engine.sequences import pack
from uniopd.loop.scoring import Scorer
from uniopd.setup.parts import load_parts
from uniopd.setup.plan import make_plan


def release_rule(ids: list[int], block: list[int]) -> list[int]:
    """The sequence with every non-overlapping occurrence of `block` deleted, left to right."""
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + len(block)] == block:
            i += len(block)
        else:
            out.append(ids[i])
            i += 1
    return out


def pair_block(pair) -> list[int]:  # noqa: F811
    """The ids of the student's empty think block."""
    from uniopd.engine.loading import load_tokenizer

    return load_tokenizer(str(pair[0]))(THINK, add_special_tokens=False)["input_ids"]


def _sent(tiny_experiment, pair, tmp_path, responses):  # noqa: F811 - the fixture's value
    """(student sequences, the sequences uniopd sends the teacher, the think block's ids)."""
    kwargs = {"enable_thinking": False}
    cfg = _config(tiny_experiment, *pair, tmp_path, _rows(tmp_path), chat_template_kwargs=kwargs)
    plan = make_plan(cfg)
    parts = load_parts(plan)
    rows = plan.train[: len(responses)]
    prompts = encode_problems(parts.tokenizer, rows, parts.prompt_format)
    batch = pack(prompts, responses, parts.tokenizer.pad_token_id)
    own = Scorer(parts, cfg.method.needs(), cfg).own_prompts(batch, rows)[str(pair[1])]
    teacher = [
        ids[mask.bool()].tolist() for ids, mask in zip(own.input_ids_N_L, own.attention_mask_N_L)
    ]
    student = [p + r for p, r in zip(prompts, responses)]
    block = parts.tokenizer(THINK, add_special_tokens=False)["input_ids"]
    return student, teacher, block


def test_without_a_think_block_in_the_response_both_rules_send_the_same_ids(
    tiny_experiment,
    pair,  # noqa: F811
    tmp_path,
):
    responses = [[5, 6, 7], [8, 9]]  # no think block in either
    student, teacher, block = _sent(tiny_experiment, pair, tmp_path, responses)
    assert all(block == s[-len(block) - len(r) : -len(r)] for s, r in zip(student, responses))
    assert teacher == [release_rule(s, block) for s in student]


def test_a_think_block_in_the_response_is_where_the_rules_part(
    tiny_experiment,
    pair,  # noqa: F811
    tmp_path,
):
    """The student wrote an empty think block itself: the release deletes it from the response
    too, so its response is 4 tokens shorter than response_length and the last response_length
    log-probs it keeps are shifted by 4 before the block (the first 4 are the prompt's tail).
    uniopd scores the student's tokens as sampled, the block included, each at its own place."""
    block = pair_block(pair)
    response = [5, *block, 6]
    student, teacher, block = _sent(tiny_experiment, pair, tmp_path, [response])
    released = release_rule(student[0], block)
    assert teacher[0][-len(response) :] == response  # uniopd: the response as sampled
    assert len(released) == len(teacher[0]) - len(block)  # release: the block is gone
    assert released[-len(response) :] != response  # and its tail no longer is the response
