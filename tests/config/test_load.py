"""Loading experiment files: inheritance, overrides, provenance in error messages, round trip."""

import json
import pickle
import textwrap

import pytest
import yaml

from uniopd.config import (
    ConfigError,
    ExperimentConfig,
    load_experiment,
    resolved_dict,
    save_resolved,
)

GOOD = """\
name: tiny
student: builtin:student
teachers: {math: builtin:teacher-math}
data: {train: [builtin:math/train]}
"""


@pytest.fixture
def write(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


def fails(path, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    return info.value


def test_loads_a_plain_file(write):
    cfg = load_experiment(write("x.yaml", GOOD + "train: {lr: 3e-4}\n"))
    assert isinstance(cfg, ExperimentConfig)
    assert (
        cfg.name == "tiny"
        and cfg.train.lr == 3e-4
        and cfg.teachers == {"math": "builtin:teacher-math"}
    )


# --- file-level errors -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    err = fails(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err) and "file not found" in str(err) and err.field is None


def test_yaml_syntax_error_gives_the_line(write):
    path = write("x.yaml", GOOD + "train:\n  lr: [1e-4\n  steps: 3\n")
    err = fails(path)
    assert err.source == str(path) and "invalid YAML at line" in err.reason
    line = int(err.reason.split("line ")[1].split(",")[0])
    assert 5 <= line <= 8  # the unclosed bracket on line 6 is reported where the parser gives up


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(write, text, kind):
    err = fails(write("x.yaml", text))
    assert (
        "x.yaml" in str(err) and "top level must be a mapping" in err.reason and kind in err.reason
    )


def test_empty_file_reports_the_missing_required_fields(write):
    err = fails(write("x.yaml", ""))
    fields = {p.field for p in err.problems}
    assert fields == {"name", "student", "data"}
    assert all(
        p.source.endswith("x.yaml") and "required field is missing" in p.reason
        for p in err.problems
    )
    assert len(str(err).splitlines()) == 3  # one line per problem


def test_missing_base(write):
    err = fails(write("x.yaml", "base: gone.yaml\n" + GOOD))
    assert err.source.endswith("x.yaml") and err.field == "base"
    assert "gone.yaml" in err.reason and "not found" in err.reason


def test_base_must_be_a_path(write):
    err = fails(write("x.yaml", "base: [a, b]\n" + GOOD))
    assert err.field == "base" and "must be a path" in err.reason


def test_cyclic_base(write):
    write("a.yaml", "base: b.yaml\n" + GOOD)
    write("b.yaml", "base: a.yaml\n")
    err = fails(write("a.yaml", "base: b.yaml\n" + GOOD))
    assert err.field == "base" and "inheritance cycle" in err.reason
    assert err.source.endswith("b.yaml") and "a.yaml -> " in err.reason


def test_self_base_is_a_cycle(write):
    err = fails(write("x.yaml", "base: ./x.yaml\n" + GOOD))
    assert "inheritance cycle" in err.reason


# --- validation errors name file, field and reason --------------------------------------------


def test_unknown_key_suggests_the_close_match(write):
    err = fails(write("x.yaml", GOOD + "trian: {steps: 3}\n"))
    assert str(err) == f"{err.source}: trian: unknown key 'trian'; did you mean 'train'?"


def test_unknown_nested_key_suggests_the_close_match(write):
    err = fails(write("x.yaml", GOOD + "rollout: {top_pp: 0.9}\n"))
    assert err.field == "rollout.top_pp" and "did you mean 'top_p'?" in err.reason


def test_unknown_key_without_close_match_lists_the_known_ones(write):
    err = fails(write("x.yaml", GOOD + "rollout: {zzz: 1}\n"))
    assert "unknown key 'zzz'; known keys:" in err.reason and "group_size" in err.reason


def test_wrong_type(write):
    path = write("x.yaml", GOOD + "train: {lr: abc}\n")
    err = fails(path)
    assert str(err).startswith(f"{path}: train.lr: Input should be a valid number")
    assert "'abc'" in err.reason


def test_out_of_range(write):
    err = fails(write("x.yaml", GOOD + "rollout: {top_p: 1.5}\n"))
    assert (err.field, err.reason) == (
        "rollout.top_p",
        "Input should be less than or equal to 1 (got 1.5)",
    )


def test_list_item_error_names_the_index(write):
    err = fails(write("x.yaml", GOOD + "eval: {n_samples: 4, pass_k: [1, 0]}\n"))
    assert err.field == "eval.pass_k[1]" and "greater than or equal to 1" in err.reason


def test_cross_field_conflict_says_why(write):
    path = write("x.yaml", GOOD.replace("teachers: {math: builtin:teacher-math}\n", ""))
    err = fails(path)
    assert err.source == str(path) and err.field == "teachers"
    assert "method 'opd' distils from teachers, but 'teachers' is empty" in err.reason


def test_pass_k_conflict_names_both_fields(write):
    err = fails(write("x.yaml", GOOD + "eval: {pass_k: [1, 8]}\n"))
    assert err.field == "eval.pass_k" and "n_samples=4" in err.reason and "pass@8" in err.reason


def test_error_survives_pickling_for_sweep_workers(write):
    err = fails(write("x.yaml", GOOD + "train: {lr: abc, steps: 0}\n"))
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.problems == err.problems and copy.field == err.field


def test_several_problems_come_as_a_short_block(write):
    err = fails(write("x.yaml", GOOD + "train: {lr: abc, steps: 0}\n"))
    assert {p.field for p in err.problems} == {"train.lr", "train.steps"}
    assert len(str(err).splitlines()) == 2


# --- inheritance and provenance ----------------------------------------------------------------


def test_child_deep_merges_over_base(write):
    write(
        "exp/base.yaml",
        GOOD.replace("{math: builtin:teacher-math}", "{math: t_math}").replace(
            "{train: [builtin:math/train]}", "{train: [a, b], limit: 5}"
        )
        + "train: {lr: 1e-5, steps: 9}\n",
    )
    child = write(
        "exp/sub/child.yaml",
        "base: ../base.yaml\nname: child\nteachers: {code: t_code}\ndata: {train: [c]}\ntrain: {lr: 2e-5}\n",
    )
    cfg = load_experiment(child)
    assert cfg.name == "child"
    assert cfg.teachers == {"math": "t_math", "code": "t_code"}  # mappings merge
    assert cfg.data.train == ["c"] and cfg.data.limit == 5  # lists are replaced
    assert cfg.train.lr == 2e-5 and cfg.train.steps == 9


def test_three_level_chain(write):
    write("a.yaml", GOOD + "seed: 1\nrollout: {group_size: 2}\n")
    write("b.yaml", "base: a.yaml\nseed: 2\n")
    cfg = load_experiment(write("c.yaml", "base: b.yaml\nname: c\n"))
    assert (cfg.name, cfg.seed, cfg.rollout.group_size) == ("c", 2, 2)


def test_error_names_the_base_file_that_set_the_value(write):
    base = write("exp/base.yaml", GOOD + "train: {lr: abc}\n")
    child = write("exp/child.yaml", "base: base.yaml\nname: child\n")
    err = fails(child)
    assert err.source == str(base) and err.field == "train.lr"


def test_error_names_the_child_when_it_sets_the_bad_value(write):
    write("base.yaml", GOOD + "train: {lr: 1e-5}\n")
    child = write("child.yaml", "base: base.yaml\ntrain: {lr: -1}\n")
    err = fails(child)
    assert err.source == str(child) and err.field == "train.lr"


def test_child_can_fix_a_bad_base_value(write):
    write("base.yaml", GOOD + "train: {lr: abc}\n")
    cfg = load_experiment(write("child.yaml", "base: base.yaml\ntrain: {lr: 1e-5}\n"))
    assert cfg.train.lr == 1e-5


def test_unknown_key_inside_base_names_the_base(write):
    base = write("base.yaml", GOOD + "rollout: {groupsize: 4}\n")
    err = fails(write("child.yaml", "base: base.yaml\n"))
    assert err.source == str(base) and "did you mean 'group_size'" in err.reason


def test_missing_required_field_names_the_top_file(write):
    write("base.yaml", "teachers: {math: t}\n")
    child = write("child.yaml", "base: base.yaml\nstudent: s\ndata: {train: [a]}\n")
    err = fails(child)
    assert (err.source, err.field) == (str(child), "name")


def test_conflict_blames_the_layer_that_set_the_latest_value(write):
    # the base is a valid GRPO run with no teachers; the child switching to OPD creates the conflict
    write(
        "base.yaml", "name: g\nstudent: s\nteachers: {}\ndata: {train: [a]}\nmethod: {name: grpo}\n"
    )
    child = write("child.yaml", "base: base.yaml\nmethod: {name: opd}\n")
    err = fails(child)
    assert err.source == str(child) and err.field == "teachers"


# --- overrides ---------------------------------------------------------------------------------


def test_overrides_set_nested_values(write):
    path = write("x.yaml", GOOD)
    cfg = load_experiment(
        path,
        [
            "train.lr=3e-4",
            "seed=2",
            "teachers.code=path/to/ckpt",
            "rollout.top_k=50",
            "data.train=[a,b]",
            "eval.max_new_tokens=null",
            "name=run-2",
        ],
    )
    assert cfg.train.lr == 3e-4 and cfg.seed == 2 and cfg.rollout.top_k == 50
    assert cfg.teachers == {"math": "builtin:teacher-math", "code": "path/to/ckpt"}
    assert cfg.data.train == ["a", "b"] and cfg.eval.max_new_tokens is None and cfg.name == "run-2"


def test_overrides_must_be_a_sequence_not_one_string(write):
    with pytest.raises(TypeError):
        load_experiment(write("x.yaml", GOOD), "seed=2")


def test_later_overrides_win(write):
    cfg = load_experiment(write("x.yaml", GOOD), ["seed=1", "seed=3"])
    assert cfg.seed == 3


def test_override_creates_a_missing_section(write):
    cfg = load_experiment(write("x.yaml", GOOD), ["output.root=/tmp/r"])
    assert cfg.output.root == "/tmp/r"


def test_bad_override_value_names_the_override(write):
    err = fails(write("x.yaml", GOOD), ["train.lr=abc"])
    assert str(err).startswith("override 'train.lr=abc': train.lr: Input should be a valid number")


def test_override_fixes_a_bad_file_value(write):
    cfg = load_experiment(write("x.yaml", GOOD + "train: {lr: abc}\n"), ["train.lr=1e-3"])
    assert cfg.train.lr == 1e-3


def test_override_replacing_a_value_with_a_section_is_blamed(write):
    # `seed.x=1` turns the file's `seed: 0` into a mapping; the override, not the file, is at fault.
    err = fails(write("x.yaml", GOOD + "seed: 0\n"), ["seed.x=1"])
    assert (err.source, err.field) == ("override 'seed.x=1'", "seed")
    assert "valid integer" in err.reason


def test_override_unknown_key_suggests(write):
    err = fails(write("x.yaml", GOOD), ["train.lrr=1e-3"])
    assert err.source == "override 'train.lrr=1e-3'" and "did you mean 'lr'?" in err.reason


def test_an_empty_mapping_merges_rather_than_clears(write):
    # Overrides are layers like files: mappings merge, so `teachers={}` leaves the teachers alone.
    cfg = load_experiment(write("x.yaml", GOOD), ["teachers={}"])
    assert cfg.teachers == {"math": "builtin:teacher-math"}


def test_override_conflict_names_the_override(write):
    err = fails(
        write(
            "y.yaml",
            GOOD.replace("teachers: {math: builtin:teacher-math}\n", "method: {name: grpo}\n"),
        ),
        ["method.name=opd+grpo"],
    )
    assert err.source == "override 'method.name=opd+grpo'" and "distils from teachers" in err.reason


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=1", ".lr=1", "train.=1"])
def test_malformed_override(write, text):
    err = fails(write("x.yaml", GOOD), [text])
    assert err.source == f"override '{text}'" and "expected dotted.key=value" in err.reason


def test_override_with_invalid_yaml(write):
    err = fails(write("x.yaml", GOOD), ["data.train=[a,"])
    assert err.source == "override 'data.train=[a,'" and err.field == "data.train"
    assert "invalid YAML" in err.reason


def test_override_cannot_set_base(write):
    err = fails(write("x.yaml", GOOD), ["base=other.yaml"])
    assert err.field == "base"


# --- the resolved config -----------------------------------------------------------------------


def test_resolved_config_round_trips(write, tmp_path):
    write("base.yaml", GOOD + "train: {lr: 3e-4, betas: [0.8, 0.95]}\n")
    path = write("x.yaml", "base: base.yaml\nname: rt\nmethod: {name: opd+grpo, grpo_coef: 0.5}\n")
    cfg = load_experiment(path, ["eval.pass_k=[1,2]", "data.limit=7", "verifiers.math=math_verify"])
    saved = tmp_path / "run" / "config.yaml"
    saved.parent.mkdir()
    save_resolved(cfg, saved)
    assert load_experiment(saved) == cfg
    assert "base" not in yaml.safe_load(saved.read_text())


def test_resolved_dict_is_plain_json(write):
    cfg = load_experiment(write("x.yaml", GOOD))
    plain = resolved_dict(cfg)
    assert json.loads(json.dumps(plain)) == plain
    assert plain["train"]["betas"] == [0.9, 0.98] and plain["rollout"]["group_size"] == 8


def test_a_bad_source_mapping_is_named_by_its_field_path(write):
    path = write(
        "x.yaml",
        GOOD.replace(
            "data: {train: [builtin:math/train]}",
            "data: {train: [builtin:math/train, {source: x.jsonl, columns: {answr: final}}]}",
        ),
    )
    err = fails(path)
    assert err.field == "data.train[1].columns.answr" and "'answer'" in err.reason
