"""YAML as experiment and sweep files are read: PyYAML's safe loader, except that a key written
twice in one mapping is refused.

PyYAML keeps the last of two equal keys without a word, so a second `rollout:` block silently
drops the first and the run trains on half of what the file says. Here that is an error naming
the key and both lines:

    load("a: 1\\na: 2\\n")   # DuplicateKeyError: key 'a' written twice, at lines 1 and 2
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A key written twice in one mapping; `key`, `first_line` and `second_line` say where."""

    def __init__(self, key: Any, first_line: int, second_line: int):
        self.key, self.first_line, self.second_line = key, first_line, second_line
        super().__init__(
            f"key '{key}' written twice in one mapping, at lines {first_line} and "
            f"{second_line}; the second would silently replace the first: merge them into one"
        )


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *alias` merges, it is no key
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the safe loader's own error says so below
                break
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """`yaml.safe_load`, refusing duplicate keys."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
