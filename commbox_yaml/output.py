"""Writing to the terminal: colours, redaction of secrets, GitHub annotations."""

from __future__ import annotations

import html
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from commbox_yaml.errors import Problem
from commbox_yaml.phones import normalize_phone, phone_problem

REDACTED = "(sensitive)"
# Shorter secrets are masked only as whole words (and apply warns about them).
MIN_SECRET_LENGTH = 4
_ELLIPSIS = re.compile(r"\s?(?:\.\.\.|…)")
# What must never reach the output as it is: control characters (a line break would let text
# from a server, a message or a variable start a line, and so a CI workflow command such as
# `::warning::`), and `##[`, the runner's older command prefix, which it reads anywhere in a line.
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]|##\[")
# The same in JSON text, which already escapes what is below 0x20.
_UNSAFE_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029]|##\[")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "##[": "##\\["}
_SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours `Console.style` writes
_COLORS = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}


def one_line(text: str) -> str:
    """`text` as one line: control characters escaped as Python writes them (`\\n`, `\\x1b`,
    `\\u2028`), and `##[` broken (`##\\[`)."""
    return _UNSAFE_TEXT.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    text = found.group()
    named = _NAMED_ESCAPES.get(text)
    if named is not None:
        return named
    code = ord(text)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_json(text: str) -> str:
    """JSON text that reads back the same, with nothing a CI log would act on: the characters
    JSON leaves raw that are controls or line separators, and `##[`, written as \\u escapes."""
    return _UNSAFE_JSON.sub(_json_escaped, text)


def _json_escaped(found: re.Match[str]) -> str:
    text = found.group()
    return "#\\u0023[" if text == "##[" else f"\\u{ord(text):04x}"


def no_command(line: str) -> str:
    """A line that cannot start a workflow command: a leading `::` (after spaces, which the
    runner skips) gets a backslash before it. The tool writes its own annotations directly."""
    stripped = line.lstrip()
    if not stripped.startswith("::"):
        return line
    return f"{line[: len(line) - len(stripped)]}\\{stripped}"


def human_size(n: float) -> str:
    """A byte count for people: 512 B, 182 KiB, 3.4 MiB."""
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1048576:.1f} MiB"


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
        _escape(secret),
        _escape(json_text),
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


