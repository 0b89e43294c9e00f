"""Malformed input files, as a user or a script might hand them over: binary, not UTF-8, nested
without end, enormous, thousands of unknown keys, seeds the generators cannot take, models and
verifiers that do not exist, data rows that are not UTF-8. `uniopd validate` and `uniopd run` both
refuse each with exit code 2 and one short message naming the file and the field or row: no
traceback, no run directory, no world build."""

import time

import pytest

from uniopd.commands.cli import main

BASE = (
    "name: bad\n"
    "device: cpu\n"
    "student: builtin:student\n"
    "teachers: {math: builtin:teacher-math}\n"
    "data: {train: [builtin:math/train], limit: 8}\n"
    "tracking: {wandb: disabled}\n"
)


def _cases(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_bytes(
        b'{"domain": "math", "prompt": "1+1?", "answer": "2"}\n{"domain": "math", '
        b'"prompt": "caf\xe9?", "answer": "4"}\n'
    )
    return {
        "binary": (bytes(range(256)) * 8, "binary data"),
        "latin-1": (
            BASE.encode() + b"description: caf\xe9\n",
            "not UTF-8 text: byte 0xe9 at line 7",
        ),
        "nested": (
            BASE.encode() + b"description: " + b"[" * 3000 + b"]" * 3000 + b"\n",
            "nested deeper than 32 levels",
        ),
        "huge": (BASE.encode() + b"description: '" + b"x" * (2 << 20) + b"'\n", "too large"),
        "unknown keys": (
            BASE.encode() + "".join(f"key_{i}: 1\n" for i in range(5000)).encode(),
            "5000 unknown keys: key_0, key_1, key_2, key_3, key_4, ...",
        ),
        "seed too large": (
            BASE.encode() + b"seed: 99999999999999999999\n",
            "seed: Input should be less than 4294967296",
        ),
        "negative seed": (
            BASE.encode() + b"seed: -1\n",
            "seed: Input should be greater than or equal to 0",
        ),
        "missing student path": (
            BASE.replace("builtin:student", str(tmp_path / "no-such-model")).encode(),
            f"student.model: {tmp_path / 'no-such-model'}: no such file or directory",
        ),
        "unknown builtin teacher": (
            BASE.replace("builtin:teacher-math", "builtin:teacher-chem").encode(),
            "teachers.math: unknown built-in model 'builtin:teacher-chem'",
        ),
        "unknown verifier": (
            BASE.encode() + b"verifiers: {math: mathz}\n",
            "verifiers.math: unknown verifier 'mathz'",
        ),
        "non-UTF-8 data row": (
            BASE.replace("[builtin:math/train]", f"[{data}]").encode(),
            f"{data}: line 2: not UTF-8 text (byte 0xe9 at column 34)",
        ),
    }


@pytest.mark.slow  # every bad file through the command line twice (about 5 s)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_each_bad_file_is_one_clear_line_and_nothing_is_written(
    tmp_path, monkeypatch, capsys, command
):
    home, runs = tmp_path / "home", tmp_path / "runs"
    monkeypatch.setenv("UNIOPD_HOME", str(home))
    for name, (content, expected) in _cases(tmp_path).items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_bytes(content)
        start = time.monotonic()
        override = f"output.root={runs}"
        args = [str(path), override] if command == "run" else [str(path), "--set", override]
        code = main([command, *args])
        err = capsys.readouterr().err
        assert code == 2, name
        assert expected in err, f"{name}: {err[:300]}"
        assert "Traceback" not in err and len(err.splitlines()) <= 2, f"{name}: {err[:300]}"
        assert len(err) < 2000, name
        assert time.monotonic() - start < 30, name  # bounded, whatever the file holds
        assert not runs.exists(), f"{name}: a run directory was made"
        assert not any(home.glob("world-*")), f"{name}: the world was built"
