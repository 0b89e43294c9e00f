"""World v6's dials, measured: builds the models they need (once; cached in $UNIOPD_HOME) and
prints what each dial does to the quantity it targets (docs/world.md, "Version 6's dials").

    python benchmarks/world_v6_dials.py [--home DIR] [--prompts 100] [--samples 8] [--json F]

- latent difficulty: the intraclass correlation (ICC) of the student's per-prompt pass rates
  (uniopd/world/card.intraclass_correlation gives the formula), with and without the dial, and
  the correlation of the measured rates with the ones the recipe sets by construction;
- horizon: the student's pass rate and the share of single-outcome groups of 8 at each horizon;
- soft skill: how often the soft-skill student samples the right token where a phrase it lacks
  is used (its probability, teacher-forced at the first token where the right and the misread
  line differ), against the habit student and the expert;
- teacher level per domain: each expert's pass rate on its domain at every horizon.

Every pass rate is sampled at the rollout settings of the study (T = 1, top-p 1, top-k off), n
samples per prompt (--samples, 8 = a GRPO group of the study). Minutes of building the first time
(five models: three students, two experts), then minutes of sampling; `--smoke` runs every step
on the smoke recipe's models in seconds (meaningless numbers; tests/test_world_v6.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# world -> its dials and the models measured in it
WORLDS = {
    "latent": ({"latent_difficulty": True}, ["student", "teacher-math", "teacher-code"]),
    "habit": ({}, ["student"]),
    "soft": ({"deficit": "soft_skill"}, ["student"]),
}
EXPERT_OF = {"math": "teacher-math", "code": "teacher-code"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default="/tmp/uniopd-home-v6", help="$UNIOPD_HOME to build in")
    parser.add_argument("--prompts", type=int, default=100, help="prompts per domain and setting")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt (a group)")
    parser.add_argument("--horizons", type=int, nargs="*", default=[1, 2, 4, 6, 8])
    parser.add_argument("--worlds", nargs="+", choices=list(WORLDS), default=list(WORLDS))
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--smoke", action="store_true", help="the smoke recipe (seconds)")
    args = parser.parse_args()
    os.environ["UNIOPD_HOME"] = str(Path(args.home).resolve())
    if args.smoke:
        os.environ["UNIOPD_WORLD"] = "smoke"
    import torch

    torch.set_num_threads(1)
    figures = {"settings": vars(args), "build_s": build(args.worlds), "worlds": {}}
    for world in args.worlds:
        figures["worlds"][world] = measure(world, args)
    print(markdown(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


def select(world: str, horizon: int | None = None) -> None:
    from uniopd.world.recipe import Dials, select_world

    select_world(6, Dials(**WORLDS[world][0]), horizon)


def build(worlds: list[str]) -> dict:
    """Build what is missing of each world (one build at a time); seconds per model."""
    from uniopd.builder.build import build_world
    from uniopd.world.paths import model_key

    seconds = {}
    for world in worlds:
        names = WORLDS[world][1]
        select(world)
        manifest = build_world(names)
        for name in names:
            seconds[f"{world}/{name}"] = manifest["models"][model_key(name)].get("seconds")
    return seconds


def measure(world: str, args) -> dict:
    from uniopd.world import card
    from uniopd.world.recipe import active_recipe

    select(world)
    hazard = active_recipe()["models"]["student"].get("stop_hazard", 0.0)
    out: dict = {"student": {}, "experts": {}}
    for horizon in [None, *args.horizons]:
        label = "default" if horizon is None else f"h{horizon}"
        select(world, horizon)
        split = "train" if horizon is None else "test"
        for domain in EXPERT_OF:
            problems = _problems(domain, split, args.prompts)
            counts = pass_counts("student", problems, args.samples)
            row = summary(counts, args.samples)
            if hazard:
                design = [card.design_pass_rate(p, hazard) for p in problems]
                row["corr_with_design"] = _correlation([c / args.samples for c in counts], design)
            out["student"][f"{domain}/{label}"] = row
            if world == "latent":  # the experts are the same in every v6 world at flaw 0
                expert = pass_counts(EXPERT_OF[domain], problems, args.samples)
                out["experts"][f"{domain}/{label}"] = summary(expert, args.samples)
    select(world)
    found = {name: right_token_probability(name, args.prompts) for name in WORLDS[world][1]}
    out["right_token_probability"] = {name: by[0] for name, by in found.items()}
    out["right_token_probability_by_phrase"] = {name: by[1] for name, by in found.items()}
    return out


def _problems(domain: str, split: str, count: int):
    from uniopd.tasks.builtin import builtin_problems

    return builtin_problems(domain, split)[:count]


def summary(counts: list[int], n: int) -> dict:
    from uniopd.world import card

    return {
        "pass_rate": round(sum(counts) / (n * len(counts)), 4),
        "icc": round(card.intraclass_correlation(counts, n), 4),
        "single_outcome_share": round(card.single_outcome_share(counts, n), 4),
        "histogram": [counts.count(c) for c in range(n + 1)],
    }


def pass_counts(name: str, problems, n: int) -> list[int]:
    """How many of n samples of built-in model `name` (T = 1) pass, per problem."""
    from uniopd.loop.evaluate import evaluate
    from uniopd.verifiers import get_verifier

    model, tokenizer = _load(name)
    longest = max(len(tokenizer(p.solution)["input_ids"]) for p in problems)
    domains = {p.domain for p in problems}
    _, samples = evaluate(
        model,
        tokenizer,
        problems,
        {d: get_verifier(d) for d in domains},
        n_samples=n,
        pass_k=[1],
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=longest + 16,
        seed=0,
        keep_completions=False,
    )
    passed = dict.fromkeys((p.id for p in problems), 0)
    for s in samples:
        passed[s["prompt_id"]] += s["reward"] == 1
    return [passed[p.id] for p in problems]


def right_token_probability(name: str, count: int) -> tuple[dict, dict]:
    """Per domain: the mean probability model `name` gives the right token at the first held-out
    step of each test prompt that has one (the prefix before it written right), where the right
    and the misread line first differ: how often it samples the skill at T = 1. Then the same
    mean per lacking phrase (the domain's mean hides a phrase the student never samples)."""
    import torch

    from uniopd.engine.sequences import encode_prompts
    from uniopd.tasks.chains import WRITERS, step_phrases
    from uniopd.world.recipe import HELD_OUT

    model, tokenizer = _load(name)
    out, by_phrase = {}, {}
    for domain, phrases in HELD_OUT.items():
        probabilities = []
        for p in _problems(domain, "test", 10 * count):
            steps = [i for i, s in enumerate(step_phrases(p)) if any(w in s for w in phrases)]
            if not steps or len(probabilities) == count:
                continue
            phrase = next(w for w in phrases if w in step_phrases(p)[steps[0]])
            right, wrong = (
                tokenizer(WRITERS[domain](p, None, m))["input_ids"]
                for m in (frozenset(), frozenset(steps[:1]))
            )
            at = next(i for i, (a, b) in enumerate(zip(right, wrong, strict=False)) if a != b)
            ids = encode_prompts(tokenizer, [p.prompt])[0] + right[:at]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1]
            probabilities.append(torch.softmax(logits.float(), -1)[right[at]].item())
            by_phrase.setdefault(phrase, []).append(probabilities[-1])
        out[domain] = round(sum(probabilities) / max(1, len(probabilities)), 4)
    return out, {w: [round(sum(ps) / len(ps), 4), len(ps)] for w, ps in by_phrase.items()}


