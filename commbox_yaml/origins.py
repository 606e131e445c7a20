"""Where a bad value came from, when it came from a var file rather than the message file.

A value that a template took from a variable is wrong in the var file, not in the message: an
error about it names both places (`messages/x.yaml:7:5: to[0]: 'abc' is not a phone number
(from vars/customers.yaml:3:9)`). Origins are looked up only when an error is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.source import PathKey
from commbox_yaml.variables import Variables

Origin = Callable[[PathKey, Any], str]


def origin_finder(definition: Definition, variables: Variables) -> Origin:
    """A function giving " (from FILE:LINE:COL)" for a bad value at a path, or ""."""

    def origin(path: PathKey, value: Any) -> str:
        template = template_at(definition.data, path)
        if template is None:
            return ""  # written in the message file itself: its own location says it all
        names = names_in(template)
        if names & {"item", "key"} and isinstance(definition.data.get("for_each"), str):
            names |= names_in(definition.data["for_each"], bare=True)
        found = variables.find(value, sorted(names))
        if not found:
            return ""
        more = f" and {len(found) - 1} more place{'s' if len(found) > 2 else ''}"
        return f" (from {found[0]}{more if len(found) > 1 else ''})"

    return origin


def template_at(data: Any, path: PathKey) -> str | None:
    """The template the value at `path` of a definition came out of (None: written as is)."""
    current = data
    for part in path:
        if isinstance(current, str):
            break  # a template gave the container this value is in
        in_mapping = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if not (in_mapping or in_list):
            return None
        current = current[part]
    if isinstance(current, str) and ("{{" in current or "{%" in current):
        return current
    return None


_BLOCK = re.compile(r"\{[{%](.*?)[%}]\}", re.DOTALL)
_NAME = re.compile(r"(?<![.\w])[A-Za-z_]\w*")


def names_in(template: str, bare: bool = False) -> set[str]:
    """The names a template's expressions start from (`item.phone` gives `item`); with `bare`,
    text without `{{ }}` is one expression (as `for_each: customers` is)."""
    blocks = _BLOCK.findall(template) or ([template] if bare else [])
    return {name for block in blocks for name in _NAME.findall(block)}
