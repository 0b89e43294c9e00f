"""benchmarks/device_check.py, the one prepared GPU check: its dry run executes every section's
code on the CPU (tiny shapes, the 2-process update over gloo) and writes the documented JSON and
Markdown, with none of the packages a stock CUDA image lacks beyond the ones docs/scale.md says
to carry; on a machine without a GPU the real run says so and exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_check.py"
# not on the GPU image (the device's package list) and not carried for the check
ABSENT_ON_DEVICE = ("optuna", "wandb", "math_verify", "evalplus", "datasets", "optuna_dashboard")


def site_without(absent: tuple[str, ...], where: Path) -> Path:
    """A sitecustomize that swaps this venv's site-packages for a folder of links to all of it
    but `absent`: to the interpreter those packages are simply not installed (find_spec None),
    as on the GPU image, where libraries probing for them (accelerate for wandb) go on."""
    packages = Path(next(p for p in sys.path if p.endswith("site-packages")))
    filtered = where / "site-packages"
    filtered.mkdir(parents=True)
    for entry in packages.iterdir():
        if not entry.name.lower().replace("-", "_").startswith(absent):
            (filtered / entry.name).symlink_to(entry)
    custom = where / "custom"
    custom.mkdir()
    (custom / "sitecustomize.py").write_text(
        f"import sys\nsys.path[:] = [{str(filtered)!r} if p == {str(packages)!r} else p "
        "for p in sys.path]\n"
    )
    return custom


@pytest.mark.slow
def test_the_dry_run_runs_every_section_without_the_packages_the_gpu_image_lacks(tmp_path):
    site = site_without(ABSENT_ON_DEVICE, tmp_path / "env")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "HF_HUB_OFFLINE": "1"}
    probe = (
        "import importlib.util as u, sys; print(all(u.find_spec(n) is None for n in sys.argv[1:]))"
    )
    hidden = subprocess.run(
        [sys.executable, "-c", probe, *ABSENT_ON_DEVICE], capture_output=True, text=True, env=env
    )
    assert hidden.stdout.strip() == "True", hidden.stderr  # the stand-in environment holds
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((out / "device_check.json").read_text())
    sections = record["sections"]
    assert record["dry_run"] is True and record["machine"]["device"] == "cpu (dry run)"
    assert {s["status"] for s in sections.values()} == {"ok"}, sections
    updates = [k for k in sections if k.startswith("update/")]
    assert len(updates) == 2 and all(sections[k]["plan_update_gib"] is not None for k in updates)
    assert {"rollout/hf/8", "rollout/hf-paged/8", "rollout/hf/16", "rollout/hf-paged/16"} <= set(
        sections
    )
    assert all(sections[k]["tokens_per_s"] > 0 for k in sections if k.startswith("rollout/"))
    assert sections["two_process"]["processes"] == 2
    assert sections["two_process"]["ranks_agree"] is True
    md = (out / "device_check.md").read_text()
    for heading in ("## Update: peak memory against the plan", "## Rollout engines"):
        assert heading in md
    assert "| update/tiny | ok |" in md


def test_the_real_run_on_a_machine_without_a_gpu_says_so_and_exits_2(tmp_path, capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import device_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert device_check.main(["--out", str(tmp_path / "out")]) == 2
    assert "no CUDA device" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
