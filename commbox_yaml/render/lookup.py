"""What a definition's text is, read once per distinct text, and the fast lookup path.

`{{ name }}` and `{{ name.key.key }}`, alone or between plain text, are most templates: they
are looked up here in plain dicts instead of through a fresh Jinja context per value (which
cost more than everything else in rendering), giving what Jinja gives. Whatever else a
template holds, and a lookup that does not find a plain value, goes to Jinja, which also words
every error.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

Lookup = tuple[str, ...]

SINGLE = re.compile(r"^\{\{-?(.*?)-?\}\}$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_LOOKUP = re.compile(rf"[ \t\n]*({_NAME}(?:\.{_NAME})*)[ \t\n]*")
# Plain text outside `{{ }}` is left as written by Jinja, except line endings: no '\r'.
_TEXT_PART = re.compile(r"\{\{([^{}]*)\}\}|[^{}\r]+")
# Names Jinja reads as constants, operators or its own objects rather than as variables.
_NOT_VARIABLES = frozenset(
    {"true", "false", "none", "True", "False", "None", "self", "loop", "super", "caller"}
    | {"varargs", "kwargs", "and", "or", "not", "in", "is", "if", "else", "elif", "for"}
    | {"recursive", "with", "without", "context", "import", "from", "as", "set", "block"}
)
MISSING = object()


class Kind(NamedTuple):
    """What a string value of a definition is: plain text, a template, or one expression."""

    template: bool
    expression: str | None  # a value that is one `{{ expression }}` keeps the result's type


def classify(raw: str) -> Kind:
    if not any(marker in raw for marker in _MARKERS):
        return Kind(False, None)
    single = SINGLE.match(raw)
    if single and not any(m in single.group(1) for m in ("{{", "}}", "{%", "{#")):
        return Kind(True, single.group(1))
    return Kind(True, None)


def inner_expression(source: str) -> str:
    """The expression of `{{ expression }}`, or `source` itself when it is a bare one."""
    single = SINGLE.match(source.strip())
    return single.group(1) if single else source


def parse_lookup(expression: str) -> Lookup | None:
    """`a.b.c` as ("a", "b", "c") when Jinja would look it up in the scope, then in dicts."""
    found = _LOOKUP.fullmatch(expression)
    if found is None:
        return None
    names = tuple(found.group(1).split("."))
    if any(name in _NOT_VARIABLES for name in names):
        return None
    # `item.items` is the dict's method, not its key: Jinja's getattr prefers attributes.
    if any(hasattr(dict, name) for name in names[1:]):
        return None
    return names


def parse_text(source: str) -> tuple[str | Lookup, ...] | None:
    """A template of plain text and `{{ a.b }}` only, as its parts; None for any other."""
    parts: list[str | Lookup] = []
    end = 0
    for match in _TEXT_PART.finditer(source):
        if match.start() != end:
            return None  # a '{', '}' or '\r' that is not part of a simple `{{ a.b }}`
        end = match.end()
        if match.group(1) is None:
            parts.append(match.group(0))
            continue
        lookup = parse_lookup(match.group(1))
        if lookup is None:
            return None
        parts.append(lookup)
    return tuple(parts) if end == len(source) else None


def look_up(lookup: Lookup, scope: dict[str, Any]) -> Any:
    """The value Jinja finds for `lookup` in a fresh context of `scope`, or MISSING when only
    Jinja can tell (a global such as `range`, a missing name or key, an object not a dict)."""
    value = scope.get(lookup[0], MISSING)
    for name in lookup[1:]:
        if type(value) is not dict:
            return MISSING
        value = value.get(name, MISSING)
    return value


def look_up_text(parts: tuple[str | Lookup, ...], scope: dict[str, Any]) -> str | None:
    """The text Jinja renders from simple template parts, or None when Jinja must do it."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = look_up(part, scope)
        if value is MISSING:
            return None
        out.append(str(value))  # what `{{ value }}` writes (no autoescape, no finalize)
    return "".join(out)
