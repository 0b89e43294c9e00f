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

# The tiers (pyproject.toml's markers). A plain `pytest` is the quick tier: units, algorithms,
# config, contracts and short loops on random 2-layer models. `--full` adds the tests that train
# or build a tiny-world model, run a sweep, or are slow for another reason; CI runs `--full`.
TIERS = ("world", "sweep", "slow")


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help="run every tier (world, sweep, slow), as CI does; a plain pytest runs the quick tier",
    )


def tier_of(item) -> str:
    return next((t for t in TIERS if item.get_closest_marker(t)), "quick")


def pytest_collection_modifyitems(config, items):
    for item in items:  # a <property name="tier"> in --junitxml (benchmarks/test_tiers.py reads it)
        item.user_properties.append(("tier", tier_of(item)))
    if config.getoption("--full") or config.option.markexpr:
        return  # everything, or the tiers an explicit -m expression picks
    quick, later = [], []
    for item in items:
        (quick if tier_of(item) == "quick" else later).append(item)
    if later:
        config.hook.pytest_deselected(items=later)
        items[:] = quick


def pytest_report_header(config):
    if not (config.getoption("--full") or config.option.markexpr):
        return "quick tier: tests marked world, sweep or slow are left out (--full runs them)"
    return None


def tiny_experiment_dict(student, teachers, data, root, **overrides) -> dict:
    """The experiment dict of a tiny CPU run, with `overrides` deep-merged into it (the tests'
    experiments state only what differs; see the `tiny_experiment` fixture)."""
    cfg = {
        "name": "tiny",
        "device": "cpu",
        "student": student if isinstance(student, dict) else str(student),
        "teachers": (
            {domain: str(ref) for domain, ref in teachers.items()}
            if isinstance(teachers, dict)
            else {"math": str(teachers)}
        ),
        "data": data if isinstance(data, dict) else {"train": [str(source) for source in data]},
        "rollout": {"group_size": 2, "prompts_per_batch": 2, "max_new_tokens": 6},
        "train": {"steps": 2, "warmup_steps": 0},
        "eval": {"every": 0, "n_samples": 1, "max_prompts_per_domain": 2},
        "output": {"progress": False} if root is None else {"root": str(root), "progress": False},
    }
    return _merged(cfg, overrides)


