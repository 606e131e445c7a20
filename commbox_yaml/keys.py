"""Ledger key patterns: `--replace` and `reconcile` take a key or a quoted glob of keys.

`*` matches any run of characters and `?` one; everything else, `[` and `]` included, is
literal. Keys hold brackets (`release-2.0[acme]`), so this is not fnmatch, where `[...]` is a
character class and `release-2.0[*]` would match `release-2.0*` but never the keys meant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from commbox_yaml.errors import UserError
from commbox_yaml.hints import did_you_mean

KeyMatcher = Callable[[str], bool]
# One limit on both backends: PostgreSQL's btree index refuses a row over 2704 bytes, and
# 512 characters stay under it even at 4 bytes a character.
MAX_KEY_LENGTH = 512
# Test sends (apply --test-to) are recorded under `test:<key>`: no real key starts with it.
TEST_PREFIX = "test:"


_NUMBERS = re.compile(r"([0-9]+)")
NaturalKey = tuple[tuple[str | int, ...], str]


def natural_key(text: str) -> NaturalKey:
    """A sort key that orders the numbers in text by value: `c2` before `c10`, as a person
    reads a fan-out's addresses. Text and numbers alternate in the same places in every key,
    so they are always compared like with like; the text itself breaks a tie (`c01`, `c1`)."""
    parts = _NUMBERS.split(text)
    return tuple(int(p) if n % 2 else p for n, p in enumerate(parts)), text


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def key_glob(pattern: str) -> re.Pattern[str]:
    """`*` any run, `?` one character; `[` and `]` are literal (they are part of keys and
    addresses, so this is not fnmatch)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def key_matcher(pattern: str) -> KeyMatcher:
    """A predicate telling whether a ledger key (or an address) matches `pattern`: itself,
    or a glob."""
    if not is_glob(pattern):
        return pattern.__eq__
    compiled = key_glob(pattern)
    return lambda key: compiled.fullmatch(key) is not None


def expand(patterns: Iterable[str], keys: Iterable[str], option: str = "--replace") -> set[str]:
    """Every key any pattern matches; a pattern that matches none is an error, naming it."""
    known = sorted(set(keys))
    matched: set[str] = set()
    for pattern in patterns:
        found = set(filter(key_matcher(pattern), known))
        if not found:
            raise UserError(_no_match(pattern, known, option))
        matched |= found
    return matched


def _no_match(pattern: str, known: list[str], option: str) -> str:
    if is_glob(pattern):
        what = (
            "matches no message key of this plan (in a glob, * is any run of characters, "
            "? one; [ and ] are literal)"
        )
    else:
        what = f"names no message key of this plan{did_you_mean(pattern, known)}"
    return f"{option} {pattern!r} {what}; 'commbox-yaml plan' shows each message's key"
