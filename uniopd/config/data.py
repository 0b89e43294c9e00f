"""The `data` section: where prompts come from, and how a prompt becomes the model's input.

A prompt reaches the model as: the domain's prompt template applied to the question (the paper's
math and code suffixes), as the user turn of a message list (or the row's own message list), after
an optional system prompt, rendered by the tokenizer's chat template with `chat_template_kwargs`
(e.g. `enable_thinking: false` for a hybrid-thinking Qwen3 in non-thinking mode).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from uniopd.config.section import _Section

PROMPT_PLACEHOLDER = "{prompt}"


class DataConfig(_Section):
    train: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1,
        description="Training prompt sources: builtin:<domain>/<split>, a .jsonl/.parquet path, "
        "'humaneval', 'champ', or <scheme>:<rest> of a registered source (`uniopd list sources`). "
        "Each row carries its domain, which routes it to a teacher.",
    )
    eval: list[Annotated[str, Field(min_length=1)]] = Field(
        default=[], description="Held-out sources evaluated before, during and after training."
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Cap on training prompts read from each train source (None = all); a small "
        "pool makes prompts recur. Held-out sets are capped by eval.max_prompts_per_domain.",
    )
    template: Literal["chat", "raw"] = Field(
        default="chat",
        description="chat = wrap the prompt in the tokenizer's chat template; raw = feed it as is.",
    )
    system_prompt: str | None = Field(
        default=None,
        description="A system message put before every prompt (chat template only); a row whose "
        "own message list starts with a system message keeps its own.",
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default={},
        description="Extra variables of the chat template, e.g. {enable_thinking: false} for a "
        "hybrid-thinking Qwen3 in non-thinking mode (the paper's students). A teacher rendering "
        "the prompt in its own template gets the same variables.",
    )
    prompt_templates: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default={},
        description="Domain -> template of the user turn, with {prompt} where the row's question "
        "goes, e.g. math: '{prompt} Please reason step by step, and put your final answer within "
        "\\boxed{}.' Only {prompt} is replaced (other braces stay as written); a domain not "
        "listed uses the question as is.",
    )

    @field_validator("prompt_templates")
    @classmethod
    def _has_placeholder(cls, templates: dict[str, str]) -> dict[str, str]:
        for domain, text in templates.items():
            if PROMPT_PLACEHOLDER not in text:
                raise ValueError(
                    f"prompt_templates.{domain} has no {PROMPT_PLACEHOLDER} placeholder: the "
                    f"row's question would be dropped ({text!r})"
                )
        return templates
