"""`uniopd workspace`: the saved wandb view comparing OPD, Uni-OPD and GRPO. Saving needs the
service, which this machine cannot reach; everything up to the save is real: the view is built
with wandb-workspaces and serialized as it would be sent, and a save without a login is refused
by wandb itself."""

import json

import pytest

from uniopd.board.wandb_workspace import comparison_workspace
from uniopd.commands.cli import main
from uniopd.tracking.panels import comparison_sections


def test_the_view_groups_by_method_and_charts_each_domain():
    view = comparison_workspace("me", "proj", ["math", "code"], "cmp")
    spec = view._to_model().model_dump(by_alias=True, mode="json")
    (runset,) = spec["spec"]["section"]["runSets"]
    assert runset["grouping"] == [{"section": "run", "name": "group"}]
    assert runset["filters"]["filters"][0]["key"]["name"] == "jobType"  # sweeps' trials left out
    sections = spec["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"] for s in sections] == [s.name for s in comparison_sections(["math", "code"])]
    panels = {p["config"]["chartTitle"]: p["config"] for s in sections for p in s["panels"]}
    assert panels["code: held-out accuracy"]["metrics"] == ["eval/code/acc"]
    assert panels["code: held-out accuracy"]["xAxis"] == "_step"
    walls = [p for s in sections if "wall" in s["name"] for p in s["panels"]]
    assert len(walls) == 2 and all(p["config"]["xAxis"] == "_absolute_runtime" for p in walls)
    order = panels["order consistency before / after calibration"]
    assert order["metrics"] == ["order/consistency_before", "order/consistency_after"]
    assert {c["groupBy"] for c in panels.values()} == {"group"}
    assert {c["groupArea"] for c in panels.values()} == {"stderr"}  # mean over seeds, its error


@pytest.mark.slow  # the session's three method runs
def test_every_charted_metric_is_one_the_runs_log(method_runs):
    """The view names metrics by their run-directory keys; a renamed metric would leave an empty
    chart, so each one charted must be logged by OPD, Uni-OPD or GRPO."""
    logged = set()
    for run in method_runs.iterdir():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            logged |= set(json.loads(line))
        for line in (run / "eval.jsonl").read_text().splitlines():
            record = json.loads(line)
            logged |= {f"eval/{d}/{k}" for d, e in record.items() if isinstance(e, dict) for k in e}
    # (the preference section's: tests/test_pair_file_training.py, from a pair run)
    sections = [s for s in comparison_sections(["math"]) if not s.name.startswith("Preference")]
    charted = {m for s in sections for c in s.charts for m in c.metrics}
    assert charted - logged == set()


def test_the_command_writes_the_view_and_refuses_what_it_cannot_do(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "view.json"
    argv = ["workspace", "me/proj", "--domains", "math", "--dry-run", "--spec", str(spec)]
    assert main(argv) == 0
    assert json.loads(spec.read_text())["project"] == "proj"
    assert "7 sections" in capsys.readouterr().err
    assert main(["workspace", "me/proj", "--dry-run"]) == 2
    assert "name --domains" in capsys.readouterr().err
    assert main(["workspace", "proj", "--domains", "math"]) == 2
    assert "'proj' is not ENTITY/PROJECT" in capsys.readouterr().err
    # no login here: wandb itself refuses the save, and the command says where it stopped
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert main(["workspace", "me/proj", "--domains", "math"]) == 2
    err = capsys.readouterr().err
    assert "saving to me/proj: UsageError" in err and "API key" in err
    assert main(["workspace", "me/proj"]) == 2
    assert "reading me/proj: UsageError" in capsys.readouterr().err
