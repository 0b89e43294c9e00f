"""The steps that make each built-in model: tokenizer, supervised warm start, domain GRPO."""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import replace
from pathlib import Path

from transformers import AutoTokenizer

from uniopd.builder.sft import supervised_warm_start
from uniopd.tasks import describe
from uniopd.tasks.builtin import GENERATORS, builtin_problems
from uniopd.tasks.chains import warm_start_solution
from uniopd.tasks.shapes import text_problem
from uniopd.world.models import build_image_text_model, image_text_processor
from uniopd.world.models import build_model as new_model
from uniopd.world.paths import model_dir, model_key
from uniopd.world.recipe import active_recipe
from uniopd.world.tokenizer import train_tokenizer

log = logging.getLogger(__name__)


def build_tokenizer(root: Path, recipe: dict | None = None) -> None:
    recipe = recipe or active_recipe()
    tmp = root / ".tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    settings = recipe["tokenizer"]
    train_tokenizer(
        tmp,
        vocab_size=settings["vocab_size"],
        pretokenizer=settings.get("pretokenizer", "bytelevel-digits"),
        data=recipe.get("data"),
    )
    shutil.rmtree(root / "tokenizer", ignore_errors=True)
    tmp.rename(root / "tokenizer")


# The warm start's first steps, recorded with every model: a rebuild on another machine can be
# checked against them in seconds (tests/test_prebuilt_world.py) instead of the build's minutes.
CURVE_HEAD_STEPS = 40


def _warm_start(name: str, recipe: dict, tokenizer, processor=None, **options):
    """Model `name` made from its seed (or from its `init` model) and warm-started as its recipe
    says; (model, losses). An image-text model needs its `processor`. `options` go to
    supervised_warm_start (progress, stop_after)."""
    spec, seed = recipe["models"][name], recipe["seed"]
    start = None
    if "init" in spec:
        from transformers import AutoModelForCausalLM

        start = AutoModelForCausalLM.from_pretrained(model_dir(spec["init"], recipe))
    if spec.get("kind") == "image-text":
        model = build_image_text_model(spec["size"], processor, seed, start)
        tokenizer = processor.tokenizer
    else:
        model = start if start is not None else new_model(spec["size"], tokenizer, seed=seed)
    losses = supervised_warm_start(
        model,
        tokenizer,
        _warm_start_data(spec, seed, recipe.get("data", {})),
        steps=spec["sft_steps"],
        batch_size=recipe["sft"]["batch_size"],
        lr=recipe["sft"]["lr"],
        seed=seed,
        processor=processor,
        batch_by_domain="replay" in spec,
        **options,
    )
    return model, losses


def warm_start_curve(name: str, recipe: dict, tokenizer, steps: int = CURVE_HEAD_STEPS):
    """The first `steps` losses of model `name`'s warm start under `recipe`, rebuilt from scratch
    (one torch thread, as the builder runs it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        image_text = recipe["models"][name].get("kind") == "image-text"
        processor = image_text_processor(tokenizer) if image_text else None
        return _warm_start(
            name, recipe, tokenizer, processor, on_step=lambda: None, stop_after=steps
        )[1]
    finally:
        torch.set_num_threads(threads)


def build_model(root: Path, name: str, recipe: dict | None = None, on_step=None) -> dict:
    """SFT on the spec's domains, then GRPO on them if asked; written atomically to the model's
    folder (world/paths.model_key).

    `on_step()`, when given, is called after every SFT and GRPO step (progress reporting)."""
    recipe = recipe or active_recipe()
    spec, key = recipe["models"][name], model_key(name, recipe)
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    processor = image_text_processor(tokenizer) if spec.get("kind") == "image-text" else None
    model, losses = _warm_start(
        name, recipe, tokenizer, processor, desc=f"{name}: warm start", on_step=on_step
    )
    stage = root / f".{key}.sft"
    shutil.rmtree(stage, ignore_errors=True)
    model.save_pretrained(stage)
    (processor or tokenizer).save_pretrained(stage)
    record = {
        "name": name,
        "spec": spec,
        "size": spec["size"],
        "domains": spec["domains"],
        "early_stop_rate": spec.get("early_stop_rate", 0.0),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sft_steps": spec["sft_steps"],
        "sft_final_loss": round(losses[-1], 4),
        "sft_loss_head": [round(x, 6) for x in losses[:CURVE_HEAD_STEPS]],
    }
    final = stage
    if spec["grpo_steps"]:
        final, record["grpo"] = _domain_grpo(root, key, stage, spec, recipe, on_step)
    out = root / key
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(final, out, ignore=shutil.ignore_patterns("trainer_state.pt"))
    shutil.rmtree(stage, ignore_errors=True)
    return record


def _warm_start_data(spec: dict, seed: int, data: dict | None = None) -> list:
    """The SFT set; an `early_stop_rate` share of solutions stops one step early (the student's
    habit, see tasks/arith.early_stop_solution); problems that use a `held_out` phrase of their
    domain are left out (the student's missing skill, world/recipe.py). From world v6 (`data`:
    the recipe's data settings, default the selected world's) a `stop_hazard` or `misread` in the
    spec writes the solutions as tasks/chains.warm_start_solution says. A `hallucination_rate`
    share of the describe task's descriptions name one empty row (tasks/describe.py)."""
    rng = random.Random(seed)
    held_out = spec.get("held_out", {})
    out = []
    # `replay`: the first problems of other domains, kept in a warm start on a new domain
    portions = [(d, None) for d in spec["domains"]] + list(spec.get("replay", {}).items())
    for domain, count in portions:
        module = GENERATORS[domain]
        for p in builtin_problems(domain, "sft", data)[:count]:
            if any(phrase in p.prompt for phrase in held_out.get(domain, ())):
                continue
            if "stop_hazard" in spec or "misread" in spec:
                hazard, misread = spec.get("stop_hazard", 0.0), _misread(spec, domain)
                p = replace(p, solution=warm_start_solution(p, rng, hazard, misread))
            if rng.random() < spec.get("early_stop_rate", 0.0):
                p = replace(p, solution=module.early_stop_solution(p))
            if domain == "describe" and rng.random() < spec.get("hallucination_rate", 0.0):
                p = replace(p, solution=describe.hallucinated_solution(p, rng))
            if spec.get("reads") == "rendering" and p.images:  # the cross-modal text teacher
                p = text_problem(p)
            out.append(p)
    return out


