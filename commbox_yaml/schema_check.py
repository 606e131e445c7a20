"""A quick "valid": a schema compiled once into plain predicates that give jsonschema's own
answer, so that a valid message (nearly every one) is never walked by jsonschema."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from functools import cache
from typing import Any

from commbox_yaml.formats import FORMAT_CHECKS, ecma_pattern
from commbox_yaml.resources import schema

_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# Walking a valid message with jsonschema's iter_errors costs about a third of a millisecond
# (it builds a validator per subschema it descends into), and nearly every message is valid.
# quick_check() compiles a schema once into plain predicates that give jsonschema's own answer
# for the keywords our schemas use; only an instance it finds invalid is walked again by
# iter_errors, which alone words the errors. A keyword it does not implement makes the whole
# schema use iter_errors, and a value it cannot judge exactly (_Unsure) makes that instance do so.

Check = Callable[[Any], bool]

# Keywords that assert nothing.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples"})


class _Unsupported(Exception):
    """The schema uses a keyword (or a keyword value) the quick check does not implement."""


class _Unsure(Exception):
    """The quick check cannot judge this value exactly as jsonschema would."""


@cache
def quick_check(name: str) -> Check | None:
    """The quick check of the named schema (None when the schema is not supported)."""
    return compile_quick_check(schema(name))


def compile_quick_check(spec: dict[str, Any]) -> Check | None:
    """A predicate that is True exactly when iter_errors finds nothing; None if unsupported."""
    # What jsonschema's validator_for picks: the draft `$schema` names, else the latest.
    if str(spec.get("$schema", _DRAFT_2020_12)).rstrip("#") != _DRAFT_2020_12:
        return None  # the type and keyword semantics below are those of draft 2020-12
    try:
        check = _compile(spec)
    except _Unsupported:
        return None

    def quick(instance: Any) -> bool:
        try:
            return check(instance)
        except _Unsure:
            return False

    return quick


def _compile(node: Any) -> Check:
    """One subschema as a predicate; mirrors jsonschema's `_keywords` for draft 2020-12."""
    if node is True or node is False:
        return _ALWAYS if node else _NEVER
    if not isinstance(node, dict):
        raise _Unsupported(repr(node))
    checks: list[Check] = []
    for keyword, value in node.items():
        if keyword in _ANNOTATIONS or keyword in ("properties", "additionalProperties"):
            continue
        if keyword in ("then", "else"):  # read with their `if` (alone, they assert nothing)
            continue
        if keyword == "if":
            checks.append(_if(value, node.get("then", True), node.get("else", True)))
            continue
        make = _KEYWORDS.get(keyword)
        if make is None:
            raise _Unsupported(keyword)
        check = make(value)
        if check is not _ALWAYS:
            checks.append(check)
    if "properties" in node or "additionalProperties" in node:
        checks.append(_properties(node.get("properties", {}), node.get("additionalProperties")))
    if not checks:
        return _ALWAYS
    if len(checks) == 1:
        return checks[0]

    def every(value: Any) -> bool:
        # A loop, not all(<generator>): this runs ~20 times a message, and a generator costs.
        for check in checks:  # noqa: SIM110
            if not check(value):
                return False
        return True

    return every


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


_ALWAYS: Check = _always
_NEVER: Check = _never


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Number)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Check] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "null": lambda value: value is None,
}


