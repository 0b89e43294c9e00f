"""The package's layout holds: every folder stacks on the ones below it, and no function hides a
whole stage in one body.

- drawn file by file (`benchmarks/import_floors.py`, grimp's graph, imports inside functions and
  under TYPE_CHECKING counted), no two files import each other in a circle and at most 3 imports
  run from a lower room back up to a higher one (a room: a folder, or a module loose at the top);
- at most 12 Python modules are loose at the top of `uniopd/`;
- no function or method in `uniopd/` is longer than 80 lines.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "uniopd"
MAX_FUNCTION_LINES = 80


def _floors():
    spec = importlib.util.spec_from_file_location(
        "import_floors", ROOT / "benchmarks" / "import_floors.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_floors", module)
    spec.loader.exec_module(module)
    return module


def test_no_import_circles_and_at_most_three_imports_running_back_up():
    figures = _floors().measure()
    assert figures["import_circles"] == []
    assert len(figures["imports_running_back_up"]) <= 3, figures["imports_running_back_up"]


def test_a_circle_and_an_upward_import_are_seen():
    """The measure itself: a planted circle and a room importing a higher one are both counted."""
    floors = _floors()
    edges = {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": set()}
    assert floors.strongly_connected(edges) == [["p.a", "p.b"]]
    weight = {("low", "high"): 1, ("high", "low"): 5}
    order = floors.eades_order({"low", "high"}, weight)
    assert order == ["low", "high"]  # the heavier direction points down; one import runs back up


def test_few_modules_loose_at_the_top():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 12, loose


def _long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(
                        f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)"
                    )
    return found


def test_no_function_over_80_lines():
    assert _long_functions(PACKAGE) == []


def test_a_long_function_is_seen(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    (tmp_path / "short.py").write_text("def short():\n    return 1\n")
    assert _long_functions(tmp_path) == [f"long.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
