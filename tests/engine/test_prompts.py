"""Prompts as the paper writes them, and a teacher whose chat template differs from the student's.

Two tiny tokenizers share one vocabulary and differ the way Qwen3's hybrid-thinking template and
the Qwen3 Instruct-2507 template do: in non-thinking mode the hybrid one puts an empty
`<think>\\n\\n</think>\\n\\n` block into the generation prompt (and in front of the last assistant
reply), the Instruct one has no think block at all.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from uniopd.config import ExperimentConfig
from uniopd.engine import loading
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.prompts import PromptFormat, TemplateBridgeError, check_bridge, encode_problems
from uniopd.engine.sequences import pack
from uniopd.setup.plan import make_plan
from uniopd.tasks.problem import Problem

THINK = "<think>\n\n</think>\n\n"
HYBRID = (  # Qwen3's hybrid template, reduced to what differs from the Instruct one
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
INSTRUCT = (  # ChatML, as Qwen3-30B-A3B-Instruct-2507 renders a conversation
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
NON_THINKING = PromptFormat(chat_template_kwargs={"enable_thinking": False})
MATH = Problem(id="m1", domain="math", prompt="What is 2 + 3?", answer="5")


def _with_template(make_checkpoint, tmp_path, name: str, template: str, seed: int = 1):
    """A tiny checkpoint whose tokenizer has `template` and the think tokens (both tokenizers
    get the same added tokens, so the vocabularies stay equal)."""
    import shutil

    path = tmp_path / name
    shutil.copytree(make_checkpoint(seed), path)
    tok = AutoTokenizer.from_pretrained(path)
    tok.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    tok.chat_template = template
    tok.save_pretrained(path)
    return path


@pytest.fixture
def pair(make_checkpoint, tmp_path):
    hybrid = _with_template(make_checkpoint, tmp_path, "hybrid", HYBRID, seed=1)
    instruct = _with_template(make_checkpoint, tmp_path, "instruct", INSTRUCT, seed=2)
    return hybrid, instruct


def test_prompt_templates_system_prompt_and_template_kwargs(pair):
    hybrid = loading.load_tokenizer(str(pair[0]))
    fmt = PromptFormat(
        system_prompt="You are careful.",
        chat_template_kwargs={"enable_thinking": False},
        prompt_templates={"math": "{prompt} Put your final answer within \\boxed{}."},
    )
    text = fmt.render(hybrid, MATH)
    assert text == (
        "<|im_start|>system\nYou are careful.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3? Put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>assistant\n" + THINK
    )
    code = Problem(id="c1", domain="code", prompt="Write f.", tests="assert f() == 1")
    assert "user\nWrite f.<|im_end|>" in fmt.render(hybrid, code)  # no template for code
    # without the kwarg the hybrid template stays in thinking mode: no empty think block
    assert not PromptFormat().render(hybrid, MATH).endswith(THINK)


def test_a_row_given_as_a_chat_keeps_its_turns(pair):
    hybrid = loading.load_tokenizer(str(pair[0]))
    chat = Problem(
        id="c",
        domain="math",
        prompt="And 2 + 3?",
        answer="5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "1 + 1?"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "And 2 + 3?"},
        ],
    )
    fmt = PromptFormat(
        system_prompt="ignored: the row has its own", prompt_templates={"math": "Q: {prompt}"}
    )
    text = fmt.render(hybrid, chat)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1 + 1?")
    assert "ignored" not in text and "user\nQ: And 2 + 3?<|im_end|>" in text


def test_the_instruct_teacher_reads_the_release_ids(pair):
    """The teacher's own rendering is exactly what the release sends it: the student's prompt ids
    with the empty think block deleted."""
    hybrid, instruct = (loading.load_tokenizer(str(p)) for p in pair)
    assert check_bridge(hybrid, instruct, NON_THINKING, "teachers.math") is True
    student_ids = encode_problems(hybrid, [MATH], NON_THINKING)[0]
    teacher_ids = encode_problems(instruct, [MATH], NON_THINKING)[0]
    think_ids = hybrid(THINK, add_special_tokens=False)["input_ids"]
    assert student_ids[-len(think_ids) :] == think_ids
    assert teacher_ids == student_ids[: -len(think_ids)]
    # the same template on both sides needs no bridge
    assert check_bridge(hybrid, hybrid, NON_THINKING, "teachers.math") is False


def test_templates_that_cannot_be_bridged_are_refused(pair, tmp_path):
    hybrid, instruct = (loading.load_tokenizer(str(p)) for p in pair)
    # in thinking mode both render the same prompt: nothing to bridge
    assert check_bridge(hybrid, instruct, PromptFormat(), "teachers.math") is False
    prefixed = AutoTokenizer.from_pretrained(pair[1])
    prefixed.chat_template = INSTRUCT.replace(
        "{{- '<|im_start|>' + message.role + '\\n' + message.content",
        "{{- '<|im_start|>' + message.role + '\\n' + ('A: ' if message.role == 'assistant' else '') + message.content",
    )
    assert prefixed.chat_template != INSTRUCT
    with pytest.raises(TemplateBridgeError, match="does not follow the generation prompt"):
        check_bridge(hybrid, prefixed, NON_THINKING, "teachers.math")
    other_end = AutoTokenizer.from_pretrained(pair[1])
    other_end.chat_template = INSTRUCT.replace("<|im_end|>", "<|endoftext|>")
    with pytest.raises(TemplateBridgeError, match="close the assistant's reply differently"):
        check_bridge(hybrid, other_end, NON_THINKING, "teachers.math")
    no_system = AutoTokenizer.from_pretrained(pair[1])
    no_system.chat_template = (
        "{%- if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{%- endif %}"
        + INSTRUCT
    )
    fmt = PromptFormat(system_prompt="s", chat_template_kwargs={"enable_thinking": False})
    with pytest.raises(TemplateBridgeError, match="teacher's chat template cannot render"):
        check_bridge(hybrid, no_system, fmt, "teachers.math")


def _config(tiny_experiment, student, teacher, tmp_path, rows, **data):
    return ExperimentConfig.model_validate(
        tiny_experiment(
            student,
            teacher,
            {"train": [str(rows)], **data},
            tmp_path / "runs",
            name="bridge",
            train={"steps": 1, "warmup_steps": None},
            eval=None,
        )
    )


def _rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(
                {"id": f"r{i}", "domain": "math", "prompt": f"{i} + 1?", "answer": str(i + 1)}
            )
            for i in range(4)
        )
    )
    return path


def test_the_teacher_scores_the_students_tokens_behind_its_own_prompt(
    tiny_experiment, pair, tmp_path
):
    from uniopd.loop.scoring import Scorer
    from uniopd.setup.parts import load_parts

    kwargs = {"enable_thinking": False}
    cfg = _config(tiny_experiment, *pair, tmp_path, _rows(tmp_path), chat_template_kwargs=kwargs)
    plan = make_plan(cfg)
    parts = load_parts(plan)
    ref = str(pair[1])
    assert set(parts.teacher_tokenizers) == {ref}
    rows = plan.train[:2]
    prompts = encode_problems(parts.tokenizer, rows, parts.prompt_format)
    responses = [[5, 6, 7, parts.tokenizer.eos_token_id], [8, parts.tokenizer.eos_token_id]]
    batch = pack(prompts, responses, parts.tokenizer.pad_token_id)
    scored = Scorer(parts, cfg.method.needs(), cfg).score(batch, rows)
    # by hand: the teacher's own rendering of each prompt, then the same response tokens
    teacher_tok = parts.teacher_tokenizers[ref]
    own = pack(encode_problems(teacher_tok, rows, parts.prompt_format), responses, 0)
    expected = response_logprobs(parts.teacher_model(ref), own)
    assert scored.teacher_logp_N_T is not None
    torch.testing.assert_close(scored.teacher_logp_N_T, expected * batch.response_mask_N_T)
    assert own.prompt_width < batch.prompt_width  # the think block is not in the teacher's prompt


def test_an_unbridgeable_teacher_stops_the_run_at_start(tiny_experiment, pair, tmp_path):
    from uniopd.setup.parts import load_parts

    other_end = AutoTokenizer.from_pretrained(pair[1])
    other_end.chat_template = INSTRUCT.replace("<|im_end|>", "<|endoftext|>")
    other_end.save_pretrained(pair[1])
    kwargs = {"enable_thinking": False}
    cfg = _config(tiny_experiment, *pair, tmp_path, _rows(tmp_path), chat_template_kwargs=kwargs)
    with pytest.raises(loading.ModelLoadError, match=r"teachers\.math .*cannot be bridged"):
        load_parts(make_plan(cfg))


def test_prompts_over_the_budget_are_dropped_from_training(tiny_experiment, pair, tmp_path):
    from uniopd.loop.runner import drop_long_prompts
    from uniopd.setup.parts import load_parts
    from uniopd.setup.plan import PlanError

    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(
                {"id": f"r{i}", "domain": "math", "prompt": "1 + " * i + "1?", "answer": "1"}
            )
            for i in (1, 2, 30)
        )
    )
    kwargs = {"enable_thinking": False}
    cfg = _config(tiny_experiment, *pair, tmp_path, rows, chat_template_kwargs=kwargs)
    plan = make_plan(cfg)
    parts = load_parts(plan)
    lengths = [
        len(ids) for ids in encode_problems(parts.tokenizer, plan.train, parts.prompt_format)
    ]
    assert lengths[0] < lengths[1] < lengths[2]
    budget = lengths[1]
    kept = drop_long_prompts(
        make_plan(
            cfg.model_copy(
                update={"data": cfg.data.model_copy(update={"max_prompt_tokens": budget})}
            )
        ),
        parts,
    )
    assert [p.id for p in kept.train] == ["r1", "r2"]
    short = cfg.data.model_copy(update={"max_prompt_tokens": lengths[0] - 1})
    with pytest.raises(PlanError, match="every one of the 3 training prompts is longer"):
        drop_long_prompts(make_plan(cfg.model_copy(update={"data": short})), parts)
