"""Plain values across the sandbox wall, and how the trusted side compares them.

A program's outputs leave the sandbox as JSON with tags, so that the trusted side gets back exactly
the built-in value the function returned (a tuple stays a tuple, 1 stays apart from 1.0 and True)
and nothing else: an object of the program's own class cannot be encoded at all, so an object
whose `__eq__` says True to everything never reaches a comparison. Test inputs go in the same way.

This module runs on both sides (the harness imports it by path inside the sandbox), so it uses the
standard library only.
"""

from __future__ import annotations

import math

# Containers are tagged lists ["tuple", [...]]; scalars are JSON's own (json keeps 1 and 1.0
# apart, and writes nan / inf as NaN / Infinity, which it also reads back).
_SCALARS = (str, int, float, bool, type(None))


def encode(value, depth: int = 0):
    """A JSON-able form of a plain built-in value; TypeError for anything else (subclasses too)."""
    if depth > 100:
        raise TypeError("value nested more than 100 deep")
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [kind.__name__, [encode(v, depth + 1) for v in value]]
    if kind is set or kind is frozenset:
        return [kind.__name__, [encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["dict", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    if kind is bytes:
        return ["bytes", value.hex()]
    if kind is complex:
        return ["complex", [value.real, value.imag]]
    raise TypeError(f"a {kind.__name__} is not a plain value")


def decode(data):
    """The value `encode` was given; ValueError on anything `encode` cannot have written."""
    if type(data) in _SCALARS:
        return data
    if type(data) is not list or len(data) != 2 or type(data[0]) is not str:
        raise ValueError(f"not an encoded value: {str(data)[:80]}")
    tag, body = data
    if tag in ("list", "tuple", "set", "frozenset", "dict") and type(body) is not list:
        raise ValueError(f"not an encoded {tag}")
    if tag == "list":
        return [decode(v) for v in body]
    if tag == "tuple":
        return tuple(decode(v) for v in body)
    if tag in ("set", "frozenset"):
        items = [decode(v) for v in body]
        return set(items) if tag == "set" else frozenset(items)
    if tag == "dict":
        return {decode(k): decode(v) for k, v in body}
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2:
        return complex(*body)
    raise ValueError(f"not an encoded value: tag {tag!r}")


def same_value(out, expected) -> bool:
    """`out == expected` for plain values, type-strict with a tolerance for floats.

    Type-strict: a bool is never equal to an int, nor a str to bytes, nor a set to a list. Numbers
    are numbers: when either side is a float the two are compared with a relative tolerance of 1e-6
    (and 1e-9 absolute), so 0.1 + 0.2 matches 0.3 and 2.0 matches 2. Lists and tuples are
    interchangeable, because expected values read from JSON data have no tuples.
    """
    if type(out) is bool or type(expected) is bool:
        return type(out) is type(expected) and out == expected
    if type(out) is float or type(expected) is float:
        numbers = (int, float)
        if not (type(out) in numbers and type(expected) in numbers):
            return False
        if math.isnan(out) or math.isnan(expected):
            return math.isnan(out) and math.isnan(expected)
        return math.isclose(out, expected, rel_tol=1e-6, abs_tol=1e-9)
    if type(out) in (list, tuple) and type(expected) in (list, tuple):
        return len(out) == len(expected) and all(same_value(o, e) for o, e in zip(out, expected))
    if type(out) is dict and type(expected) is dict:
        return out.keys() == expected.keys() and all(
            same_value(out[k], expected[k]) for k in expected
        )
    if type(out) in (set, frozenset) and type(expected) in (set, frozenset):
        return out == expected
    return type(out) is type(expected) and out == expected
