"""`uniopd eval` and `uniopd merge`: commands on a model or a run's checkpoint rather than a
training run (held-out evaluation; a LoRA adapter folded into a plain checkpoint)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from uniopd.terminal import fail as _fail
from uniopd.terminal import load as _load
from uniopd.terminal import print_eval as _print_eval


def cmd_eval(args) -> int:
    from uniopd.config import load_experiment
    from uniopd.engine import loading
    from uniopd.engine.precision import Precision
    from uniopd.launch.start import build_models
    from uniopd.loop.evaluate import evaluate_as_configured
    from uniopd.refs import resolve_model
    from uniopd.setup.plan import make_plan
    from uniopd.verifiers import get_verifier

    target = Path(args.target)
    if target.is_dir():  # a run directory: its config, its latest checkpoint
        from uniopd.run_dir import RunDir

        ckpt = RunDir(target).latest_checkpoint()
        if ckpt is None:
            return _fail(f"{target}: no checkpoint in this run directory")
        # a LoRA run's checkpoint is its adapter, which loads as a model on its own: transformers
        # reads the base it names (adapter_config.json) and puts the adapter on it
        fixed = [f"student.model={ckpt}", "student.lora=null"]
        cfg = load_experiment(target / "config.yaml", [*fixed, *args.overrides])
    else:
        cfg = _load(args.target, args.overrides)
    plan = make_plan(cfg)
    if not plan.eval:
        return _fail(f"{args.target}: data.eval: no held-out sources to evaluate on")
    device = loading.pick_device(cfg.device)
    build_models([cfg.student.model])
    path = resolve_model(cfg.student.model)
    processor = loading.load_processor(path, cfg.student.model)  # an image-text model's
    tok = processor.tokenizer if processor else loading.load_tokenizer(path, cfg.student.model)
    model = loading.load_model(
        path,
        device,
        Precision(cfg.precision, device).teacher_dtype,  # inference only: no master copy
        False,
        cfg.student.model,
        cfg.attn_implementation,
    )
    verifiers = {d: get_verifier(n) for d, n in plan.verifier_for.items()}
    summary, samples = evaluate_as_configured(
        model, tok, plan.eval, verifiers, cfg, processor=processor
    )
    print(f"model: {cfg.student.model}")
    _print_eval(summary)
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"model": cfg.student.model, "summary": summary, "samples": samples}, indent=1
            )
        )
    return 0


def cmd_merge(args) -> int:
    from uniopd.engine.lora import merge_adapter
    from uniopd.refs import resolve_model

    try:
        base = resolve_model(args.base) if args.base else None
    except ValueError as exc:  # an unknown builtin:<name>
        return _fail(f"merge --base: {exc}")
    out = merge_adapter(args.checkpoint, args.out, base)
    print(f"uniopd: {args.checkpoint} merged into a plain checkpoint at {out}", file=sys.stderr)
    return 0
