"""JSON Schema checks whose errors point back at the source line of the bad value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from commbox_yaml.errors import Problem
from commbox_yaml.formats import ecma_pattern, format_checker
from commbox_yaml.phones import MAX_PHONE1_DIGITS, phone_problem
from commbox_yaml.resources import schema
from commbox_yaml.schema_check import quick_check
from commbox_yaml.source import PathKey, Positions

if TYPE_CHECKING:  # jsonschema is imported only to word the errors of an invalid value
    import jsonschema
    from jsonschema.exceptions import ValidationError


def __getattr__(name: str) -> Any:
    if name == "FORMATS":  # the checker under its older name, for scripts that import it
        return format_checker()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

# Keys of the whatsapp schema alone: on another channel, an unknown key says what they are for.
_WHATSAPP_ONLY = {
    "api": "api: v2 sends a template through CommBox's v2 WhatsApp endpoint",
    "schedule": "a WhatsApp template with api: v2 can be scheduled",
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
            if not path and key in _WHATSAPP_ONLY:
                text = f"is for whatsapp messages only ({_WHATSAPP_ONLY[key]}); remove it"
                out.append(problem(text, (key,), key_location=True))
                continue
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
