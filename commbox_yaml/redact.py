"""What every output may show: each secret, in every form output gives it, as `(sensitive)`.

The Redactor is applied to the terminal, the JSON and Markdown reports, errors, plan files and
the ledger's fingerprints alike, so it lives apart from any of them. The display rendering of
templates (taint.py) writes the same placeholder.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from commbox_yaml.phones import normalize_phone, phone_problem

REDACTED = "(sensitive)"
# Shorter secrets are masked only as whole words (and apply warns about them).
MIN_SECRET_LENGTH = 4
_ELLIPSIS = re.compile(r"\s?(?:\.\.\.|…)")


class Redactor:
    """Replaces every occurrence of a secret value, also inside longer text and nested data.

    Each secret is also found in the forms output commonly gives it (upper and lower case,
    URL-encoded, JSON-, HTML- and repr-escaped, GitHub-annotation-escaped). A secret shorter
    than MIN_SECRET_LENGTH is replaced only where it stands as a whole word, so that masking
    it does not mangle unrelated words. The longest form is matched first, so the result
    never depends on the order secrets were learned in.

    `text` is for output; `data` also serves as the placeholder substitution fingerprints and
    field hashes are taken of (compile.py), so nothing in the ledger depends on a secret.
    With `guard_cuts`, a secret's beginning (3+ characters) right before an ellipsis is also
    replaced: text someone cut without redacting it first ("... ACCT-99-SE...").
    """

    def __init__(self, secrets: Iterable[str] = (), guard_cuts: bool = True) -> None:
        self._secrets: set[str] = set()
        self._numbers: set[int | float] = set()
        self._guard_cuts = guard_cuts
        self._starts: set[str] = set()  # beginnings of secrets, for guard_cuts
        self._longest_start = 0
        self._pattern: re.Pattern[str] | None = None
        self._anywhere: re.Pattern[str] | None = None  # for may_occur
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if s and s not in self._secrets}
        if not new:
            return
        self._secrets.update(new)
        self._numbers.update(n for n in map(_number, new) if n is not None)
        self._pattern = _secrets_pattern(self._secrets)
        self._anywhere = _occurrence_pattern(self._secrets, self._numbers)
        if self._guard_cuts:
            self._starts.update(_starts(new))
            self._longest_start = max(map(len, self._starts), default=0)

    @property
    def empty(self) -> bool:
        """Whether there is no secret to redact (`text` and `data` change nothing)."""
        return self._pattern is None

    def found(self, value: str) -> bool:
        """Whether `value` contains a secret (in any of its forms)."""
        return self._pattern is not None and self._pattern.search(value) is not None

    def may_occur(self, json_text: str) -> bool:
        """False when `data` would change nothing in the data `json_text` is the JSON of
        (written with ensure_ascii=False); True may be a false alarm."""
        return self._anywhere is not None and self._anywhere.search(json_text) is not None

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        value = self._pattern.sub(REDACTED, value)
        if self._starts and ("..." in value or "…" in value):
            value = self._cut_starts(value)
        return value

    def _cut_starts(self, value: str) -> str:
        """`value` with a secret's beginning right before an ellipsis replaced."""
        out, done = [], 0
        for ellipsis in _ELLIPSIS.finditer(value):
            end = ellipsis.start()
            for length in range(min(self._longest_start, end - done), 2, -1):
                if value[end - length : end] in self._starts:
                    out += [value[done : end - length], REDACTED]
                    done = end
                    break
        return "".join(out) + value[done:]

    def data(self, value: Any) -> Any:
        """A copy of JSON-like data with every secret redacted (keys and numbers included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value in self._numbers:  # 417 is the sensitive "0417" read as a number
                return REDACTED
            written = str(value)
            masked = self.text(written)
            return value if masked == written else masked
        return value


def secret_forms(secret: str) -> set[str]:
    """The secret as output commonly transforms it; each is redacted like the secret."""
    json_text = json.dumps(secret)[1:-1]
    forms = {
        secret,
        secret.upper(),
        secret.lower(),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json_text,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        _html_safe_json(json_text),
        html.escape(secret),
        html.escape(secret, quote=False),
        repr(secret)[1:-1],
        annotation_escape(secret),
        annotation_escape(json_text),
    }
    if phone_problem(secret) is None:  # a sensitive phone number is sent as its digits
        forms.add(normalize_phone(secret))
    return {form for form in forms if form}


def _html_safe_json(text: str) -> str:
    """JSON text as Jinja's `tojson` writes it, safe inside HTML."""
    for char in "&<>'":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _secrets_pattern(secrets: set[str]) -> re.Pattern[str]:
    whole: set[str] = set()  # forms of short secrets: whole words only
    anywhere: set[str] = set()
    for secret in secrets:
        (whole if len(secret) < MIN_SECRET_LENGTH else anywhere).update(secret_forms(secret))
    whole -= anywhere
    parts = [_trie(anywhere)] if anywhere else []
    if whole:
        parts.append(rf"(?<!\w){_trie(whole)}(?!\w)")
    return re.compile("|".join(parts))


def _occurrence_pattern(secrets: set[str], numbers: set[int | float]) -> re.Pattern[str]:
    """Every form of every secret as JSON writes it, whole words or not, and the numbers."""
    forms = {form for secret in secrets for form in secret_forms(secret)}
    forms |= {json.dumps(form, ensure_ascii=False)[1:-1] for form in forms}
    return re.compile(_trie(forms | {str(n) for n in numbers}))


_Trie = dict[str, "_Trie"]


def _trie(words: Iterable[str]) -> str:
    """A regex matching any of `words`, the longest one where several start at one place.

    Built as a trie (one branch per next character), so that matching costs about the same
    with a thousand secrets as with one; a plain alternation tries every word at every place.
    """
    root: _Trie = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here
    return _branches(root)


def _branches(node: _Trie) -> str:
    branches = []
    for char in sorted(k for k in node if k):
        run, child = re.escape(char), node[char]
        while len(child) == 1 and "" not in child:  # a chain: no choice to make, no group
            ((char, child),) = child.items()
            run += re.escape(char)
        branches.append(run + (_branches(child) if len(child) > ("" in child) else ""))
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if "" in node else body  # greedy: the longer word first


def _starts(secrets: Iterable[str]) -> set[str]:
    """The beginnings (3 characters or more) of each secret long enough to be matched anywhere."""
    return {
        form[:n]
        for secret in secrets
        if len(secret) >= MIN_SECRET_LENGTH
        for form in (secret, secret.upper(), secret.lower())
        for n in range(3, len(form))
    }


def _number(secret: str) -> int | float | None:
    """The number a secret's text stands for ("0417" -> 417), if it is one."""
    text = secret.strip()
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", text):
        number = float(text)
        return number if math.isfinite(number) else None
    return None


def annotation_escape(value: str, property_value: bool = False) -> str:
    """Text escaped as a GitHub workflow command carries it (the runner reads it back)."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value
