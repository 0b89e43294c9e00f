"""HumanEval-style test source turned into input/output cases, so its expected values stay outside.

    cases_from_source(row["test"], "add")  # [Case(args=[2, 3], check="eq", expected=5), ...] | None

Source-style tests (`def check(candidate): assert candidate(2, 3) == 5 ...`, or plain asserts on the
entry point) would have to run next to the program, with every expected value inside its process.
Most are a list of asserts on literal calls, and those become cases: the program is called on the
arguments in the sandbox and the trusted side judges what came back. evalplus does the same for
HumanEval+ from its own data; this reads the assertions themselves, so it works for any such file.

Accepted assertions, `call` being `candidate(<literals>)` (or the entry point's name, at top level):
    assert call == <literal>        (either side; also `is` / `is not` None, True, False)
    assert call   /  assert not call
    assert abs(call - <literal>) < <literal>   (or <=), and math.isclose(call, <literal>)
plus `assert True`, docstrings, `pass`, imports and a METADATA assignment. Anything else (loops,
helper variables, calls on computed values) leaves the whole source unconverted: None, and the
verifier runs it in the less trustworthy "source" mode.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    args: list
    check: str  # "eq" | "ne" | "true" | "false" | "close"
    expected: object = None
    tolerance: float = field(default=0.0)


class _NotConvertible(Exception):
    pass


def cases_from_source(source: str, entry_point: str | None) -> list[Case] | None:
    """The cases the source asserts, in order, or None when any part of it is not a plain case."""
    try:
        tree = ast.parse(source)
        cases: list[Case] = []
        for node in tree.body:
            cases.extend(_top_level(node, entry_point))
    except (SyntaxError, ValueError, _NotConvertible):
        return None
    return cases or None


def _top_level(node: ast.stmt, entry_point: str | None) -> list[Case]:
    if isinstance(node, (ast.Import, ast.ImportFrom)) or _is_docstring_or_pass(node):
        return []
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "METADATA"
    ):
        return []
    if isinstance(node, ast.FunctionDef) and node.name == "check":
        if len(node.args.args) != 1 or node.decorator_list:
            raise _NotConvertible
        callee = node.args.args[0].arg
        return [c for stmt in node.body for c in _statement(stmt, callee)]
    if isinstance(node, ast.Assert) and entry_point:
        return _statement(node, entry_point)
    raise _NotConvertible


def _statement(node: ast.stmt, callee: str) -> list[Case]:
    if _is_docstring_or_pass(node):
        return []
    if not isinstance(node, ast.Assert):
        raise _NotConvertible
    test = node.test
    if isinstance(test, ast.Constant) and test.value is True:
        return []
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return [Case(_call_args(test.operand, callee), "false")]
    if isinstance(test, ast.Call) and _is_call_to(test, callee):
        return [Case(_call_args(test, callee), "true")]
    if isinstance(test, ast.Call) and _dotted(test.func) in ("math.isclose", "isclose"):
        return [_isclose(test, callee)]
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        return [_compare(test, callee)]
    raise _NotConvertible


def _compare(test: ast.Compare, callee: str) -> Case:
    left, op, right = test.left, test.ops[0], test.comparators[0]
    # abs(call - x) < tol
    if isinstance(op, (ast.Lt, ast.LtE)) and _dotted(getattr(left, "func", None)) == "abs":
        inner = left.args[0] if isinstance(left, ast.Call) and len(left.args) == 1 else None
        if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub):
            call, other = _call_and_other(inner.left, inner.right, callee)
            tolerance = _literal(right)
            if type(tolerance) in (int, float):
                return Case(_call_args(call, callee), "close", _literal(other), float(tolerance))
        raise _NotConvertible
    call, other = _call_and_other(left, right, callee)
    if isinstance(op, (ast.Eq, ast.Is)):
        return Case(_call_args(call, callee), "eq", _literal(other))
    if isinstance(op, (ast.NotEq, ast.IsNot)):
        return Case(_call_args(call, callee), "ne", _literal(other))
    raise _NotConvertible


def _isclose(test: ast.Call, callee: str) -> Case:
    if len(test.args) != 2:
        raise _NotConvertible
    call, other = _call_and_other(test.args[0], test.args[1], callee)
    tolerance = 1e-9
    for keyword in test.keywords:
        if keyword.arg not in ("rel_tol", "abs_tol"):
            raise _NotConvertible
        tolerance = max(tolerance, float(_literal(keyword.value)))
    return Case(_call_args(call, callee), "close", _literal(other), tolerance)


def _call_and_other(a: ast.expr, b: ast.expr, callee: str) -> tuple[ast.Call, ast.expr]:
    if isinstance(a, ast.Call) and _is_call_to(a, callee):
        return a, b
    if isinstance(b, ast.Call) and _is_call_to(b, callee):
        return b, a
    raise _NotConvertible


def _call_args(node: ast.expr, callee: str) -> list:
    if not (isinstance(node, ast.Call) and _is_call_to(node, callee)) or node.keywords:
        raise _NotConvertible
    return [_literal(arg) for arg in node.args]


def _is_call_to(node: ast.Call, callee: str) -> bool:
    return isinstance(node.func, ast.Name) and node.func.id == callee


def _literal(node: ast.expr):
    """A literal, or constant arithmetic on literals (`3 * 19`, `2.0 / 3.0`, `'ab' + 'c'`),
    folded here in bounded size; anything else is not convertible."""
    if isinstance(node, ast.Starred):
        raise _NotConvertible
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _fold(node, 0)


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_SIZE = 100_000  # characters or elements a folded value may have; bits for an int


def _fold(node: ast.expr, depth: int):
    if depth > 50:
        raise _NotConvertible
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_fold(e, depth + 1) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _fold(node.operand, depth + 1)
        if type(value) not in (int, float, complex):
            raise _NotConvertible
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _fold(node.left, depth + 1), _fold(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and (type(right) is not int or abs(right) > 64):
            raise _NotConvertible
        if isinstance(node.op, ast.Mult) and _sized(left) * _sized(right) > _MAX_SIZE:
            raise _NotConvertible
        try:
            value = _BINARY[type(node.op)](left, right)
        except (ArithmeticError, TypeError, ValueError) as err:
            raise _NotConvertible from err
        if _sized(value) > _MAX_SIZE:
            raise _NotConvertible
        return value
    raise _NotConvertible


def _sized(value) -> int:
    if type(value) is int:
        return max(1, value.bit_length())
    if isinstance(value, (str, bytes, list, tuple)):
        return max(1, len(value))
    return 1


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_docstring_or_pass(node: ast.stmt) -> bool:
    return isinstance(node, ast.Pass) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    )
