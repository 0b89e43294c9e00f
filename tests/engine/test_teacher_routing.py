"""METHOD 5: prompts are routed to their domain's teacher; mismatches stop the run at start-up."""

import pytest
import torch
from transformers import AutoTokenizer

from uniopd.engine import loading
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.sequences import encode_prompts, pack
from uniopd.engine.teachers import TeacherPool, UnknownDomainError


def _batch(tok):
    prompts = encode_prompts(
        tok, ["Ana has 3 pens.", "Write a Python function f(x) that doubles it."]
    )
    responses = [tok("3 + 1 = 4.")["input_ids"], tok("def f(x):")["input_ids"]]
    return pack(prompts, responses, tok.pad_token_id)


def test_each_row_scored_by_its_domains_teacher(make_checkpoint):
    tok = loading.load_tokenizer(str(make_checkpoint(1)))
    cpu = torch.device("cpu")
    math_t = loading.load_model(str(make_checkpoint(1)), cpu, torch.float32, False)
    code_t = loading.load_model(str(make_checkpoint(2)), cpu, torch.float32, False)
    pool = TeacherPool({"m": math_t, "c": code_t}, {"math": "m", "code": "c"})
    batch = _batch(tok)
    got = pool.logprobs(batch, ["math", "code"])
    assert torch.allclose(got[0], response_logprobs(math_t, batch.rows(torch.tensor([0])))[0])
    assert torch.allclose(got[1], response_logprobs(code_t, batch.rows(torch.tensor([1])))[0])
    assert not torch.allclose(got[1], response_logprobs(math_t, batch.rows(torch.tensor([1])))[0])


def test_unknown_domain_is_an_error_naming_it(make_checkpoint):
    tok = loading.load_tokenizer(str(make_checkpoint(1)))
    pool = TeacherPool({}, {"math": "m"})
    with pytest.raises(UnknownDomainError, match="no teacher for domain 'chess'"):
        pool.logprobs(_batch(tok), ["math", "chess"])


def test_vocabulary_mismatch_is_refused(make_checkpoint, tmp_path):
    student = loading.load_tokenizer(str(make_checkpoint(1)))
    other = AutoTokenizer.from_pretrained(make_checkpoint(1))
    other.add_tokens(["<|extra|>"])
    other.save_pretrained(tmp_path)
    with pytest.raises(loading.ModelLoadError, match=r"teachers\.math .*vocabulary differs"):
        loading.check_same_interface(
            student, loading.load_tokenizer(str(tmp_path)), str(tmp_path), "math"
        )


def test_chat_template_mismatch_is_refused(make_checkpoint, tmp_path):
    student = loading.load_tokenizer(str(make_checkpoint(1)))
    other = AutoTokenizer.from_pretrained(make_checkpoint(1))
    other.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    other.save_pretrained(tmp_path)
    with pytest.raises(loading.ModelLoadError, match="chat template differs"):
        loading.check_same_interface(
            student, loading.load_tokenizer(str(tmp_path)), str(tmp_path), "code"
        )


def test_broken_checkpoint_names_the_path(make_checkpoint, tmp_path):
    import shutil

    shutil.copytree(make_checkpoint(1), tmp_path / "broken")
    weights = tmp_path / "broken" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated download
    with pytest.raises(loading.ModelLoadError, match="broken"):
        loading.load_model(str(tmp_path / "broken"), torch.device("cpu"), torch.float32, False)


def test_left_padding_does_not_change_log_probs(make_checkpoint):
    tok = loading.load_tokenizer(str(make_checkpoint(1)))
    model = loading.load_model(str(make_checkpoint(1)), torch.device("cpu"), torch.float32, False)
    short = encode_prompts(tok, ["hi"])[0]
    long = encode_prompts(tok, ["a much longer prompt that forces left padding on the other row"])[
        0
    ]
    resp = tok("4 + 1 = 5.")["input_ids"]
    alone = response_logprobs(model, pack([short], [resp], tok.pad_token_id))
    padded = response_logprobs(model, pack([short, long], [resp, resp], tok.pad_token_id))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
