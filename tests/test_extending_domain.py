"""A new domain is one recipe: a verifier class, a data-source function and one `register_domain`
call; then a real run trains on it, distils from its teacher and reports its accuracy.

The recipe between the markers is the one docs/extending.md shows, word for
word (checked below), so the documented code is the tested code.
"""

from __future__ import annotations

import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest

from uniopd.config import ExperimentConfig
from uniopd.data import DataError, load_source
from uniopd.data.sources import SOURCES
from uniopd.launch.start import start_run
from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS, get_verifier

ROOT = Path(__file__).resolve().parent.parent
START, END = "    # --- recipe ---\n", "    # --- end recipe ---\n"


@pytest.fixture
def parity_domain():
    """Runs the recipe; afterwards the registries are as they were."""
    VERIFIERS.names(), SOURCES.names()  # built-ins and plugins into the real entries first
    before = {r: dict(r._entries) for r in (VERIFIERS, SOURCES)}
    _recipe()
    yield
    for registry, entries in before.items():
        registry._entries.clear()
        registry._entries.update(entries)


def _recipe():
    # --- recipe ---
    import re

    from uniopd.domains import register_domain
    from uniopd.tasks.problem import Problem

    class ParityVerifier:
        def grade(self, problems, completions):
            scores = []
            for problem, text in zip(problems, completions, strict=True):
                boxes = re.findall(r"\\boxed\{([^{}]*)\}", text)
                said = boxes[-1].strip().lower() if boxes else None
                scores.append(1.0 if said == problem.answer else 0.0)
            return scores

    def parity_problems(split):
        if split not in ("train", "test"):
            raise ValueError(f"no split {split!r}; parity has train and test")
        first = 0 if split == "train" else 100
        return [
            Problem(
                id=f"parity-{n}",
                domain="parity",
                answer="odd" if n % 2 else "even",
                prompt=f"Is {n} even or odd? Answer in \\boxed{{}}.",
            )
            for n in range(first, first + 24)
        ]

    register_domain(
        "parity",
        verifier=ParityVerifier,
        source=parity_problems,
        help="Is n even or odd? Graded on the last \\boxed{} word.",
    )
    # --- end recipe ---


def _normalised(code: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", textwrap.dedent(code)).strip()


def recipe_source() -> str:
    source = inspect.getsource(_recipe)
    return _normalised(source[source.index(START) + len(START) : source.index(END)])


def test_the_documented_recipe_is_the_tested_one():
    docs = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    section = docs.split("## A new domain: verifier and data source")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks and _normalised(blocks[0]) == recipe_source()
    assert '[project.entry-points."uniopd.verifiers"]' in section


def test_the_new_domain_is_registered_and_graded(parity_domain):
    assert "parity" in VERIFIERS.names() and "parity" in SOURCES.names()
    origins = {e.name: e.origin for e in VERIFIERS.entries()}
    assert origins["parity"] == __name__.split(".")[0] and origins["math"] == "uniopd"
    train = load_source("parity:train")
    assert len(train) == 24 and train[3].answer == "odd" and "Is 3 even or odd?" in train[3].prompt
    with pytest.raises(DataError, match=r"^parity:dev: no split 'dev'"):
        load_source("parity:dev")
    said = ["so \\boxed{even}", "\\boxed{odd} no, \\boxed{ Even }", "even", "\\boxed{odd"]
    assert get_verifier("parity").grade(train[:4], said) == [1.0, 0.0, 0.0, 0.0]
    p = Problem(id="x", domain="parity", prompt="?", answer="odd")
    assert get_verifier("parity").grade([p], ["\\boxed{odd}"]) == [1.0]


def test_a_new_domain_trains_and_reports_its_accuracy(
    tiny_experiment, parity_domain, make_checkpoint, tmp_path
):
    cfg = ExperimentConfig.model_validate(
        tiny_experiment(
            make_checkpoint(41),
            {"parity": make_checkpoint(42)},
            {"train": ["parity:train"], "eval": ["parity:test"]},
            tmp_path,
            name="parity",
            seed=3,
            method={"name": "opd"},
            rollout={"prompts_per_batch": 4, "max_new_tokens": 8},
            train={"lr": 1e-3, "warmup_steps": 1},
            eval={"every": 2, "pass_k": [1], "max_prompts_per_domain": 4},
            tracking={"wandb": "disabled"},
        )
    )
    run, final = start_run(cfg)
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(0.0 <= m["accuracy/parity"] <= 1.0 for m in metrics)
    assert all("teacher_student_logp_gap" in m for m in metrics)  # routed to the parity teacher
    assert final["parity"]["n_prompts"] == 4


def test_the_recipe_as_a_plugin_module_registers_both_from_one_entry_point(monkeypatch, tmp_path):
    # The documented pyproject: only `[project.entry-points."uniopd.verifiers"]` names the module,
    # as an installed distribution (a *.dist-info on sys.path) whose module holds the recipe.
    site = tmp_path / "site"
    info = site / "uniopd_parity-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: uniopd-parity\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[uniopd.verifiers]\nparity = uniopd_parity_recipe\n")
    (info / "top_level.txt").write_text("uniopd_parity_recipe\n")
    (site / "uniopd_parity_recipe.py").write_text(recipe_source() + "\n")
    for registry in (VERIFIERS, SOURCES):
        registry.names()  # built-ins into the real entries before they are set aside
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # restored afterwards
        monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.syspath_prepend(str(site))
    try:
        assert len(load_source("parity:test")) == 24  # found through the verifiers group
        assert {e.name: e.origin for e in VERIFIERS.entries()}["parity"] == "uniopd-parity"
        assert {e.name: e.origin for e in SOURCES.entries()}["parity"] == "uniopd-parity"
        assert {e.name: e.help for e in SOURCES.entries()}["parity"].startswith("Is n even or odd?")
    finally:
        import sys

        sys.modules.pop("uniopd_parity_recipe", None)
