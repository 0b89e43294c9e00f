"""Writes tiny_pairs.jsonl beside this file: preference pairs on the tiny world's training
prompts, in the usual preference-data shape (prompt / chosen / rejected / scores / domain / id),
for experiments/preference/dpo_from_file.yaml.

chosen is the row's reference solution; rejected is the same solution with its final answer
broken (math: the boxed number off by one; code: the returned value off by one). Both are graded
by the domain's verifier, and a pair is kept only when chosen passes and rejected fails; scores
are those outcomes, [1, 0].

    .venv/bin/python experiments/preference/data/make_tiny_pairs.py [--per-domain 100]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from uniopd.data import load_source
from uniopd.verifiers import get_verifier

OUT = Path(__file__).with_name("tiny_pairs.jsonl")


def broken(problem) -> str | None:
    """The reference solution with a wrong final answer, or None when there is nothing to break."""
    text = problem.solution or ""
    if problem.domain == "math":
        m = list(re.finditer(r"\\boxed\{(-?\d+)\}", text))
        if not m:
            return None
        last = m[-1]
        wrong = int(last.group(1)) + 1
        return text[: last.start(1)] + str(wrong) + text[last.end(1) :]
    m = list(re.finditer(r"return (\w+)\n", text))
    if not m:
        return None
    last = m[-1]
    return text[: last.start()] + f"return {last.group(1)} + 1\n" + text[last.end() :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-domain", type=int, default=100)
    args = ap.parse_args()
    rows = []
    for domain in ("math", "code"):
        # twice what is needed, graded in one call: a pair whose break fails to break is dropped
        problems = load_source(f"builtin:{domain}/train")[: 2 * args.per_domain]
        problems = [p for p in problems if broken(p) is not None]
        rejected = [broken(p) for p in problems]
        graded = get_verifier(domain).grade(
            problems + problems, [p.solution for p in problems] + rejected
        )
        n = len(problems)
        kept = 0
        for p, r, good, bad in zip(problems, rejected, graded[:n], graded[n:]):
            if kept == args.per_domain or good != 1 or bad != 0:
                continue
            kept += 1
            rows.append(
                {
                    "id": p.id,
                    "domain": domain,
                    "prompt": p.prompt,
                    "chosen": p.solution,
                    "rejected": r,
                    "scores": [1.0, 0.0],
                }
            )
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} pairs to {OUT}")


if __name__ == "__main__":
    main()
