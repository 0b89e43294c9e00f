"""Image-text students through the real loop (METHOD 5): MLLM -> MLLM, cross-modal (a text
teacher reading each picture's text rendering) and Uni-OPD's balancing and calibration on them,
with real tiny LLaVA checkpoints and visual-domain rows whose pictures are PNG files on disk.
Bad input (a text student given pictures, a text teacher without a rendering to read, a template
field a row lacks, a checkpoint without its processor) exits 2 at load, naming what is wrong."""

import html
import json
import shutil

import pytest
import torch
import yaml

from uniopd.analysis.report import write_report
from uniopd.commands.cli import main
from uniopd.config import ExperimentConfig, save_resolved
from uniopd.engine.sequences import pack
from uniopd.engine.vision import encode_inputs, image_token_ids
from uniopd.loop.runner import prepare
from uniopd.loop.scoring import Scorer
from uniopd.run_dir import RunDir
from uniopd.setup.parts import load_parts
from uniopd.setup.plan import make_plan

TEMPLATES = {"visual": "{rendering} {prompt}"}


@pytest.fixture(scope="module")
def checkpoints(make_image_text_checkpoint, make_checkpoint):
    return {
        "student": str(make_image_text_checkpoint(5, from_text=1)),
        "mm_teacher": str(make_image_text_checkpoint(6, from_text=2)),
        "text_teacher": str(make_checkpoint(2)),
    }


def _cfg(tiny_experiment, tmp_path, visual_rows, student, teacher, **sections) -> dict:
    """Each section given replaces the whole of the base's."""
    cfg = tiny_experiment(
        student,
        {"visual": teacher},
        {"train": [str(visual_rows)], "eval": [str(visual_rows)]},
        tmp_path / "runs",
        name="mm",
        seed=1,
        rollout={"group_size": 4, "prompts_per_batch": 4},
        train={"lr": 1e-4},
        eval={"max_prompts_per_domain": 4},
        tracking={"wandb": "disabled"},
    )
    return {**cfg, **sections}


def _train(cfg: dict):
    cfg = ExperimentConfig.model_validate(cfg)
    run = RunDir.create(cfg.output.root, cfg.name)
    save_resolved(cfg, run.path / "config.yaml")
    trainer = prepare(make_plan(cfg), run)
    trainer.train()
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    return run, trainer, [json.loads(x) for x in lines]


@pytest.mark.slow  # a cross-modal Uni-OPD run with balancing, evaluation and a report
def test_a_text_teacher_scores_the_students_tokens_behind_the_rendering(
    tiny_experiment, checkpoints, visual_rows, tmp_path, monkeypatch
):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))  # the difficulty cache
    data = {"train": [str(visual_rows)], "eval": [str(visual_rows)], "teacher_templates": TEMPLATES}
    s, text = checkpoints["student"], checkpoints["text_teacher"]
    cfg = ExperimentConfig.model_validate(
        _cfg(tiny_experiment, tmp_path, visual_rows, s, text, data=data)
    )
    plan = make_plan(cfg)
    parts = load_parts(plan)
    assert parts.processor is not None and parts.text_readers == {checkpoints["text_teacher"]}
    rows = plan.train[:3]
    ids, vision = encode_inputs(parts.tokenizer, parts.processor, rows, parts.prompt_format)
    tok = parts.tokenizer
    batch = pack(ids, [tok("2 red.")["input_ids"]] * 3, tok.pad_token_id, vision)
    own = Scorer(parts, frozenset(), cfg).own_prompts(batch, rows)[checkpoints["text_teacher"]]
    image = image_token_ids(parts.processor)[0]
    assert own.vision is None and not (own.input_ids_N_L == image).any()
    assert torch.equal(own.response_ids_N_T, batch.response_ids_N_T)  # the very same tokens
    for i, p in enumerate(rows):
        prompt = tok.decode(own.input_ids_N_L[i, : own.prompt_width], skip_special_tokens=True)
        assert f"{p.meta['rendering']} {p.prompt}" in prompt
    # and the run: cross-modal Uni-OPD (balancing, calibration) trains and evaluates
    uniopd = {
        "balance": {
            "offline": {"mode": "balance", "n_samples": 2},
            "online": {"enabled": True, "ratio": 1.0},
        },
        "calibration": {"margin_shift": True, "mode": "mean", "delta": 0.4},
    }
    cfg = _cfg(
        tiny_experiment,
        tmp_path,
        visual_rows,
        checkpoints["student"],
        checkpoints["text_teacher"],
        data=data,
        **uniopd,
    )
    run, _, metrics = _train(cfg)
    assert len(metrics) == 2 and all(m["loss"] == m["loss"] for m in metrics)  # not NaN
    assert all(m["balance/kept"] + m["balance/masked"] == 16 for m in metrics)
    final = json.loads((run.path / "eval.jsonl").read_text().splitlines()[-1])
    assert final["visual"]["n_prompts"] == 4
    # the report shows the held-out pictures the run kept, with the responses to them
    index = json.loads((run.path / "images" / "index.json").read_text())
    assert len(index) == 4 and all((run.path / "images" / e["files"][0]).exists() for e in index)
    out = tmp_path / "report.html"
    write_report([str(tmp_path / "runs")], out, {})
    page = out.read_text()
    assert page.count("<img class='sample'") == 4 and "Sample rollouts" in page
    last = [
        json.loads(x) for x in (run.path / "eval" / "step_000002.jsonl").read_text().splitlines()
    ]
    assert html.escape(last[0]["completion"]) in page


