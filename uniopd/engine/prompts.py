"""From a problem to the token ids a model is prompted with, in the student's or a teacher's template.

    fmt = PromptFormat(system_prompt=..., chat_template_kwargs={"enable_thinking": False},
                       prompt_templates={"math": "{prompt} Please reason step by step, ..."})
    ids = encode_problems(tokenizer, problems, fmt)

The user turn is the domain's prompt template with `{prompt}` replaced by the question (only that
placeholder: the paper's math suffix holds a literal `\\boxed{}`), or the row's own chat with the
template applied to its last user turn; a system prompt goes first unless the chat has its own.
The chat template renders it with the generation prompt and `chat_template_kwargs`.

A teacher whose chat template differs from the student's (the released strong-to-weak teacher is
an Instruct model without the hybrid template's empty think block) scores the student's response
tokens behind the same messages rendered in its own template. `check_bridge` proves at start that
this is sound for the pair of templates, or says why not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from uniopd.tasks.problem import Problem

PLACEHOLDER = "{prompt}"
IMAGE_PLACEHOLDER = "<image>"  # where a row's prompt places an image (uniopd.data.images)
FIELD = re.compile(r"\{([A-Za-z_]\w*)\}")  # {rendering} in a teacher template


class TemplateFieldError(ValueError):
    """A teacher template names a field the row does not have."""


def template_fields(template: str) -> list[str]:
    """The row fields a teacher template reads besides {prompt}."""
    return [f for f in FIELD.findall(template) if f != "prompt"]


class TemplateBridgeError(ValueError):
    """Two chat templates between which the student's response tokens cannot be carried over."""


@dataclass(frozen=True)
class PromptFormat:
    template: str = "chat"  # chat = the tokenizer's chat template; raw = the text as is
    system_prompt: str | None = None
    chat_template_kwargs: Mapping = field(default_factory=dict)
    prompt_templates: Mapping[str, str] = field(default_factory=dict)
    # cross-modal: the user turn a text teacher of an image-text student reads, per domain
    teacher_templates: Mapping[str, str] = field(default_factory=dict)
    text_reader: bool = False  # this format is that teacher's: no images, teacher templates

    @classmethod
    def of(cls, data) -> PromptFormat:
        """The format an experiment's `data` section describes (read by attribute: the engine
        never imports the config package)."""
        return cls(
            data.template,
            data.system_prompt,
            data.chat_template_kwargs,
            data.prompt_templates,
            getattr(data, "teacher_templates", {}),
        )

    def for_text_reader(self) -> PromptFormat:
        """The format a text teacher of an image-text student reads: its domain's teacher
        template where there is one, image placeholders dropped."""
        return replace(self, text_reader=True)

    def user_turn(self, domain: str, question: str, meta: Mapping | None = None) -> str:
        if self.text_reader:
            question = " ".join(question.replace(IMAGE_PLACEHOLDER, " ").split())
            if domain in self.teacher_templates:
                return fill_template(self.teacher_templates[domain], question, meta or {})
        template = self.prompt_templates.get(domain)
        return question if template is None else template.replace(PLACEHOLDER, question)

    def messages(self, problem: Problem, prompt: str | None = None) -> list[dict]:
        """The chat a problem is asked as; `prompt` replaces its question (a privileged prompt)."""
        if problem.messages and prompt is None:
            chat = [dict(m) for m in problem.messages]
            last_user = max(i for i, m in enumerate(chat) if m.get("role") == "user")
            chat[last_user]["content"] = self.user_turn(
                problem.domain, str(chat[last_user]["content"]), problem.meta
            )
            if self.text_reader:  # image placeholders of earlier turns too
                for m in chat:
                    m["content"] = " ".join(
                        str(m["content"]).replace(IMAGE_PLACEHOLDER, " ").split()
                    )
        else:
            question = problem.prompt if prompt is None else prompt
            chat = [
                {"role": "user", "content": self.user_turn(problem.domain, question, problem.meta)}
            ]
        if self.system_prompt is not None and chat[0].get("role") != "system":
            chat.insert(0, {"role": "system", "content": self.system_prompt})
        return chat

    def render(self, tokenizer, problem: Problem, prompt: str | None = None) -> str:
        if self.template == "raw":  # the question alone: a chat row's last user turn
            return self.user_turn(problem.domain, problem.prompt if prompt is None else prompt)
        return tokenizer.apply_chat_template(
            self.messages(problem, prompt),
            add_generation_prompt=True,
            tokenize=False,
            **self.chat_template_kwargs,
        )


