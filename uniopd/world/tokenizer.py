"""A byte-level BPE tokenizer trained locally on the built-in domains, saved as a real HF tokenizer.

Digits are split one per token (as in Qwen and Llama 3) so arithmetic stays learnable for a tiny model;
the chat template is ChatML, the format the Qwen family uses, so the same prompts work unchanged when a
real checkpoint replaces the tiny one.

`pretokenizer="qwen2"` (world v5 on) splits text exactly as transformers' Qwen2Tokenizer does (NFC,
Qwen2's split pattern, byte level). It has to: the world's models are Qwen2 checkpoints, so
`AutoTokenizer` loads their folders as Qwen2Tokenizer, which replaces the saved pre-tokenizer with
Qwen2's. With any other pre-tokenizer the models would be trained on one tokenization (the world's
tokenizer folder, used by the warm starts) and run with another: up to world v4 the two differed
on runs of whitespace, such as code indentation (docs/journal.md, 2026-11-29).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from uniopd.tasks.builtin import builtin_problems

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _corpus(data: dict):
    for domain in ("math", "code"):
        for split in ("sft", "train"):
            for problem in builtin_problems(domain, split, data):
                yield problem.prompt
                yield problem.solution


# transformers' Qwen2Tokenizer's split pattern (its \p{N} splits digits one by one)
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def train_tokenizer(
    out_dir: Path, vocab_size: int = 512, pretokenizer: str = "qwen2", data: dict | None = None
) -> PreTrainedTokenizerFast:
    """A BPE tokenizer trained on the world's texts; `data`: the world's data settings (its
    recipe's `data`; None: the plain splits of worlds up to v5)."""
    tok = Tokenizer(models.BPE())
    if pretokenizer == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(
                    Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False
                ),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    elif pretokenizer == "bytelevel-digits":  # world v4 and before
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    else:
        raise ValueError(f"unknown pre-tokenizer {pretokenizer!r}: qwen2 or bytelevel-digits")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(data or {}), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    hf.save_pretrained(out_dir)
    return hf
