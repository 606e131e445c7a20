"""Writing to the terminal: colours, one-line text, JSON, GitHub annotations. What may be
shown at all is redact.py's to say; every line written here goes through its Redactor."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from commbox_yaml.errors import Problem
from commbox_yaml.redact import Redactor, annotation_escape

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
            color = is_terminal(self.stdout) and not no_color_asked()
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


def annotation_text(text: str) -> str:
    """A workflow command's message, escaped as the runner reads it back (one line)."""
    return annotation_escape(text)


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
        return f"::error::{annotation_escape(text)}"
    file = loc.file if redactor is None else redactor.text(loc.file)
    props = f"file={annotation_escape(file, True)}"
    if loc.line:
        props += f",line={loc.line},col={loc.col}"
    return f"::error {props}::{annotation_escape(text)}"


def no_color_asked() -> bool:
    """Whether NO_COLOR asks for no colours: as no-color.org defines it, when it is present
    and not an empty string (`NO_COLOR=` leaves colours on)."""
    return bool(os.environ.get("NO_COLOR"))


def is_terminal(stream: TextIO) -> bool:
    """Whether a stream is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
