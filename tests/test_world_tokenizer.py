"""The world's tokenizer splits text as the model folders load it: a Qwen2 checkpoint's tokenizer is
loaded by AutoTokenizer as Qwen2Tokenizer, which replaces the saved pre-tokenizer with Qwen2's. Up to
world v4 the warm starts tokenized code indentation one way and every run another."""

from transformers import AutoTokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from uniopd.tasks.builtin import builtin_problems
from uniopd.world import models
from uniopd.world.tokenizer import QWEN2_PRETOKENIZE_REGEX, train_tokenizer


def _texts():
    for domain in ("math", "code"):
        for p in builtin_problems(domain, "sft")[:300]:
            yield p.prompt
            yield p.solution


def _as_model_folder(tokenizer_dir, out):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    models.build_model("small", tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return tok, AutoTokenizer.from_pretrained(out)


def test_the_world_tokenizer_encodes_as_its_models_load_it(tokenizer_dir, tmp_path):
    assert QWEN2_PRETOKENIZE_REGEX == PRETOKENIZE_REGEX  # transformers' own pattern
    built, loaded = _as_model_folder(tokenizer_dir, tmp_path / "model")
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    mismatched = [t for t in _texts() if built(t)["input_ids"] != loaded(t)["input_ids"]]
    assert not mismatched, f"{len(mismatched)} texts encode differently, e.g. {mismatched[0]!r}"


def test_the_v4_tokenizer_still_builds_and_shows_why_it_was_replaced(tmp_path):
    train_tokenizer(tmp_path / "v4", vocab_size=512, pretokenizer="bytelevel-digits")
    built, loaded = _as_model_folder(tmp_path / "v4", tmp_path / "model")
    indented = "```python\ndef f(x):\n    x = x + 1\n    return x\n```"
    assert built(indented)["input_ids"] != loaded(indented)["input_ids"]
