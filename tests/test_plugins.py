"""A package outside uniopd adds an objective through an entry point: a real distribution is built,
installed into a temporary site directory with pip, and a run trains with its objective."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).parent / "extending" / "clipped_opd.py"


def _install(tmp_path, name: str, module_code: str, entry: str) -> Path:
    """Build and install distribution `name` (one module) into a fresh site directory."""
    src, site = tmp_path / f"{name}-src", tmp_path / f"{name}-site"
    src.mkdir()
    module = name.replace("-", "_")
    (src / f"{module}.py").write_text(module_code)
    (src / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n'
        f'[tool.setuptools]\npy-modules = ["{module}"]\n'
        f'[project.entry-points."uniopd.objectives"]\n{entry} = "{module}"\n'
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def _uniopd(site: Path, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "uniopd.commands.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_an_installed_plugin_objective_trains(tiny_experiment, tmp_path, make_checkpoint):
    site = _install(tmp_path, "uniopd-clipped-opd", RECIPE.read_text(), "clipped_opd")
    listed = _uniopd(site, "list", "objectives")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if "clipped_opd" in x)
    assert "uniopd-clipped-opd" in line  # the origin is the plugin's distribution
    exp = tmp_path / "plugin.yaml"
    exp.write_text(
        json.dumps(
            tiny_experiment(
                make_checkpoint(11),
                make_checkpoint(12),
                {"train": ["builtin:math/train"], "limit": 8},
                tmp_path / "runs",
                name="plugin",
                method={"name": "clipped_opd", "options": {"clipped_opd": {"clip": 0.25}}},
                rollout={"max_new_tokens": 8},
                eval=None,
            )
        )
    )
    run = _uniopd(site, "run", str(exp))
    assert run.returncode == 0, run.stderr[-2000:]
    rollouts = (
        (tmp_path / "runs" / "plugin" / "rollouts" / "step_000002.jsonl").read_text().splitlines()
    )
    assert all(max(abs(a) for a in json.loads(r)["advantages"]) <= 0.25 for r in rollouts)
    # without the site directory the same file is refused, naming the objective
    shutil.rmtree(site)
    refused = _uniopd(tmp_path, "validate", str(exp))
    assert refused.returncode == 2 and "unknown objective 'clipped_opd'" in refused.stderr


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_is_a_clear_error(tmp_path):
    site = _install(tmp_path, "uniopd-broken", "import no_such_module_here\n", "broken")
    out = _uniopd(
        site, "validate", str(Path(__file__).parents[1] / "experiments" / "quickstart.yaml")
    )
    assert out.returncode == 2
    assert "plugin 'broken'" in out.stderr and "uniopd-broken" in out.stderr
    assert "No module named 'no_such_module_here'" in out.stderr
