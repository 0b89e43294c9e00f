"""The experiment schema on its own: defaults, bounds, unknown keys, cross-field checks, help text."""

import typing

import pytest
from pydantic import BaseModel, ValidationError

from uniopd.config import ExperimentConfig, describe_fields
from uniopd.config.section import section_type


def minimal(**changes) -> dict:
    cfg = {
        "name": "tiny",
        "student": "builtin:student",
        "teachers": {"math": "builtin:teacher-math"},
        "data": {"train": ["builtin:math/train"]},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def error_of(cfg: dict) -> dict:
    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate(cfg)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return errors[0]


def test_minimal_config_fills_the_documented_defaults():
    cfg = ExperimentConfig.model_validate(minimal())
    assert cfg.method.name == "opd" and cfg.device == "auto" and cfg.precision == "auto"
    assert (cfg.rollout.group_size, cfg.rollout.prompts_per_batch) == (8, 16)
    assert cfg.train.lr == 1e-6 and cfg.train.betas == (0.9, 0.98)
    assert (cfg.train.clip_low, cfg.train.clip_high, cfg.train.logp_gap_mask) == (0.2, 0.28, 10.0)
    assert cfg.eval.pass_k == [1] and cfg.eval.max_new_tokens is None
    assert cfg.output.root == "runs" and cfg.data.template == "chat"


def test_mutable_defaults_are_not_shared_between_configs():
    a = ExperimentConfig.model_validate(minimal(method__name="grpo", teachers={}))
    b = ExperimentConfig.model_validate(minimal(method__name="grpo", teachers={}))
    a.teachers["code"] = "x"
    a.eval.pass_k.append(2)
    assert b.teachers == {} and b.eval.pass_k == [1]


@pytest.mark.parametrize(
    "section", ["", "data__", "method__", "rollout__", "train__", "eval__", "output__"]
)
def test_unknown_key_in_any_section_is_an_error(section):
    err = error_of(minimal(**{section + "bogus": 1}))
    assert err["type"] == "extra_forbidden" and err["loc"][-1] == "bogus"


@pytest.mark.parametrize(
    "change, loc",
    [
        ({"name": "a/b"}, ("name",)),
        ({"name": ".."}, ("name",)),
        ({"name": ""}, ("name",)),
        ({"device": "tpu"}, ("device",)),
        ({"data__train": []}, ("data", "train")),
        ({"data__limit": 0}, ("data", "limit")),
        ({"method__coefs": {"opd": -1}}, ("method", "coefs", "opd")),
        ({"rollout__top_p": 1.5}, ("rollout", "top_p")),
        ({"rollout__temperature": 0}, ("rollout", "temperature")),
        ({"rollout__top_k": -1}, ("rollout", "top_k")),
        ({"train__lr": 0}, ("train", "lr")),
        ({"train__lr": float("nan")}, ("train", "lr")),
        ({"train__clip_low": 1.0}, ("train", "clip_low")),
        ({"train__betas": [0.9, 1.0]}, ("train", "betas", 1)),
        ({"train__betas": [0.9]}, ("train", "betas", 1)),  # the second beta is missing
        ({"train__steps": 1.5}, ("train", "steps")),
        ({"eval__pass_k": [0]}, ("eval", "pass_k", 0)),
        ({"eval__temperature": -0.1}, ("eval", "temperature")),
        ({"output__keep_checkpoints": 0}, ("output", "keep_checkpoints")),
    ],
)
def test_out_of_range_or_wrong_type_is_rejected(change, loc):
    assert error_of(minimal(**change))["loc"] == loc


def test_lax_types_parse_yaml_style_text():
    # PyYAML reads 3e-4 (no dot) as text; the schema must still take it as a float.
    cfg = ExperimentConfig.model_validate(
        minimal(train__lr="3e-4", name=2024, train__betas=[0.8, 0.9])
    )
    assert cfg.train.lr == 3e-4 and cfg.name == "2024" and cfg.train.betas == (0.8, 0.9)


@pytest.mark.parametrize("method", ["opd", "opd+grpo"])
def test_distillation_without_teachers_says_why(method):
    err = error_of(minimal(teachers={}, method__name=method))
    assert err["type"] == "conflict"
    assert f"method '{method}' distils from teachers, but 'teachers' is empty" in err["msg"]
    assert err["ctx"]["fields"][0] == "teachers"


def test_grpo_alone_needs_no_teacher():
    cfg = ExperimentConfig.model_validate(minimal(teachers={}, method__name="grpo"))
    assert cfg.teachers == {}


def test_opd_plus_grpo_with_both_coefficients_zero_has_no_loss():
    err = error_of(minimal(method__name="opd+grpo", method__coefs={"opd": 0, "grpo": 0}))
    assert err["loc"] == ("method",) and "no loss term" in err["msg"]
    assert err["ctx"]["fields"][0] == "coefs"
    # one zero coefficient is a legitimate ablation
    cfg = ExperimentConfig.model_validate(
        minimal(method__name="opd+grpo", method__coefs={"opd": 0})
    )
    assert [name for name, _, _ in cfg.method.objectives()] == ["grpo"]


def test_legacy_coefficient_keys_still_load():
    # run directories written before the objective registry say opd_coef / grpo_coef / grpo_eps
    cfg = ExperimentConfig.model_validate(
        minimal(
            method__name="opd+grpo",
            method__opd_coef=1.0,
            method__grpo_coef=0.5,
            method__grpo_eps=1e-4,
        )
    )
    assert cfg.method.coefs == {"opd": 1.0, "grpo": 0.5}
    assert cfg.method.options == {"grpo": {"eps": 1e-4}}
    assert [(n, c) for n, c, _ in cfg.method.objectives()] == [("opd", 1.0), ("grpo", 0.5)]


@pytest.mark.parametrize(
    "change, field, reason",
    [
        (
            {"method__name": "opd+kl"},
            "name",
            "unknown objective 'kl'; known: cdpo, dpo, exopd, forward_kl",
        ),
        ({"method__name": "opd+opd"}, "name", "names an objective twice"),
        (
            {"method__name": "jsd", "method__options": {"jsd": {"beta": 2}}},
            "options.jsd.beta",
            "less than or equal to 1",
        ),
        (
            {"method__name": "jsd", "method__options": {"jsd": {"bta": 0.1}}},
            "options.jsd.bta",
            "Extra inputs are not permitted",
        ),
        ({"method__options": {"grpo": {"eps": 1}}}, "options.grpo", "'opd' does not use"),
        ({"method__coefs": {"jsd": 1}}, "coefs.jsd", "'opd' does not use"),
    ],
)
def test_objective_names_and_options_are_checked_against_the_registry(change, field, reason):
    err = error_of(minimal(**change))
    assert reason in err["msg"]
    fields = err.get("ctx", {}).get("fields", ())
    assert (
        err["loc"] == ("method", "name") if field == "name" and not fields else fields[0] == field
    )


def test_grpo_with_groups_of_one_is_rejected_because_advantages_vanish():
    err = error_of(minimal(method__name="grpo", rollout__group_size=1))
    assert "group_size" in err["msg"] and "0" in err["msg"]
    ExperimentConfig.model_validate(minimal(method__name="opd", rollout__group_size=1))


def test_pass_k_above_n_samples_names_both_fields():
    err = error_of(minimal(eval__pass_k=[1, 8], eval__n_samples=4))
    assert err["loc"] == ("eval",)
    assert "pass_k" in err["msg"] and "n_samples" in err["msg"] and "8" in err["msg"]
    ExperimentConfig.model_validate(minimal(eval__pass_k=[1, 4], eval__n_samples=4))


def _walk(model: type[BaseModel], prefix=""):
    for name, info in model.model_fields.items():
        yield prefix + name, info
        section = section_type(info.annotation)  # a section, or an optional one (student.lora)
        if section is not None:
            yield from _walk(section, prefix + name + ".")


def test_every_field_has_help_text_and_every_section_forbids_extras():
    for dotted, info in _walk(ExperimentConfig):
        assert info.description and len(info.description) > 10, f"{dotted} has no help text"
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            assert info.annotation.model_config.get("extra") == "forbid", dotted


def test_describe_fields_lists_every_leaf_with_type_default_and_help():
    rows = {name: (kind, default, help_) for name, kind, default, help_ in describe_fields()}
    leaves = {
        dotted
        for dotted, info in _walk(ExperimentConfig)
        if not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))
    }
    assert set(rows) == leaves
    assert rows["train.lr"][:2] == ("float (> 0)", "1e-06")
    assert rows["name"][1] == "required" and rows["data.train"][1] == "[]"  # or data.pairs
    assert rows["method.name"][0] == "str" and "uniopd list" in rows["method.name"][2]
    assert rows["data.limit"][0].startswith("int | None")
    assert all(help_ for _, _, help_ in rows.values())
    assert all(isinstance(x, str) for row in describe_fields() for x in row)
    assert typing.get_args(ExperimentConfig.model_fields["device"].annotation) == (
        "auto",
        "cpu",
        "cuda",
    )
