"""Shared fixtures: a real locally trained tokenizer and tiny HF checkpoints built from config.

Nothing is mocked: the models are real Qwen2 checkpoints on disk, just 2 layers wide enough to run
in milliseconds, so the loop, the loaders and the teachers are exercised as with real weights.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    from uniopd.world.tokenizer import train_tokenizer

    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(path, vocab_size=512)
    return path


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory, tokenizer_dir):
    """make_checkpoint(seed, hidden=32, layers=2) -> directory of a tiny HF checkpoint."""
    from transformers import AutoTokenizer

    from uniopd.world import models

    made = {}

    def make(seed: int, hidden: int = 32, layers: int = 2):
        key = (seed, hidden, layers)
        if key not in made:
            tok = AutoTokenizer.from_pretrained(tokenizer_dir)
            models.SIZES.setdefault(f"test{hidden}x{layers}", (hidden, layers, 4))
            model = models.build_model(f"test{hidden}x{layers}", tok, seed=seed)
            path = tmp_path_factory.mktemp(f"ckpt-{seed}-{hidden}x{layers}")
            model.save_pretrained(path)
            tok.save_pretrained(path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture
def postgres_url():
    """URL of a throwaway PostgreSQL cluster started for this test (tests/pg_cluster.py)."""
    from pg_cluster import throwaway_cluster

    with throwaway_cluster() as url:
        yield url
