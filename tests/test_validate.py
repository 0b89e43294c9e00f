"""`uniopd validate`: the schema, the rules and the data, then (unless --no-models) the tokenizers
of the student and teachers, without loading any weights."""

from __future__ import annotations

import json
import shutil

import yaml
from transformers import AutoTokenizer

from uniopd.commands.cli import main


def _experiment(tmp_path, student, teacher, **extra) -> str:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(
                {"id": f"r{i}", "domain": "math", "prompt": f"{i} + 1?", "answer": str(i + 1)}
            )
            for i in range(4)
        )
    )
    path = tmp_path / "exp.yaml"
    body = {
        "name": "validate-me",
        "student": str(student),
        "teachers": {"math": str(teacher)},
        "data": {"train": [str(rows)]},
        **extra,
    }
    path.write_text("# exp.yaml — a test file\n" + yaml.safe_dump(body))
    return str(path)


def test_no_models_opens_no_checkpoint(tmp_path, capsys):
    exp = _experiment(tmp_path, tmp_path / "nowhere" / "student", tmp_path / "nowhere" / "teacher")
    assert main(["validate", "--no-models", exp]) == 0
    assert "ok" in capsys.readouterr().out
    # without the flag the student's tokenizer is read, and its absence is named
    assert main(["validate", exp]) == 2
    err = capsys.readouterr().err
    assert "student.model" in err and "nowhere/student" in err


def test_tokenizers_are_checked_without_weights(make_checkpoint, tmp_path, capsys):
    student, teacher = make_checkpoint(1), tmp_path / "teacher"
    shutil.copytree(make_checkpoint(2), teacher)
    (teacher / "model.safetensors").unlink()  # no weights at all: validate must not need them
    exp = _experiment(tmp_path, student, teacher)
    assert main(["validate", exp]) == 0
    assert "tokenizers" in capsys.readouterr().out
    tok = AutoTokenizer.from_pretrained(teacher)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(teacher)
    assert main(["validate", exp]) == 2
    err = capsys.readouterr().err
    assert "teachers.math" in err and "cannot be bridged" in err
    assert main(["validate", "--no-models", exp]) == 0


def test_a_served_teacher_is_checked_through_its_named_tokenizer(make_checkpoint, tmp_path, capsys):
    other = tmp_path / "other-tokenizer"
    tok = AutoTokenizer.from_pretrained(make_checkpoint(1))
    tok.add_tokens(["<|extra|>"])
    tok.save_pretrained(other)
    url = "http://127.0.0.1:9/v1"  # never contacted by validate
    exp = _experiment(tmp_path, make_checkpoint(1), url)
    assert main(["validate", exp]) == 0
    assert "is served" in capsys.readouterr().out
    exp = _experiment(tmp_path, make_checkpoint(1), url, teacher_tokenizers={"math": str(other)})
    assert main(["validate", exp]) == 2
    assert "vocabulary differs" in capsys.readouterr().err
    exp = _experiment(tmp_path, make_checkpoint(1), url, teacher_tokenizers={"code": str(other)})
    assert main(["validate", exp]) == 2
    assert "teacher_tokenizers.code" in capsys.readouterr().err
