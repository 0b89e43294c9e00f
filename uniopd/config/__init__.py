"""Declarative experiment files: the typed schema (schema.py) and YAML loading with `base:`
inheritance, dotted overrides and one-line errors (load.py)."""

from uniopd.config.fields import describe_fields
from uniopd.config.load import ConfigError, load_experiment, resolved_dict, save_resolved
from uniopd.config.schema import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    LoraConfig,
    MethodConfig,
    OutputConfig,
    RolloutConfig,
    StudentConfig,
    TrainConfig,
)
from uniopd.config.serving import TeacherServerConfig

__all__ = [
    "ConfigError",
    "load_experiment",
    "resolved_dict",
    "save_resolved",
    "describe_fields",
    "ExperimentConfig",
    "StudentConfig",
    "LoraConfig",
    "DataConfig",
    "MethodConfig",
    "RolloutConfig",
    "TrainConfig",
    "EvalConfig",
    "OutputConfig",
    "TeacherServerConfig",
]
