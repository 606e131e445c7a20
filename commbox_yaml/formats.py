"""The formats our schemas name (email, phone, header-text, ...) and their patterns with JSON
Schema's meaning: one definition, used by jsonschema (which words errors) and by the quick
check alike."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from commbox_yaml.phones import MAX_PHONE1_DIGITS, is_phone

if TYPE_CHECKING:  # jsonschema is imported only to word the errors of an invalid value
    import jsonschema

_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\Z"
)
FORMAT_CHECKS: dict[str, Callable[[object], bool]] = {}


def _checks(name: str) -> Callable[[Callable[[object], bool]], Callable[[object], bool]]:
    def register(check: Callable[[object], bool]) -> Callable[[object], bool]:
        FORMAT_CHECKS[name] = check
        return check

    return register


@cache
def format_checker() -> jsonschema.FormatChecker:
    """Our formats as jsonschema's FormatChecker (built, and jsonschema imported, on first use)."""
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    for name, check in FORMAT_CHECKS.items():
        checker.checks(name)(check)
    return checker


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