def fill_template(template: str, question: str, meta: Mapping) -> str:
    """A teacher template with {prompt} and the row's meta fields filled in."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "prompt":
            return question
        if name not in meta:
            raise TemplateFieldError(f"the row has no field {name!r} (its meta: {sorted(meta)})")
        return str(meta[name])

    return FIELD.sub(value, template)


def encode_problems(
    tokenizer, problems: Sequence[Problem], fmt: PromptFormat, prompts: Sequence[str] | None = None
) -> list[list[int]]:
    """Prompt token ids of each problem (with `prompts`, those questions instead of theirs)."""
    texts = [
        fmt.render(tokenizer, p, None if prompts is None else prompts[i])
        for i, p in enumerate(problems)
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


# A probe conversation for check_bridge: a response with words, digits and a code fence, as the
# student's responses have; markers that no template would produce by itself.
_PROBE_QUESTION = "What is 12 + 30? PROBE-QUESTION"
_PROBE_RESPONSE = "PROBE-RESPONSE: 12 + 30 = 42.\n```python\nprint(42)\n```"


def check_bridge(student_tok, teacher_tok, fmt: PromptFormat, who: str) -> bool:
    """Whether the teacher needs its own rendering of the prompts (False when both templates
    render the probe the same); raises TemplateBridgeError when the difference cannot be bridged.

    Sound means: in each template the assistant's reply follows the generation prompt directly
    (so the student's response tokens are what the teacher would read after its own prompt), and
    both templates close the reply with the same text (the student's end-of-turn token, the last
    response token, means the same to the teacher)."""
    if fmt.template == "raw":
        return False
    problem = Problem(id="probe", domain="probe", prompt=_PROBE_QUESTION, answer="42")
    chats = {}
    for name, tok in (("student", student_tok), ("teacher", teacher_tok)):
        try:
            prompt = fmt.render(tok, problem)
            whole = tok.apply_chat_template(
                [*fmt.messages(problem), {"role": "assistant", "content": _PROBE_RESPONSE}],
                tokenize=False,
                **fmt.chat_template_kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - a Jinja template fails in many ways
            raise TemplateBridgeError(
                f"{who}: the {name}'s chat template cannot render a prompt "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        chats[name] = (prompt, whole)
    if chats["student"][0] == chats["teacher"][0]:
        return False
    closings = {}
    for name, (prompt, whole) in chats.items():
        if not whole.startswith(prompt + _PROBE_RESPONSE):
            raise TemplateBridgeError(
                f"{who}: in the {name}'s chat template the assistant's reply does not follow the "
                f"generation prompt directly (prompt ends {prompt[-40:]!r}, the conversation "
                f"continues {whole[len(prompt) - 40 : len(prompt) + 40]!r}), so the student's "
                "response tokens cannot be scored behind the teacher's own prompt"
            )
        closings[name] = whole[len(prompt) + len(_PROBE_RESPONSE) :]
    s, t = closings["student"].rstrip(), closings["teacher"].rstrip()
    if s != t:
        raise TemplateBridgeError(
            f"{who}: the templates close the assistant's reply differently (student {s!r}, "
            f"teacher {t!r}): the student's end-of-turn token would not end the teacher's turn"
        )
    return True