def _type(types: Any) -> Check:
    names = [types] if isinstance(types, str) else list(types)
    if not names or any(name not in _TYPES for name in names):
        raise _Unsupported(f"type {types!r}")
    tests = [_TYPES[name] for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _enum(members: Any) -> Check:
    """jsonschema's `equal`, for members that are scalars: bools are not numbers, 1 == 1.0."""
    if not isinstance(members, list):
        raise _Unsupported("enum")
    texts: set[str] = set()
    amounts: set[int | float] = set()
    for member in members:
        if isinstance(member, str):
            texts.add(member)
        elif isinstance(member, (int, float)) and not isinstance(member, bool):
            amounts.add(member)
        elif member is not None and not isinstance(member, bool):
            raise _Unsupported(f"enum member {member!r}")
    true = any(member is True for member in members)
    false = any(member is False for member in members)
    null = any(member is None for member in members)

    def check(value: Any) -> bool:
        kind = type(value)
        if kind is str:
            return value in texts
        if kind is int or kind is float:
            return value in amounts
        if kind is bool:
            return true if value else false
        if value is None:
            return null
        if kind is list or kind is dict:
            return False  # no member is a container
        raise _Unsure

    return check


def _pattern(pattern: Any) -> Check:
    search = ecma_pattern(pattern).search  # as the validator's pattern keyword does
    return lambda value: not isinstance(value, str) or search(value) is not None


def _format(name: Any) -> Check:
    check = FORMAT_CHECKS.get(name)
    if check is None:
        return _ALWAYS  # an unknown format asserts nothing, as in jsonschema
    return lambda value: bool(check(value))  # FormatChecker.conforms, for checks that never raise


def _min_length(limit: Any) -> Check:
    return lambda value: not isinstance(value, str) or len(value) >= limit


def _max_length(limit: Any) -> Check:
    return lambda value: not isinstance(value, str) or len(value) <= limit


def _min_items(limit: Any) -> Check:
    return lambda value: not isinstance(value, list) or len(value) >= limit


def _minimum(limit: Any) -> Check:
    return lambda value: not _is_number(value) or not value < limit


def _maximum(limit: Any) -> Check:
    return lambda value: not _is_number(value) or not value > limit


def _exclusive_minimum(limit: Any) -> Check:
    return lambda value: not _is_number(value) or not value <= limit


def _exclusive_maximum(limit: Any) -> Check:
    return lambda value: not _is_number(value) or not value >= limit


def _required(names: Any) -> Check:
    wanted = frozenset(names)
    return lambda value: not isinstance(value, dict) or wanted <= value.keys()


def _properties(properties: dict[str, Any], additional: Any) -> Check:
    known = {name: _compile(sub) for name, sub in properties.items()}
    extra = None if additional is None or additional is True else _compile(additional)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, item in value.items():
            sub = known.get(key)
            if sub is None:
                if extra is not None and not extra(item):
                    return False
            elif not sub(item):
                return False
        return True

    return check


def _property_names(sub: Any) -> Check:
    names = _compile(sub)
    return lambda value: not isinstance(value, dict) or all(names(key) for key in value)


def _items(sub: Any) -> Check:
    item = _compile(sub)

    def check(value: Any) -> bool:
        if isinstance(value, list):
            for each in value:
                if not item(each):
                    return False
        return True

    return check


def _one_of(subs: Any) -> Check:
    branches = [_compile(sub) for sub in subs]
    return lambda value: sum(1 for branch in branches if branch(value)) == 1


def _any_of(subs: Any) -> Check:
    branches = [_compile(sub) for sub in subs]
    return lambda value: any(branch(value) for branch in branches)


def _all_of(subs: Any) -> Check:
    branches = [_compile(sub) for sub in subs]
    return lambda value: all(branch(value) for branch in branches)


def _if(condition: Any, then: Any, otherwise: Any) -> Check:
    test, yes, no = _compile(condition), _compile(then), _compile(otherwise)
    return lambda value: yes(value) if test(value) else no(value)


_KEYWORDS: dict[str, Callable[[Any], Check]] = {
    "type": _type,
    "enum": _enum,
    "const": lambda value: _enum([value]),
    "pattern": _pattern,
    "format": _format,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minItems": _min_items,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "exclusiveMaximum": _exclusive_maximum,
    "required": _required,
    "propertyNames": _property_names,
    "items": _items,
    "oneOf": _one_of,
    "anyOf": _any_of,
    "allOf": _all_of,
}
