"""Small logits are kept, not recomputed: the student's log-probs of a batch whose logits fit
KEEP_LOGITS_BYTES come from one chunk with no recompute in backward, and equal the chunked,
recomputed ones (values and gradients); a paper-sized vocabulary still goes in recomputed chunks."""

import pytest
import torch

from uniopd.engine import loading
from uniopd.engine.logprobs import (
    KEEP_LOGITS_BYTES,
    _chunking,
    response_hidden,
    response_logprobs,
    token_logprobs,
)
from uniopd.engine.sequences import pack

CPU = torch.device("cpu")


@pytest.mark.slow  # a checkpoint built and loaded, two passes with gradients
def test_kept_logits_give_the_chunked_recomputed_values_and_gradients(make_checkpoint):
    path = str(make_checkpoint(11))
    model, tok = loading.load_model(path, CPU, torch.float32, True), loading.load_tokenizer(path)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompts = [torch.randint(5, vocab, (2 + i,), generator=g).tolist() for i in range(5)]
    responses = [torch.randint(5, vocab, (1 + 3 * i,), generator=g).tolist() for i in range(5)]
    batch = pack(prompts, responses, tok.pad_token_id)
    mask = batch.response_mask_N_T

    kept, entropy = response_logprobs(model, batch, with_entropy=True, chunk_tokens=3)
    kept.sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    hidden, head = response_hidden(model, batch)
    chunked, chunked_entropy, _, _ = token_logprobs(
        hidden, head, batch.response_ids_N_T, mask, chunk_tokens=3, with_entropy=True
    )
    chunked.sum().backward()

    assert _chunking(3, head, mask) == (int(mask.sum()), False)  # one chunk, kept
    assert torch.allclose(kept, chunked, atol=1e-6)
    assert torch.allclose(entropy, chunked_entropy, atol=1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(got[n], p.grad, atol=1e-6, rtol=1e-5), n


def test_a_large_vocabulary_is_still_chunked_and_recomputed():
    head = torch.nn.Linear(8, 151_936, bias=False)  # Qwen3's vocabulary
    mask = torch.ones(4, 512)
    assert 4 * 512 * 151_936 * 4 > KEEP_LOGITS_BYTES
    assert _chunking(512, head, mask) == (512, True)
