"""JSON Schema checks whose errors point back at the source line of the bad value."""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from commbox_yaml.errors import Problem
from commbox_yaml.phones import MAX_PHONE1_DIGITS, is_phone, phone_problem
from commbox_yaml.resources import schema
from commbox_yaml.source import PathKey, Positions

if TYPE_CHECKING:  # jsonschema is imported only to word the errors of an invalid value
    import jsonschema
    from jsonschema.exceptions import ValidationError

_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\Z"
)
_FORMAT_CHECKS: dict[str, Callable[[object], bool]] = {}
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def _checks(name: str) -> Callable[[Callable[[object], bool]], Callable[[object], bool]]:
    def register(check: Callable[[object], bool]) -> Callable[[object], bool]:
        _FORMAT_CHECKS[name] = check
        return check

    return register


@cache
def format_checker() -> jsonschema.FormatChecker:
    """Our formats as jsonschema's FormatChecker (built, and jsonschema imported, on first use)."""
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    for name, check in _FORMAT_CHECKS.items():
        checker.checks(name)(check)
    return checker


def __getattr__(name: str) -> Any:
    if name == "FORMATS":  # the checker under its older name, for scripts that import it
        return format_checker()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@_checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


@_checks("phone")
def _is_phone(value: object) -> bool:
    return not isinstance(value, str) or is_phone(value)


@_checks("user-phone")
def _is_user_phone(value: object) -> bool:
    return not isinstance(value, str) or is_phone(value, MAX_PHONE1_DIGITS)


@_checks("single-line")
def _is_single_line(value: object) -> bool:
    return not isinstance(value, str) or not any(ch in value for ch in "\r\n\u2028\u2029")


# Text that becomes a mail header (a subject, a display name): a line break in it would
# start a header of its own (`Bcc:`), and other control characters have no place there.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@_checks("header-text")
def _is_header_text(value: object) -> bool:
    return not isinstance(value, str) or _CONTROL.search(value) is None


_FORMAT_MESSAGES = {
    "email": "is not an email address",
    "single-line": "must be one line (it has a line break)",
    "header-text": (
        "holds a line break or another control character, which would become part of the "
        "mail's headers; remove it (a rendered value: | replace('\\n', ' '))"
    ),
}
# Formats whose message says what exactly is wrong with the value.
_FORMAT_REASONS: dict[str, Callable[[str], str | None]] = {
    "phone": phone_problem,
    "user-phone": lambda text: phone_problem(text, MAX_PHONE1_DIGITS),
}

_BOUNDS = {
    "minimum": "is too small: it must be at least",
    "maximum": "is too large: it must be at most",
    "exclusiveMinimum": "is too small: it must be more than",
    "exclusiveMaximum": "is too large: it must be less than",
}

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "object": "a mapping", "array": "a list", "null": "empty",
}  # fmt: skip


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    import jsonschema

    spec = schema(name)
    cls = jsonschema.validators.validator_for(spec)
    cls.check_schema(spec)
    strict = jsonschema.validators.extend(cls, {"pattern": _pattern_keyword})  # type: ignore[no-untyped-call]
    built: jsonschema.protocols.Validator = strict(spec, format_checker=format_checker())
    return built


