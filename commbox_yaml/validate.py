"""JSON Schema checks whose errors point back at the source line of the bad value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from commbox_yaml.errors import Problem
from commbox_yaml.resources import schema
from commbox_yaml.source import PathKey, Positions

_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


@FORMATS.checks("phone")
def _is_phone(value: object) -> bool:
    return not isinstance(value, str) or bool(_PHONE.match(value))


@FORMATS.checks("whatsapp-template-name")
def _is_template_name(value: object) -> bool:
    return not isinstance(value, str) or bool(_TEMPLATE_NAME.match(value))


_FORMAT_MESSAGES = {
    "email": "is not an email address",
    "phone": "is not a phone number (digits, with an optional leading +)",
    "whatsapp-template-name": "is not a WhatsApp template name (lower case letters, digits, '_')",
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
    spec = schema(name)
    cls = jsonschema.validators.validator_for(spec)
    cls.check_schema(spec)
    return cls(spec, format_checker=FORMATS)


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_problems(
    instance: Any, schema_name: str, positions: Positions, item_key: str | None = None
) -> list[Problem]:
    """Every way `instance` breaks the named schema, each located in the source."""
    errors = list(validator(schema_name).iter_errors(instance))
    # A format check and the pattern written beside it for editors say the same thing.
    formatted = {tuple(e.absolute_path) for e in errors if e.validator == "format"}
    problems: list[Problem] = []
    for error in errors:
        if error.validator == "pattern" and tuple(error.absolute_path) in formatted:
            continue
        problems.extend(_explain(error, positions, item_key))
    return sorted(set(problems), key=Problem.sort_key)


def _explain(error: ValidationError, positions: Positions, item_key: str | None) -> list[Problem]:
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
            return _explain(deepest, positions, item_key)
    written = positions.texts.get(path)
    return [Problem(where, _message(error, written), format_path(path), item_key)]


def _message(error: ValidationError, written: str | None = None) -> str:
    """What is wrong with the value; `written` is its text when YAML read it unexpectedly."""
    value = error.instance
    rule: Any = error.validator_value
    shown = _show(value) if written is None else f"{written} (read by YAML as {value!r})"
    validator_name = error.validator
    if validator_name == "format":
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
        options = [o for o in rule if isinstance(o, str)] or list(rule)
        close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
        tip = f"; did you mean '{close[0]}'?" if close else ""
        return f"{shown} is not one of: {', '.join(str(o) for o in options)}{tip}"
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
    if validator_name in _BOUNDS:
        return f"{shown} {_BOUNDS[str(validator_name)]} {rule!r}"
    return error.message


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
