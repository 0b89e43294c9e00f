"""`uniopd world build | info`: the tiny built-in world of the default recipe, of an experiment's
`world` section (`--from FILE`), or of dials given here.

    uniopd world build                                  # what is missing of the default world
    uniopd world build --teacher-flaw 0.3 --deficit skill
    uniopd world build --from experiments/study/order/uniopd_f0.3.yaml
    uniopd world build --version 6 --latent-difficulty --horizon 8
    uniopd world info  --teacher-flaw 0.3               # where each model is, what it scored
    uniopd world info --json                            # the full manifest record of each model
"""

from __future__ import annotations

import json

from uniopd.terminal import load as _load


def _world(args):
    """The world section the command acts on (--from's, with the dials given here on top), or
    the message saying which setting is wrong."""
    from pydantic import ValidationError

    from uniopd.config.world import WorldConfig

    base = _load(args.source, []).world.model_dump() if args.source else {}
    given = {
        "version": args.world_version,
        "teacher_flaw": args.teacher_flaw,
        "deficit": args.deficit,
        "latent_difficulty": args.latent_difficulty,
        "horizon": args.horizon,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    try:
        return WorldConfig.model_validate(base)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        fields = (err.get("ctx") or {}).get("fields") or [".".join(map(str, err["loc"]))]
        return f"world.{fields[0]}: {err['msg']}"


def cmd_world(args) -> int:
    from uniopd.builder.build import build_world
    from uniopd.terminal import fail
    from uniopd.world.paths import MODEL_NAMES, model_dir, model_key, world_dir
    from uniopd.world.recipe import active_recipe

    world = _world(args)
    if isinstance(world, str):
        return fail(world)
    world.select()
    if args.action == "ship":  # before listing models: v4 has no models of later versions
        from uniopd.builder.prebuilt import shippable

        problem = shippable(world.version, world.dials())
        if problem:
            return fail(f"uniopd world ship: {problem}")
    in_version = active_recipe()["models"]  # v4 lacks the models later versions added
    unknown = [n for n in args.models or [] if n not in in_version]
    if unknown:
        return fail(f"--models {unknown[0]}: not part of world version {world.version}")
    names = args.models or [n for n in MODEL_NAMES if n in in_version]
    if args.action == "ship" and not args.models:  # what is built of the selected world
        names = [n for n in MODEL_NAMES if (model_dir(n) / "config.json").exists()]
    if args.action == "build":
        manifest = build_world(names, force=args.force)
    elif args.action == "ship":  # maintainers: the built models onto their version's shelf
        from uniopd.builder.prebuilt import ship

        path = world_dir() / "manifest.json"
        shipped = ship(names, json.loads(path.read_text()))
        print(json.dumps({k: v["quality"] for k, v in shipped["models"].items()}, indent=2))
        return 0
    else:
        path = world_dir() / "manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    recipe = active_recipe()
    print(f"world: version {recipe['version']}, {world.dials()}; folder {world_dir()}")
    models = manifest.get("models", {})
    out = {
        n: {"path": str(model_dir(n)), **models.get(model_key(n), {"built": False})} for n in names
    }
    print(json.dumps(out, indent=2) if args.json else "\n".join(table(out)))
    return 0


def table(models: dict) -> list[str]:
    """One line per model: built or not, where from, size, held-out accuracy per domain (greedy),
    the early-stop habit; the folder's name (its full path and every figure: --json)."""
    rows = [("model", "built", "source", "params", "accuracy", "early stop", "folder")]
    for name, entry in models.items():
        built = entry.get("built", True)  # a manifest entry is a built model
        quality = entry.get("quality") or {}
        rows.append(
            (
                name,
                "yes" if built else "no",
                entry.get("source", "-") if built else "-",
                f"{entry['parameters']:,}" if "parameters" in entry else "-",
                " ".join(f"{d} {v:.2f}" for d, v in sorted(quality.items())) or "-",
                f"{entry['early_stop_rate']:.2f}" if "early_stop_rate" in entry else "-",
                entry["path"].rsplit("/", 1)[-1],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def add_parser(sub) -> None:
    from uniopd.world.recipe import DEFICITS

    p = sub.add_parser("world", help="the tiny built-in world: build it, or say what is built")
    p.add_argument(
        "action",
        choices=["build", "info", "ship"],
        help="build what is missing (the default world's models are copied from the package); "
        "info: where each model is and its figures; ship: (maintainers) copy the built default "
        "world into the package",
    )
    p.add_argument("--force", action="store_true", help="rebuild the models from scratch")
    p.add_argument("--from", dest="source", help="an experiment file whose world section to use")
    p.add_argument("--version", dest="world_version", type=int, help="the recipe version")
    p.add_argument("--teacher-flaw", type=float, help="world.teacher_flaw (0 to 0.9)")
    p.add_argument("--deficit", choices=DEFICITS, help="world.deficit")
    p.add_argument(
        "--latent-difficulty",
        action="store_true",
        default=None,  # unset: the --from file's (or the default world's) setting stands
        help="world.latent_difficulty: true (version 6)",
    )
    p.add_argument("--horizon", type=int, help="world.horizon (version 6: 1 to 8 chained steps)")
    p.add_argument("--models", nargs="+", help="only these built-in models (default: all of them)")
    p.add_argument(
        "--json", action="store_true", help="the full record of each model as JSON, not a table"
    )
    p.set_defaults(fn=cmd_world)