def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """A schema pattern with JSON Schema's meaning of a final `$`: the end of the text.
    Python's `$` also matches before a final line break, so `'ann@example.org\\n'` or a
    name `'notes\\n'` would pass `^...$`."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return _compiled(pattern)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_problems(
    instance: Any,
    schema_name: str,
    positions: Positions,
    item_key: str | None = None,
    origin: Callable[[PathKey, Any], str] | None = None,
    shown: Any = None,
) -> list[Problem]:
    """Every way `instance` breaks the named schema, each located in the source; `origin`
    says where a bad value came from when a template took it from elsewhere (a var file).
    `shown`: the instance as outputs show it, when a secret was rendered into it (taint.py);
    an error about a value that differs there quotes the shown value, and no more of it."""
    quick = quick_check(schema_name)
    if quick is not None and quick(instance):  # the common case: nothing to explain
        return []
    errors = list(validator(schema_name).iter_errors(instance))
    # A format check and the pattern written beside it for editors say the same thing.
    formatted = {tuple(e.absolute_path) for e in errors if e.validator == "format"}
    problems: list[Problem] = []
    for error in errors:
        if error.validator == "pattern" and tuple(error.absolute_path) in formatted:
            continue
        problems.extend(_explain(error, positions, item_key, origin, shown))
    return sorted(set(problems), key=Problem.sort_key)


# -- a quick "valid" ------------------------------------------------------------------------
#
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
        return all(check(value) for check in checks)

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
    check = _FORMAT_CHECKS.get(name)
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
    wanted = list(names)
    return lambda value: not isinstance(value, dict) or all(name in value for name in wanted)


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
    return lambda value: not isinstance(value, list) or all(item(each) for each in value)


def _one_of(subs: Any) -> Check:
    branches = [_compile(sub) for sub in subs]
    return lambda value: sum(1 for branch in branches if branch(value)) == 1


def _any_of(subs: Any) -> Check:
    branches = [_compile(sub) for sub in subs]
    return lambda value: any(branch(value) for branch in branches)


def _all_of(subs: Any) -> Check:
    branches = [_compile(sub) for sub in subs]
    return lambda value: all(branch(value) for branch in branches)


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


# -- explaining errors ---------------------------------------------------------------------


def _explain(
    error: ValidationError,
    positions: Positions,
    item_key: str | None,
    origin: Callable[[PathKey, Any], str] | None = None,
    shown: Any = None,
) -> list[Problem]:
    path: PathKey = tuple(error.absolute_path)
    where = positions.locate(path)

    def problem(message: str, at: PathKey = path, key_location: bool = False) -> Problem:
        loc = positions.locate_key(at) if key_location else positions.locate(at)
        return Problem(loc, message, format_path(at), item_key)

    validator_name = error.validator
    subschema = error.schema if isinstance(error.schema, dict) else {}
    if validator_name == "additionalProperties" and isinstance(error.instance, dict):
        known = list(subschema.get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        out = []
        for key in extra:
            hint = difflib.get_close_matches(str(key), known, n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else f"; allowed keys: {', '.join(known)}"
            out.append(problem(f"unknown key '{key}'{tip}", (*path, key), key_location=True))
        return out
    if validator_name == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else error.message
        return [problem(f"missing required key '{name}'")]
    if validator_name == "oneOf" and not path and isinstance(error.instance, dict):
        return [problem("needs a 'message' (or a 'message_file')")]
    if validator_name in ("anyOf", "oneOf") and error.context:
        # Prefer the branch whose type fits the value: its errors say what is really wrong.
        fitting = [e for e in error.context if e.validator != "type"]
        if fitting:
            deepest = max(fitting, key=lambda e: len(e.absolute_path))
            return _explain(deepest, positions, item_key, origin, shown)
    written = positions.texts.get(path)
    value = error.instance
    if shown is not None:
        seen = _at(shown, path)
        if seen is not value and seen != value:  # a secret made it: quote what is shown
            message = f"{_show(seen)} {_withheld(error)}"
            return [Problem(where, message, format_path(path), item_key)]
    message = _message(error, written)
    if origin is not None and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        message += origin(path, value)
    return [Problem(where, message, format_path(path), item_key)]


_MISSING = object()


def _at(data: Any, path: PathKey) -> Any:
    for part in path:
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            continue
        if not (isinstance(data, dict) and part in data):
            return _MISSING
        data = data[part]
    return data


_FORMAT_NAMES = {
    "phone": "a phone number",
    "user-phone": "a phone number",
    "email": "an email address",
}


def _withheld(error: ValidationError) -> str:
    """What is wrong with a value a secret made, saying nothing more of the value."""
    rule: Any = error.validator_value
    if error.validator == "format":
        what = _FORMAT_NAMES.get(str(rule), f"in the {rule} format")
        return f"is not {what}"
    if error.validator == "type":
        names = [rule] if isinstance(rule, str) else list(rule)
        return f"is not {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}"
    return f"breaks the rule '{error.validator}: {rule}' (the sensitive value is not shown)"


def _message(error: ValidationError, written: str | None = None) -> str:
    """What is wrong with the value; `written` is its text when YAML read it unexpectedly."""
    value = error.instance
    rule: Any = error.validator_value
    shown = _show(value) if written is None else f"{written} (read by YAML as {value!r})"
    validator_name = error.validator
    if validator_name == "format":
        reason = _FORMAT_REASONS.get(str(rule))
        if reason is not None and isinstance(value, str):
            return f"{shown} is not a phone number: {reason(value)}"
        return f"{shown} {_FORMAT_MESSAGES.get(str(rule), 'has the wrong format')}"
    if validator_name == "type":
        names = [rule] if isinstance(rule, str) else list(rule)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        hint = ""
        if "string" in names and isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = " (put it in quotes to keep it as text)"
        if isinstance(value, (dict, list)):
            return f"expected {wanted}, not {_kind(value)}"
        return f"{shown} is {_kind(value)}, expected {wanted}{hint}"
    if validator_name == "enum":
        return _enum_message(shown, value, rule, error.schema)
    if validator_name == "const":
        return f"{shown} must be {_show(rule)}"
    if validator_name == "pattern":
        if rule == "^[a-z0-9][a-z0-9_-]*$":
            return (
                f"{shown} must be lower case letters, digits, '-' and '_', "
                "not starting with '-' or '_'"
            )
        return f"{shown} does not match the pattern {rule}"
    if validator_name in ("minItems", "minLength") and rule == 1:
        return "must not be empty"
    if validator_name == "maxLength" and isinstance(value, str):
        return f"{shown} is too long: {len(value)} characters, at most {rule}"
    if validator_name in _BOUNDS:
        return f"{shown} {_BOUNDS[str(validator_name)]} {rule!r}"
    return error.message


_MAX_LISTED = 20  # a longer enum is named by its title, with a suggestion


def _enum_message(shown: str, value: Any, rule: Any, subschema: Any) -> str:
    options = [o for o in rule if isinstance(o, str)] or list(rule)
    texts = [str(o) for o in options]
    close = _same_but_spelling(value, texts) or difflib.get_close_matches(str(value), texts, n=1)
    tip = f"; did you mean '{close[0]}'?" if close else ""
    title = subschema.get("title") if isinstance(subschema, dict) else None
    listed = ", ".join(texts)
    if len(options) > _MAX_LISTED and title:
        return f"{shown} is not a {title}{tip or f' (one of: {listed})'}"
    return f"{shown} is not one of: {listed}{tip}"


def _same_but_spelling(value: Any, options: list[str]) -> list[str]:
    """The option that differs from `value` only in case, '-' or '_' (`en-US` is `en_US`)."""
    if not isinstance(value, str):
        return []
    squashed = value.lower().replace("-", "").replace("_", "")
    return [o for o in options if o.lower().replace("-", "").replace("_", "") == squashed][:1]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "empty"
    if isinstance(value, (int, float)):
        return "a number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return _TYPE_NAMES.get(kinds.get(type(value), ""), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, (dict, list)):
        return "the " + ("mapping" if isinstance(value, dict) else "list")
    return repr(value) if value is not None else "an empty value"
