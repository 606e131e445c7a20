"""Where a bad value came from, when it came from a var file rather than the message file.

A value that a template took from a variable is wrong in the var file, not in the message: an
error about it names both places (`messages/x.yaml:7:5: to[0]: 'abc' is not a phone number
(from vars/customers.yaml:3:9)`). Origins are looked up only when an error is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.source import PathKey
from commbox_yaml.variables import Variables

Origin = Callable[[PathKey, Any], str]


def origin_finder(definition: Definition, variables: Variables) -> Origin:
    """A function giving " (from FILE:LINE:COL)" for a bad value at a path, or ""."""

    def origin(path: PathKey, value: Any) -> str:
        if not templated(definition.data, path):
            return ""  # written in the message file itself: its own location says it all
        found = variables.find(value)
        if not found:
            return ""
        more = f" and {len(found) - 1} more place{'s' if len(found) > 2 else ''}"
        return f" (from {found[0]}{more if len(found) > 1 else ''})"

    return origin


def templated(data: Any, path: PathKey) -> bool:
    """Whether the value at `path` of a definition comes out of a template."""
    current = data
    for part in path:
        if isinstance(current, str):
            break  # a template gave the container this value is in
        in_mapping = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if not (in_mapping or in_list):
            return False
        current = current[part]
    return isinstance(current, str) and ("{{" in current or "{%" in current)
