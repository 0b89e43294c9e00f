"""The `data` section: where prompts come from, and how a prompt becomes the model's input.

A prompt reaches the model as: the domain's prompt template applied to the question (the paper's
math and code suffixes), as the user turn of a message list (or the row's own message list), after
an optional system prompt, rendered by the tokenizer's chat template with `chat_template_kwargs`
(e.g. `enable_thinking: false` for a hybrid-thinking Qwen3 in non-thinking mode).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from uniopd.config.section import _Section, conflict

PROMPT_PLACEHOLDER = "{prompt}"
# the row fields a column mapping may fill (uniopd/data/rows.py reads them)
RowField = Literal[
    "prompt", "answer", "tests", "domain", "id", "entry_point", "solution", "pass_rate"
]
NonEmpty = Annotated[str, Field(min_length=1)]


class SourceConfig(_Section):
    """One data source written as a mapping (a plain string is just its `source`):

    - source: hf:/data/deepmath-103k
      split: train
      domain: math
      columns: {prompt: question, answer: final_answer}
    """

    source: NonEmpty = Field(
        description="The source's spec, as a plain entry of data.train would give it."
    )
    split: NonEmpty | None = Field(
        default=None,
        description="The split of an hf: dataset (default: train, or the only split there is).",
    )
    subset: NonEmpty | None = Field(
        default=None, description="The subset (configuration name) of an hf: hub dataset."
    )
    domain: NonEmpty | None = Field(
        default=None,
        description="A domain for every row, when no column holds it (None = the rows' own).",
    )
    columns: dict[RowField, NonEmpty] = Field(
        default={},
        description="Row field -> the data's column that holds it, e.g. {prompt: question, "
        "answer: final_answer, pass_rate: pass_rate}; a field not listed is read from the "
        "column of its own name. Fields: prompt, answer, tests, domain, id, entry_point, "
        "solution, pass_rate. Guide: docs/data.md.",
    )

    @model_validator(mode="after")
    def _one_domain(self) -> SourceConfig:
        if self.domain is not None and "domain" in self.columns:
            raise conflict(
                f"both a constant domain ({self.domain!r}) and columns.domain "
                f"({self.columns['domain']!r}) are given; keep one",
                "domain",
            )
        return self

    @property
    def label(self) -> str:
        """How messages name it: the spec, with the split when one is chosen."""
        return self.source + (f" (split {self.split})" if self.split else "")

    def load_args(self) -> dict[str, Any]:
        """`uniopd.data.load_source`'s keywords for this source."""
        return {
            "split": self.split,
            "subset": self.subset,
            "domain": self.domain,
            "columns": dict(self.columns),
        }


def _source_kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict | SourceConfig) else "spec"


# a plain string stays a string (files and resolved configs read as they always did); the tag
# sends each entry to one branch, so an error names what is wrong with that form only
Source = Annotated[
    Annotated[NonEmpty, Tag("spec")] | Annotated[SourceConfig, Tag("mapping")],
    Discriminator(_source_kind),
]


class DataConfig(_Section):
    pairs: NonEmpty | None = Field(
        default=None,
        description="A preference pair file to train on offline instead of sampling rollouts "
        "(a pair objective: dpo, omni_dpo, cdpo): JSONL, JSON, parquet or a datasets folder with "
        "prompt / chosen / rejected and optionally scores ([S_w, S_l]) and domain columns (a row "
        "without a domain is 'preference'). Its prompts replace data.train (give one or the "
        "other); rollout.prompts_per_batch is then the pairs per step. Every row is checked at "
        "start. Guide: docs/method.md 9.4.",
    )
    train: list[Source] = Field(
        default=[],
        validate_default=True,  # (so that neither train nor pairs is an error)
        description="Training prompt sources: builtin:<domain>/<split>, a .jsonl/.json/.parquet "
        "path, hf:<folder or hub id>[:<split>], 'humaneval', 'champ', or <scheme>:<rest> of a "
        "registered source (`uniopd list sources`); or a mapping {source, split, subset, domain, "
        "columns} that maps the row fields onto the data's own column names. Each row carries "
        "its domain, which routes it to a teacher. Required unless data.pairs is given. Guide: "
        "docs/data.md.",
    )
    eval: list[Source] = Field(
        default=[],
        description="Held-out sources evaluated before, during and after training (the same "
        "forms as data.train).",
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
    max_prompt_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Training prompts longer than this many tokens, rendered as the student sees "
        "them, are dropped at start (the count is logged); None = keep all. The release drops "
        "prompts over 4096 tokens. Held-out prompts are never dropped.",
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
    teacher_templates: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default={},
        description="Domain -> template of the user turn a text teacher reads instead of the "
        "student's (cross-modal distillation: the student sees the picture, the teacher its text "
        "rendering), e.g. visual: '{rendering} {prompt}'. {prompt} is the row's question (image "
        "placeholders dropped) and {name} any other field of the row's meta; a row of the domain "
        "without that field is an error at load. An image-text teacher reads the student's prompt.",
    )

    @field_validator("train")
    @classmethod
    def _train_or_pairs(cls, train: list, info: ValidationInfo) -> list:
        if "pairs" not in info.data:  # data.pairs is wrong itself: that error says so
            return train
        if info.data["pairs"] is not None and train:
            raise ValueError(
                "data.pairs trains on the pair file's prompts and responses, and data.train "
                "gives prompts to sample from: keep one (an experiment based on a file with "
                "data.train sets train: [])"
            )
        if info.data["pairs"] is None and not train:
            raise ValueError(
                "no training data: give data.train (prompt sources) or data.pairs (a preference "
                "pair file)"
            )
        return train

    @model_validator(mode="after")
    def _chat_only(self) -> DataConfig:
        if self.template == "raw":
            for name in ("system_prompt", "chat_template_kwargs"):
                if getattr(self, name):
                    raise conflict(
                        f"{name} is part of the chat template, but template is raw (the prompt "
                        "is fed as is): set template: chat, or drop it",
                        name,
                        "template",
                    )
        return self

    @field_validator("prompt_templates", "teacher_templates")
    @classmethod
    def _has_placeholder(cls, templates: dict[str, str]) -> dict[str, str]:
        for domain, text in templates.items():
            if PROMPT_PLACEHOLDER not in text:
                raise ValueError(
                    f"{domain} has no {PROMPT_PLACEHOLDER} placeholder: the "
                    f"row's question would be dropped ({text!r})"
                )
        return templates