def test_an_image_text_teacher_reads_the_students_pictures(
    tiny_experiment, checkpoints, visual_rows, tmp_path
):
    """The student as its own teacher: the teacher's log-probs equal the student's only if it
    reads the same prompt with the same pictures, so every OPD advantage of step 1 is 0."""
    cfg = _cfg(
        tiny_experiment,
        tmp_path,
        visual_rows,
        checkpoints["student"],
        checkpoints["student"],
        method={"name": "opd"},
        train={"steps": 1, "lr": 1e-4, "warmup_steps": 0},
    )
    run, trainer, _ = _train(cfg)
    assert not trainer.parts.text_readers
    recs = [
        json.loads(x)
        for x in (run.path / "rollouts" / "step_000001.jsonl").read_text().splitlines()
    ]
    assert recs and all(abs(a) < 1e-4 for r in recs for a in r["advantages"])


def _write(tmp_path, cfg: dict):
    path = tmp_path / "mm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_bad_multimodal_input_exits_2_at_load(
    tiny_experiment, checkpoints, visual_rows, make_checkpoint, tmp_path, capsys
):
    s, text = checkpoints["student"], checkpoints["text_teacher"]
    data = {"train": [str(visual_rows)], "teacher_templates": TEMPLATES}
    good = _cfg(tiny_experiment, tmp_path, visual_rows, s, text, data=data)
    assert main(["validate", _write(tmp_path, good)]) == 0  # tokenizers checked, image tokens aside
    capsys.readouterr()
    cases = [
        # a text student given rows with pictures
        (
            _cfg(tiny_experiment, tmp_path, visual_rows, str(make_checkpoint(1)), text),
            ["rows carry images", "is a text model"],
        ),
        # a text teacher of picture rows with nothing to read in their place
        (
            _cfg(tiny_experiment, tmp_path, visual_rows, s, text),
            ["teachers.visual", "data.teacher_templates"],
        ),
        # a template field the rows do not have
        (
            _cfg(
                tiny_experiment,
                tmp_path,
                visual_rows,
                s,
                text,
                data={
                    "train": [str(visual_rows)],
                    "teacher_templates": {"visual": "{caption} {prompt}"},
                },
            ),
            ["data.teacher_templates.visual", "row pic-0", "'caption'"],
        ),
        # an engine that takes token ids only
        (
            {**good, "rollout": {**good["rollout"], "engine": "hf-paged"}},
            ["rollout.engine = hf-paged", "image-text student"],
        ),
    ]
    for cfg, words in cases:
        assert main(["run", _write(tmp_path, cfg)]) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), (words, err)
    # an image-text student whose folder has no processor
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{s}/{f}", bare / f)
    bare_cfg = _cfg(tiny_experiment, tmp_path, visual_rows, str(bare), s)
    assert main(["run", _write(tmp_path, bare_cfg)]) == 2
    assert "image-text model" in capsys.readouterr().err
    # placeholders that do not match the pictures
    rows = [json.loads(x) for x in visual_rows.read_text().splitlines()]
    rows[3]["prompt"] = "<image> <image> " + rows[3]["prompt"]
    bad = tmp_path / "bad_rows.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for f in visual_rows.parent.glob("*.png"):
        shutil.copy(f, tmp_path / f.name)
    assert main(["run", _write(tmp_path, _cfg(tiny_experiment, tmp_path, bad, s, s))]) == 2
    err = capsys.readouterr().err
    assert "bad_rows.jsonl: row 4" in err and "2 <image> placeholders" in err
    assert not (tmp_path / "runs").exists()  # nothing was started for any of them


def test_a_full_distribution_objective_needs_the_same_token_ids(
    tiny_experiment, checkpoints, visual_rows, tmp_path, capsys
):
    """JSD compares every token id's probability: a text teacher without the student's image
    tokens has none for them, so the run stops at load naming the teacher and the objective."""
    data = {"train": [str(visual_rows)], "teacher_templates": TEMPLATES}
    cfg = _cfg(
        tiny_experiment,
        tmp_path,
        visual_rows,
        checkpoints["student"],
        checkpoints["text_teacher"],
        data=data,
        method={"name": "jsd"},
    )
    assert main(["run", _write(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err
    assert "teachers.visual" in err and "compares full distributions" in err
