"""Every experiment file in the repo loads, validates, and round-trips through the saved form.

Files under experiments/ whose name starts with `_` (e.g. `_base_math.yaml`) are partial bases:
they are only ever read through another file's `base:`, so they are not loaded on their own, but
each must be inherited by at least one experiment.
"""

from pathlib import Path

import pytest
import yaml

from uniopd.config import load_experiment, save_resolved

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
ALL_FILES = sorted(p for ext in ("*.yaml", "*.yml") for p in EXPERIMENTS.rglob(ext))
PARTIALS = [p for p in ALL_FILES if p.name.startswith("_")]
FULL = [p for p in ALL_FILES if not p.name.startswith("_")]


def _id(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS))


def test_there_are_experiment_files():
    assert FULL, f"no experiment files found under {EXPERIMENTS}"


@pytest.mark.parametrize("path", FULL, ids=_id)
def test_experiment_file_loads_and_round_trips(path, tmp_path):
    cfg = load_experiment(path)
    saved = tmp_path / "config.yaml"
    save_resolved(cfg, saved)
    assert load_experiment(saved) == cfg


@pytest.mark.parametrize("path", ALL_FILES, ids=_id)
def test_experiment_file_opens_with_a_comment_naming_its_command(path):
    # STYLE: each file opens with the paper cell it reproduces and the command that runs it.
    lines = path.read_text().splitlines()
    opening = []
    for line in lines:
        if not line.startswith("#"):
            break
        opening.append(line)
    assert opening, f"{_id(path)} must open with a comment: the paper cell and the command"
    if path in FULL:
        assert any(path.name in line for line in opening), (
            f"{_id(path)}: the opening comment should give the command, which names {path.name}"
        )


def test_run_names_are_unique():
    # Two experiments with one name would write into the same run directory.
    owners: dict[str, list[str]] = {}
    for path in FULL:
        owners.setdefault(load_experiment(path).name, []).append(_id(path))
    clashes = {name: files for name, files in owners.items() if len(files) > 1}
    assert not clashes, f"run names used by several experiment files: {clashes}"


def test_every_partial_base_is_inherited():
    inherited = set()
    for other in ALL_FILES:
        base = (yaml.safe_load(other.read_text()) or {}).get("base")
        if isinstance(base, str):
            inherited.add((other.parent / base).resolve())
    orphans = [_id(p) for p in PARTIALS if p.resolve() not in inherited]
    assert not orphans, (
        f"partial bases (names starting with '_') that no experiment inherits: {orphans}"
    )


REGIME_FILES = [p for p in FULL if p.parent.name == "ablations" or "study" in p.parts]


@pytest.mark.parametrize("path", REGIME_FILES, ids=_id)
def test_ablation_and_study_files_state_their_regime(path):
    # The released regime is one optimizer step per rollout batch; the tiny world's ablations ran
    # 4 PPO epochs. A file of either study says which, in its own text, not through its base.
    raw = yaml.safe_load(path.read_text())
    assert "epochs" in (raw.get("train") or {}), f"{_id(path)}: set train.epochs (the regime)"
    opening = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert any("Regime:" in line for line in opening), f"{_id(path)}: say the regime up top"