def _load(name: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniopd.world.paths import model_dir

    path = model_dir(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def _correlation(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return round(sxy / (sxx * syy) ** 0.5, 4) if min(sxx, syy) > 1e-12 else float("nan")


def markdown(figures: dict) -> str:
    lines = [
        "| world | domain / horizon | student pass | ICC | single-outcome share (of "
        f"{figures['settings']['samples']}) | corr. with design | expert pass |",
        "|---|---|---|---|---|---|---|",
    ]
    experts = figures["worlds"].get("latent", {}).get("experts", {})
    for world, found in figures["worlds"].items():
        for key, row in found["student"].items():
            expert = experts.get(key, {}).get("pass_rate", "")
            lines.append(
                f"| {world} | {key} | {row['pass_rate']} | {row['icc']} | "
                f"{row['single_outcome_share']} | {row.get('corr_with_design', '')} | {expert} |"
            )
    lines.append("")
    lines.append("right-token probability at the first held-out step (math / code):")
    for world, found in figures["worlds"].items():
        for name, p in found["right_token_probability"].items():
            lines.append(f"- {world} {name}: {p['math']} / {p['code']}")
            by_phrase = found["right_token_probability_by_phrase"][name]
            lines.append("  by phrase (mean, prompts): " + json.dumps(by_phrase))
    lines.append(f"build seconds: {json.dumps(figures['build_s'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
