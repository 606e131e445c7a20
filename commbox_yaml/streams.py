"""CommBox stream ids: what a `stream:` value may be, its one spelling, and its place in a path.

A stream id is CommBox's number (`17566`, an integer or a string of digits) or its "encrypted"
id (`hNyRN_fLUy7rrOrN9jLpipA==`, base64, so `+`, `/` and `=` occur), which CommBox's docs show
percent-encoded (`hNyRN_fLUy7rrOrN9jLpipA%3d%3d`). An id is kept decoded (so both spellings are
one stream, with one fingerprint) and percent-encoded exactly once when it goes into the path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

from commbox_yaml.errors import Location, Problem
from commbox_yaml.source import Positions

# Every '%' followed by two hex digits: the text is already percent-encoded.
_ENCODED = re.compile(r"^(?:[^%]|%[0-9A-Fa-f]{2})*%[0-9A-Fa-f]{2}(?:[^%]|%[0-9A-Fa-f]{2})*$")
_DIGITS = re.compile(r"^[0-9]+$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
# The characters of base64 and base64url, in which CommBox writes its encrypted ids.
_ID_CHARS = re.compile(r"^[A-Za-z0-9+/=_-]+$")
# What a user writes as an alias name: such a word is never taken for an id unless it is all
# hexadecimal (ids such as `5fd0c1`). A real encrypted id has an upper case letter, `+`, `/`
# or `=` in it (24 random base64 characters without one: about 1 in 100,000).
_ALIAS_SHAPED = re.compile(r"^[a-z0-9_.-]+$")
EXAMPLE = "hNyRN_fLUy7rrOrN9jLpipA=="


class StreamIdError(ValueError):
    """The value is not a usable stream id; the message says why and what to write."""


def path_segment(stream_id: str) -> str:
    """The id as the path's STREAM_ID: every reserved character percent-encoded, once."""
    return quote(stream_id, safe="")


def canonical_id(value: object) -> str:
    """A stream id in its one decoded spelling; StreamIdError when it cannot be one.

    Used for alias values in commbox.yaml, where the value is declared to be an id: any text
    without spaces or control characters is taken (and encoded in the path).
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise StreamIdError("a stream id is a number or text")
    if isinstance(value, int):
        if value < 0:
            raise StreamIdError(f"{value} is not a stream id: CommBox's ids are not negative")
        return str(value)
    text = _decoded(value)
    if not text:
        raise StreamIdError("a stream id must not be empty")
    if set(text) == {"."}:
        raise StreamIdError(
            f"{value!r} is not a stream id: an id of dots alone would change the path "
            "(clients collapse '.' and '..' segments)"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise StreamIdError(
            f"{value!r} is not a stream id: ids have no spaces or control characters"
        )
    return text


def _decoded(value: str) -> str:
    """The text of an id given percent-encoded (as in CommBox's docs), decoded once."""
    if "%" not in value or not _ENCODED.match(value):
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise StreamIdError(
            f"{value!r} is not a stream id: it decodes to bytes that are not UTF-8"
        ) from None


def is_raw_id(text: str) -> bool:
    """Whether a message's `stream:` text is a raw id rather than (a mistyped) alias name."""
    if _DIGITS.match(text) or _HEX.match(text):
        return True
    if "%" in text and _ENCODED.match(text):
        return True  # nobody percent-encodes an alias name
    return bool(_ID_CHARS.match(text)) and not _ALIAS_SHAPED.match(text)


def near_alias(text: str, aliases: Mapping[str, object]) -> str | None:
    """An alias within two edits of `text` (case ignored), so a typo never becomes a raw id."""
    lowered = text.lower()
    best: tuple[int, str] | None = None
    for alias in aliases:
        distance = edit_distance(lowered, alias.lower(), limit=2)
        # A short alias is not "near" everything short: at least one character must agree.
        if distance <= 2 and distance < len(alias) and (best is None or distance < best[0]):
            best = (distance, alias)
    return best[1] if best else None


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or limit + 1 as soon as it is known to exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def resolve(value: object, aliases: Mapping[str, str]) -> str:
    """A message's `stream:` value as a decoded stream id; StreamIdError says what is wrong.

    `aliases` maps alias names to ids already in their canonical spelling.
    """
    if isinstance(value, str) and value in aliases:
        return aliases[value]
    if isinstance(value, int) and not isinstance(value, bool):
        return canonical_id(value)
    if not isinstance(value, str):
        raise StreamIdError("a stream is an alias name, a number or an id")
    known = ", ".join(sorted(aliases)) or "none defined"
    if not _DIGITS.match(value):
        close = near_alias(value, aliases)
        if close is not None:
            raise StreamIdError(
                f"unknown stream alias {value!r}; did you mean '{close}'? (aliases: {known})"
            )
    if set(value) == {"."} or is_raw_id(value):
        return canonical_id(value)  # refuses dots alone, spaces, control characters
    if _ALIAS_SHAPED.match(value):
        raise StreamIdError(
            f"unknown stream alias {value!r} (aliases: {known}); add it under 'streams:' in "
            "commbox.yaml or use a raw stream id (a number such as 17566, or the encrypted id "
            f"such as {EXAMPLE})"
        )
    raise StreamIdError(
        f"{value!r} is neither a stream alias (aliases: {known}) nor a CommBox stream id "
        f"(a number such as 17566, or the encrypted id such as {EXAMPLE}); "
        "an id of other characters can be named under 'streams:' in commbox.yaml"
    )


def alias_ids(
    streams: Mapping[str, object], positions: Positions, file: str
) -> tuple[dict[str, str], list[Problem]]:
    """The `streams:` aliases of commbox.yaml with their ids canonical, and what is wrong."""
    ids: dict[str, str] = {}
    problems: list[Problem] = []
    for name, value in streams.items():
        path = ("streams", name)
        where = positions.locate(path) or Location(file)
        written = positions.texts.get(path)
        if written is not None:  # YAML read a number other than the one written (0017566)
            problems.append(
                Problem(where, f"{written} is read by YAML as {value!r}; put it in quotes",
                        f"streams.{name}")
            )  # fmt: skip
            continue
        try:
            ids[str(name)] = canonical_id(value)
        except StreamIdError as exc:
            problems.append(Problem(where, str(exc), f"streams.{name}"))
    return ids, problems
