"""Helpers for the recipe tests: import a recipe file as users would, and forget it afterwards."""

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def recipe():
    """recipe(file_stem, registry, name): import tests/extending/<file_stem>.py (which registers
    `name` in `registry`); the entry is removed again after the test."""
    added = []

    def load(stem, registry, name):
        spec = importlib.util.spec_from_file_location(f"recipe_{stem}", HERE / f"{stem}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        added.append((registry, name, spec.name))
        return module

    yield load
    for registry, name, module in added:
        registry._entries.pop(name, None)
        sys.modules.pop(module, None)
