"""The harness's check of the frames a program's process sends: only the exact protocol passes."""

import json

from uniopd.verifiers.frames import FrameReader


def read(*frames, n_cases=2, kind="out"):
    reader = FrameReader(n_cases, kind)
    for frame in frames:
        line = frame if isinstance(frame, bytes) else json.dumps(frame).encode()
        problem = reader._accept(line)
        if problem:
            return reader, problem
    return reader, ""


READY, DONE = {"ready": True}, {"done": True}


def test_the_protocol():
    reader, problem = read(READY, {"case": 0, "out": 4}, {"case": 1, "out": 6}, DONE)
    assert problem == "" and reader.done and reader.results == [("out", 4), ("out", 6)]
    reader, problem = read(READY, {"case": 0, "raised": "ValueError: no"}, DONE)
    assert problem == "" and reader.done  # a raise ends the cases early


def test_what_only_a_program_could_have_sent_fails():
    bad = {
        "before ready": [{"case": 0, "out": 4}],
        "setup error after ready": [READY, {"setup_error": "x"}],
        "out of order": [READY, {"case": 1, "out": 6}],
        "repeated": [READY, {"case": 0, "out": 4}, {"case": 0, "out": 4}],
        "early end": [READY, {"case": 0, "out": 4}, DONE],
        "after the end": [READY, {"case": 0, "out": 4}, {"case": 1, "out": 6}, DONE, DONE],
        "after a raise": [READY, {"case": 0, "raised": "E"}, {"case": 1, "out": 6}],
        "too many": [READY, {"case": 0, "out": 4}, {"case": 1, "out": 6}, {"case": 2, "out": 1}],
        "wrong kind": [READY, {"case": 0, "stdout": "4"}],
        "extra key": [READY, {"case": 0, "out": 4, "verdict": "pass"}],
        "not json": [READY, b"pass\t"],
        "not an object": [READY, b"[1, 2]"],
    }
    for name, frames in bad.items():
        reader, problem = read(*frames)
        assert problem, name


def test_a_setup_error_before_the_program_is_could_not_grade():
    reader, problem = read({"setup_error": "PermissionError: ..."})
    assert problem == "" and reader.setup_error.startswith("PermissionError")