def _merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def tiny_experiment():
    """tiny_experiment(student, teachers, data, root, **overrides) -> the experiment dict of a
    tiny CPU run, for ExperimentConfig.model_validate or a YAML file:

        {"name": "tiny", "device": "cpu", "student": str(student), "teachers": ..., "data": ...,
         "rollout": {"group_size": 2, "prompts_per_batch": 2, "max_new_tokens": 6},
         "train": {"steps": 2, "warmup_steps": 0},
         "eval": {"every": 0, "n_samples": 1, "max_prompts_per_domain": 2},
         "output": {"root": str(root), "progress": False}}

    `student`: a path (or a dict, kept as given); `teachers`: {domain: path} (or one path, the
    math teacher); `data`: a dict kept as given, or a list of train sources; `root`: the output
    root (None: no root). Each override is deep-merged: a dict updates the section it names (new
    sections are added, e.g. seed=3 or tracking={"wandb": "disabled"}), any other value replaces,
    and None leaves the key out (eval=None: no eval section; train={"warmup_steps": None})."""
    return tiny_experiment_dict


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fails the test if any model's weights are loaded or the run is relaunched in several
    processes: what bad input must be refused before."""
    from transformers import AutoModelForCausalLM

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr("uniopd.engine.loading.load_model", refuse)
    monkeypatch.setattr("uniopd.launch.multiprocess.relaunch", refuse)


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


@pytest.fixture(scope="session")
def make_image_text_checkpoint(tmp_path_factory, tokenizer_dir, make_checkpoint):
    """make_image_text_checkpoint(seed, from_text=None) -> directory of a tiny LLaVA checkpoint
    with its processor (the tiny world's image-text class: uniopd/world/models.py); `from_text`:
    the seed of a make_checkpoint model whose language weights it starts from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniopd.world import models

    made = {}

    def make(seed: int, from_text: int | None = None):
        key = (seed, from_text)
        if key not in made:
            tok = AutoTokenizer.from_pretrained(tokenizer_dir)
            processor = models.image_text_processor(tok)
            models.SIZES.setdefault("test32x2", (32, 2, 4))
            text = None
            if from_text is not None:
                text = AutoModelForCausalLM.from_pretrained(make_checkpoint(from_text))
            model = models.build_image_text_model("test32x2", processor, seed, text)
            path = tmp_path_factory.mktemp(f"mm-ckpt-{seed}-{from_text}")
            model.save_pretrained(path)
            processor.save_pretrained(path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def visual_rows(tmp_path_factory):
    """A .jsonl of visual-domain rows (tasks/shapes.py) with their pictures as PNG files beside
    it and the text rendering as a column: the form a user's own image data takes."""
    import json
    import random

    from uniopd.tasks import shapes

    root = tmp_path_factory.mktemp("visual-rows")
    rng = random.Random(0)
    lines = []
    for i in range(16):
        p = shapes.make_problem(rng, rng.choice(shapes.LEVELS))
        (root / f"pic{i}.png").write_bytes(p.images[0])
        row = {"id": f"pic-{i}", "domain": "visual", "prompt": p.prompt, "answer": p.answer}
        lines.append(json.dumps({**row, "images": [f"pic{i}.png"], **p.meta}) + "\n")
    (root / "rows.jsonl").write_text("".join(lines))
    return root / "rows.jsonl"


@pytest.fixture(scope="session")
def method_runs(coin, tmp_path_factory):
    """A folder of real runs of OPD (with the TensorBoard mirror), Uni-OPD and GRPO on the coin
    task, two steps each, evaluated every step: what the board and analysis/ are tested on."""
    from uniopd.config import ExperimentConfig, save_resolved
    from uniopd.loop.runner import prepare
    from uniopd.run_dir import RunDir
    from uniopd.setup.plan import make_plan

    root = tmp_path_factory.mktemp("method-runs")
    home = os.environ.get("UNIOPD_HOME")
    os.environ["UNIOPD_HOME"] = str(root / "home")  # the difficulty cache of these runs
    uniopd = {
        "balance": {
            "offline": {"mode": "balance", "n_samples": 2},
            "online": {"enabled": True, "ratio": 1.0},
        },
        "calibration": {"margin_shift": True, "mode": "mean", "delta": 0.4},
    }
    kinds = {
        "opd": {"method": {"name": "opd"}, "tracking": {"wandb": "disabled", "tensorboard": True}},
        "uniopd": {"method": {"name": "opd"}, **uniopd},
        "grpo": {"method": {"name": "grpo"}},
    }
    try:
        for name, sections in kinds.items():
            cfg = tiny_experiment_dict(  # the sections replace the base's (tracking for OPD)
                coin["student"],
                coin["teacher"],
                {"train": [str(coin["data"])], "eval": [str(coin["data"])]},
                root / "runs",
                name=name,
                seed=0,
                rollout={"group_size": 4, "prompts_per_batch": 4},
                train={"lr": 1e-4},
                eval={"every": 1, "max_prompts_per_domain": 4},
                tracking={"wandb": "disabled"},
            )
            cfg = ExperimentConfig.model_validate({**cfg, **sections})
            run = RunDir.create(cfg.output.root, cfg.name)
            save_resolved(cfg, run.path / "config.yaml")
            prepare(make_plan(cfg), run).train()
    finally:
        if home is None:
            os.environ.pop("UNIOPD_HOME", None)
        else:
            os.environ["UNIOPD_HOME"] = home
    return root / "runs"


@pytest.fixture
def postgres_url():
    """URL of a throwaway PostgreSQL cluster started for this test (tests/pg_cluster.py)."""
    from pg_cluster import throwaway_cluster

    with throwaway_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def coin(tmp_path_factory, make_checkpoint):
    """A task with certain mixed groups and no fake: every prompt's answer is 1 or 2, and the
    models are real 2-layer checkpoints warm-started to answer \\boxed{1} or \\boxed{2} at random,
    so math-verify grades about half of each group correct. {"data", "student", "teacher"}."""
    import json
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniopd.builder.sft import supervised_warm_start
    from uniopd.tasks.problem import Problem

    root = tmp_path_factory.mktemp("coin")
    rng = random.Random(0)
    rows = [
        {
            "id": f"coin-{i}",
            "domain": "math",
            "prompt": f"Coin {i}: is it 1 or 2?",
            "answer": str(rng.choice([1, 2])),
        }
        for i in range(24)
    ]
    data = root / "coin.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = {"data": data}
    for name, seed in (("student", 31), ("teacher", 32)):
        tok = AutoTokenizer.from_pretrained(make_checkpoint(seed))
        model = AutoModelForCausalLM.from_pretrained(make_checkpoint(seed))
        sft = [
            Problem(
                id=r["id"],
                domain="math",
                prompt=r["prompt"],
                answer=r["answer"],
                solution=f"\\boxed{{{rng.choice([1, 2])}}}",
            )
            for r in rows * 4
        ]
        supervised_warm_start(model, tok, sft, steps=150, batch_size=16, lr=5e-3, seed=seed)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out