class Console:
    """stdout/stderr for one command run; every line goes through the redactor."""

    def __init__(
        self,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        color: bool | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.redactor = redactor or Redactor()
        if color is None:
            color = is_terminal(self.stdout) and "NO_COLOR" not in os.environ
        self.color = color
        self.github = os.environ.get("GITHUB_ACTIONS") == "true"

    def style(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_COLORS[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def out(self, text: str = "") -> None:
        """One line: whatever `text` holds (a server's description, a subject, a variable) is
        escaped onto it, so that it cannot start a line of its own."""
        self.stdout.write(self.line(text) + "\n")

    def err(self, text: str) -> None:
        """One line on stderr, as `out`."""
        self.stderr.write(self.line(text) + "\n")
        self.stderr.flush()

    def out_lines(self, text: str) -> None:
        """Text the tool laid out in lines (a document, indented JSON): each line as `out`."""
        for line in text.split("\n"):
            self.out(line)

    def err_lines(self, text: str) -> None:
        for line in text.split("\n"):
            self.err(line)

    def line(self, text: str) -> str:
        """`text` as it may be printed: redacted, then on one line (the colours `style` wrote
        kept on a terminal), never starting a workflow command."""
        text = self.redactor.text(text)
        if self.color and "\x1b" in text:
            plain = [one_line(part) for part in _SGR.split(text)]
            colours = [*_SGR.findall(text), ""]
            text = "".join(part + colour for part, colour in zip(plain, colours, strict=True))
        else:
            text = one_line(text)
        return no_command(text)

    def json(self, value: Any) -> None:
        text = json.dumps(self.redactor.data(value), indent=2, ensure_ascii=False)
        self.stdout.write(safe_json(text))
        self.stdout.write("\n")

    def json_with_list(
        self,
        head: dict[str, Any],
        key: str,
        items: Iterable[Any],
        tail: dict[str, Any] | None = None,
    ) -> None:
        """`{**head, key: [*items], **tail}` as JSON, an item per line (see write_json_list);
        each part redacted as `json` redacts the whole."""
        redact = self.redactor.data
        write_json_list(
            self._write_json,
            (redact(item) for item in items),
            redact(head),
            self.redactor.text(key),
            redact(tail) if tail else None,
        )

    def json_list(self, items: Iterable[Any]) -> None:
        """`[*items]` as JSON, an item per line, redacted."""
        write_json_list(self._write_json, (self.redactor.data(item) for item in items))

    def _write_json(self, text: str) -> None:
        self.stdout.write(safe_json(text))

    def problems(self, problems: list[Problem], command: str) -> None:
        """Each problem as one line (identical ones from many items folded), then a summary."""
        for problem, count in fold_problems(problems):
            line = str(problem)
            if count > 1:
                line += f" (and {count - 1} more item{'s' if count > 2 else ''})"
            self.err(f"{self.style('error', 'red', 'bold')}: {line}")
            if self.github:
                self.stdout.write(annotation(problem, self.redactor) + "\n")
        files = {p.location.file for p in problems if p.location is not None}
        noun = "error" if len(problems) == 1 else "errors"
        where = f" in {len(files)} file{'s' if len(files) != 1 else ''}" if files else ""
        self.err(f"{command}: {len(problems)} {noun}{where}")


def write_json_list(
    write: Callable[[str], Any],
    items: Iterable[Any],
    head: dict[str, Any] | None = None,
    key: str = "",
    tail: dict[str, Any] | None = None,
) -> None:
    """`[*items]`, or `{**head, key: [*items], **tail}` when a head is given, as JSON written
    an item per line.

    A document with one entry per message (a plan, a plan file, apply's results) is written
    an entry at a time: a fan-out of 100,000 is never held whole, as values or as text, and
    each line goes through the C encoder (indent=2 takes the pure-Python one).
    """
    if head is not None:
        opening = json.dumps(head, ensure_ascii=False)[:-1] + (", " if head else "")
        write(opening + json.dumps(key, ensure_ascii=False) + ": ")
    write("[")
    for number, item in enumerate(items):
        write("\n" if number == 0 else ",\n")
        write(json.dumps(item, ensure_ascii=False))
    write("\n]")
    if head is None:
        write("\n")
    elif tail:
        write(", " + json.dumps(tail, ensure_ascii=False)[1:] + "\n")
    else:
        write("}\n")


def fold_problems(problems: list[Problem]) -> list[tuple[Problem, int]]:
    """Problems with the same place and text (one per for_each item) counted once."""
    folded: dict[tuple[Any, ...], list[Any]] = {}
    for problem in problems:
        key = (problem.location, problem.path, problem.message)
        if key in folded:
            folded[key][1] += 1
        else:
            folded[key] = [problem, 1]
    return [(p, n) for p, n in folded.values()]


def _escape(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def annotation_text(text: str) -> str:
    """A workflow command's message, escaped as the runner reads it back (one line)."""
    return _escape(text)


def annotation(problem: Problem, redactor: Redactor | None = None) -> str:
    """A GitHub Actions workflow command that marks the problem on the file.

    Secrets are redacted before escaping: `%25` inside an escaped secret would hide it.
    """
    text = ": ".join(part for part in (problem.path, problem.message) if part)
    if problem.item_key is not None:
        text = f"[{problem.item_key}] {text}"
    if redactor is not None:
        text = redactor.text(text)
    loc = problem.location
    if loc is None:
        return f"::error::{_escape(text)}"
    file = loc.file if redactor is None else redactor.text(loc.file)
    props = f"file={_escape(file, True)}"
    if loc.line:
        props += f",line={loc.line},col={loc.col}"
    return f"::error {props}::{_escape(text)}"


def is_terminal(stream: TextIO) -> bool:
    """Whether a stream is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
