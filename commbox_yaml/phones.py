"""Phone numbers: written any common way, sent as CommBox documents them.

CommBox wants digits "without leading + or 00" (`972544444444`). People write `+972 54-444-4444`,
`00972544444444`, `(054) 444.4444`: spaces, dashes, dots and parentheses are dropped, a leading
`+` or `00` (the international prefix) is removed. Anything else (letters, a `+` inside the
number, too few or too many digits) is not a phone number and is refused, never guessed at.
"""

from __future__ import annotations

import re

MIN_DIGITS = 7  # the shortest international numbers (+290 XXXX, Saint Helena)
MAX_DIGITS = 15  # E.164
MAX_PHONE1_DIGITS = 20  # CommBox's limit on User.Phone1
_SEPARATORS = frozenset(" -.()\t\u00a0")


# The usual shape, matched first because validation asks this of every number (the slow
# path below gives the same answers, and the reason when there is one).
_USUAL = re.compile(r"[ \t\u00a0]*(\+?)([0-9 ().\t\u00a0-]*)\Z")
_NOT_DIGIT = re.compile(r"[^0-9]+")


def phone_problem(text: str, max_digits: int = MAX_DIGITS) -> str | None:
    """Why `text` is not a phone number (None when it is one)."""
    usual = _USUAL.match(text)
    if usual is not None:
        plus, digits = usual.group(1), _NOT_DIGIT.sub("", usual.group(2))
        if not plus and digits.startswith("00"):
            digits = digits[2:]
        if MIN_DIGITS <= len(digits) <= max_digits and not (plus and digits[0] == "0"):
            return None
    return _problem(text, max_digits)


def _problem(text: str, max_digits: int) -> str | None:
    stripped = text.strip()
    body = stripped[1:] if stripped.startswith("+") else stripped
    if not body:
        return "it has no digits"
    if "+" in body:
        return "a '+' may only lead the number"
    if any(ch.isalpha() for ch in body):
        return "it has letters"
    odd = sorted({ch for ch in body if not ch.isdigit() and ch not in _SEPARATORS})
    if odd:
        return f"{', '.join(repr(ch) for ch in odd)} cannot be part of one"
    if any(ch.isdigit() and not ch.isascii() for ch in body):
        return "write its digits as 0-9"
    digits = _digits(stripped)
    if stripped.startswith("+") and digits.startswith("0"):
        return "after '+' comes the country code, which never starts with 0"
    if len(digits) < MIN_DIGITS:
        return f"it has {len(digits)} digits; a full number has at least {MIN_DIGITS}"
    if len(digits) > max_digits:
        return f"it has {len(digits)} digits; at most {max_digits} are allowed"
    return None


def is_phone(text: str, max_digits: int = MAX_DIGITS) -> bool:
    return phone_problem(text, max_digits) is None


def normalize_phone(text: str) -> str:
    """The digits CommBox wants: separators dropped, no leading `+` or `00`.

    Only for a value `is_phone` accepts (validation comes first).
    """
    return _digits(text.strip())


def _digits(stripped: str) -> str:
    digits = _NOT_DIGIT.sub("", stripped) if stripped.isascii() else _unicode_digits(stripped)
    if not stripped.startswith("+") and digits.startswith("00"):
        digits = digits[2:]
    return digits


def _unicode_digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())
