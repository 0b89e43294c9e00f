"""What the commands print and how they end: a bad-input message with exit code 2, the held-out
summary of an evaluation; and the experiment loading every command starts with."""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    print(f"uniopd: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def load(path: str, overrides: list[str]):
    from uniopd.config import load_experiment
    from uniopd.config.doubts import doubts

    cfg = load_experiment(path, overrides)
    for field, why in doubts(cfg):  # legal, so the command goes on; said once, where it starts
        print(f"uniopd: warning: {path}: {field}: {why}", file=sys.stderr)
    return cfg


def print_eval(summary: dict) -> None:
    for domain, entry in summary.items():
        if isinstance(entry, dict):
            extras = " ".join(
                f"{k}={v:.3f}"
                for k, v in entry.items()
                if k.startswith(("avg@", "pass@", "chair_"))  # CHAIR: the describe task
            )
            print(f"{domain:>8}: acc={entry['acc']:.3f} {extras} (n={entry['n_prompts']})")