def _misread(spec: dict, domain: str) -> dict | None:
    """The spec's `misread` with `domain`'s share of right lines (the recipe gives one a domain)."""
    misread = spec.get("misread")
    if misread is None:
        return None
    rate = misread["right_rate"]
    return {**misread, "right_rate": rate[domain] if isinstance(rate, dict) else rate}


def _domain_grpo(
    root: Path, name: str, start: Path, spec: dict, recipe: dict, on_step=None
) -> tuple[Path, dict]:
    """GRPO on the expert's own domain, through the same loop users run (`uniopd run`)."""
    from uniopd.config import ExperimentConfig, save_resolved
    from uniopd.loop.runner import prepare
    from uniopd.run_dir import RunDir
    from uniopd.setup.plan import make_plan

    g = recipe["grpo"]
    cfg = ExperimentConfig.model_validate(
        {
            "name": f"{name}-grpo",
            "description": f"domain GRPO that turns the warm-started {name} into an expert",
            "seed": recipe["seed"],
            "device": "cpu",
            "student": str(start),
            "data": {
                "train": [f"builtin:{d}/train" for d in spec["domains"]],
                "eval": [f"builtin:{d}/test" for d in spec["domains"]],
            },
            "method": {"name": "grpo", "options": {"grpo": {"std": g["std"]}}},
            "rollout": {
                "group_size": g["group_size"],
                "prompts_per_batch": g["prompts_per_batch"],
                "max_new_tokens": 64,
            },
            "train": {
                "steps": spec["grpo_steps"],
                "lr": g["lr"],
                "warmup_steps": 0,
                "weight_decay": 0.0,
            },
            "eval": {
                "every": 0,
                "n_samples": 1,
                "temperature": 0.0,
                "max_prompts_per_domain": g["eval_prompts"],
            },
            "output": {
                "root": str(root / "runs"),
                "log_rollouts_every": 0,
                "keep_checkpoints": 1,
                "progress": on_step is None,
            },
            "tracking": {"wandb": "disabled"},  # a build step, not an experiment to compare
            # the world's own data (v6's chains at its default horizon); v4 and v5 share theirs
            **({"world": {"version": recipe["version"]}} if "data" in recipe else {}),
        }
    )
    run = RunDir.create(cfg.output.root, cfg.name)
    save_resolved(cfg, run.path / "config.yaml")
    trainer = prepare(make_plan(cfg), run)
    if on_step is not None:
        trainer.on_step = lambda step, metrics: on_step()
    after = trainer.train()
    before = json.loads((run.path / "eval.jsonl").read_text().splitlines()[0])
    accuracy = {d: {"before": before[d]["acc"], "after": after[d]["acc"]} for d in spec["domains"]}
    log.info("%s: domain GRPO greedy accuracy %s", name, accuracy)
    return run.latest_checkpoint(), {
        "steps": spec["grpo_steps"],
        "run": str(run.path),
        "greedy_accuracy": accuracy,
    }
