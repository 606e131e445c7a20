"""Old -> new text of a request's fields, with the changed words marked.

A reviewer approving a release notice wants to read what changed, not two fingerprints: each
field of the request body (`Message`, `Content.subject`, `Content.to[0].address`, ...) is
compared as text, and a changed one is split into words, spaces and punctuation, so that the
marks fall on whole words (`Acme [-1.4-]{+1.5+} is out`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["same", "removed", "added"]
_TOKEN = re.compile(r"\s+|\w+(?:[.'’@:/-]\w+)*|[^\w\s]")  # 1.4, don't, a@b.org: one word


@dataclass(frozen=True)
class Piece:
    """A run of text that is in both versions, only in the old one, or only in the new."""

    kind: Kind
    text: str


@dataclass(frozen=True)
class FieldChange:
    """One field of the request whose text differs; `old` or `new` is None when the field
    is only in one version."""

    path: str
    old: str | None
    new: str | None

    def pieces(self) -> list[Piece]:
        return word_diff(self.old or "", self.new or "")


def word_diff(old: str, new: str) -> list[Piece]:
    """`old` -> `new` as runs of same, removed and added text, split at word boundaries;
    joining the same and removed runs gives `old`, the same and added ones `new`."""
    before, after = _TOKEN.findall(old), _TOKEN.findall(new)
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag == "equal":
            _add(pieces, "same", "".join(before[a1:a2]))
            continue
        _add(pieces, "removed", "".join(before[a1:a2]))
        _add(pieces, "added", "".join(after[b1:b2]))
    return pieces


def _add(pieces: list[Piece], kind: Kind, text: str) -> None:
    if not text:
        return
    if pieces and pieces[-1].kind == kind:
        pieces[-1] = Piece(kind, pieces[-1].text + text)
    else:
        pieces.append(Piece(kind, text))


def marked(pieces: list[Piece]) -> str:
    """Pieces as one line of text, the way `git diff --word-diff` marks them."""
    marks = {"same": "{}", "removed": "[-{}-]", "added": "{{+{}+}}"}
    return "".join(marks[p.kind].format(p.text) for p in pieces)


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """The fields (dotted paths into the request body) whose text differs, in the new
    body's order, then the fields only the old one had."""
    before, after = dict(field_texts(old)), dict(field_texts(new))
    changes = [
        FieldChange(path, before.get(path), text)
        for path, text in after.items()
        if before.get(path) != text
    ]
    changes += [FieldChange(path, text, None) for path, text in before.items() if path not in after]
    return changes


def field_texts(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every leaf of a JSON value with its dotted path (`Content.to[0].address`), as text:
    a string as it is, anything else as its JSON."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from field_texts(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from field_texts(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value
    else:
        yield path, json.dumps(value, ensure_ascii=False)
