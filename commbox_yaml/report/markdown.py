"""The plan as a Markdown document for a pull-request comment (kept under 60,000 characters)."""

from __future__ import annotations

import functools

from commbox_yaml.output import Console, one_line
from commbox_yaml.plan import Action, Plan, PlannedMessage
from commbox_yaml.redact import Redactor
from commbox_yaml.report.against import markdown_section
from commbox_yaml.report.describe import (
    ACTIONABLE,
    changed_rows,
    compact,
    fields,
    parent_text,
    stream_label,
    summary_line,
    wait_text,
)

LIMIT = 60_000
_ICONS = {Action.SEND: "+", Action.CHANGED: "~", Action.UNKNOWN: "?", Action.UNCHANGED: "=",
          Action.WAIT: ">", Action.SKIPPED: " "}  # fmt: skip


def _cell(text: str, redactor: Redactor) -> str:
    """Table-cell text on one line, redacted before it is escaped (an escaped secret would not
    match); control characters are written as escapes (`\\n`), as in every output."""
    text = one_line(redactor.text(text))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


def _section(message: PlannedMessage, redactor: Redactor) -> str:
    cell = functools.partial(_cell, redactor=redactor)
    title = f"{cell(message.address)} ({cell(stream_label(message))})"
    lines = [f"#### `{_ICONS[message.action]}` {title}", ""]
    rows: list[tuple[str, str]] = []
    if message.action is Action.CHANGED:
        rows = changed_rows(message, redactor)
        note = f"Held: not sent again unless `--replace {cell(message.key)}`."
    elif message.action is Action.UNKNOWN:
        rows = [("key", message.key), ("last try", message.state.description or "no outcome")]
        note = f"Held: outcome unknown; check CommBox, then `--replace {cell(message.key)}`."
    else:
        assert message.request is not None
        rows = fields(message.request, redactor)
        note = "Replacing the earlier send (`--replace`)." if message.replace else ""
    if message.action is Action.WAIT:
        note = wait_text(message).capitalize() + "."
    parent = parent_text(message)
    if parent is not None:
        rows.insert(1, ("reply to", parent))
    lines += ["| field | value |", "| --- | --- |"]
    lines += [f"| {label} | {cell(text)} |" for label, text in rows]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n\n"


def render_markdown(plan: Plan, redactor: Redactor, detail: bool = False) -> str:
    """The plan as Markdown under LIMIT characters: every message, or past COMPACT_AFTER
    messages without `detail`, a table of the definitions and the messages that need a
    person's look, with every message inside a `<details>`."""
    head = f"### commbox-yaml plan\n\n**{summary_line(plan)}**\n\n"
    if plan.destination:
        head += f"Plan digest: `{plan.digest}`\n\n"
    head += markdown_section(plan, redactor, LIMIT // 2)
    if not compact(plan, detail):
        body, left_out = _every(plan, redactor, LIMIT - len(head))
        return head + body + _left_out(left_out)
    head += _definitions_table(plan, redactor)
    for message in plan.messages.for_a_look():
        section = _section(message, redactor)
        if len(head) + len(section) + _FOOTER_RESERVE > LIMIT:
            break
        head += section
    opening = f"<details><summary>All {len(plan.messages)} messages</summary>\n\n"
    closing = "</details>\n\n"
    body, left_out = _every(plan, redactor, LIMIT - len(head) - len(opening) - len(closing))
    return head + opening + body + closing + _left_out(left_out)


_FOOTER_RESERVE = 400


def _definitions_table(plan: Plan, redactor: Redactor) -> str:
    lines = [
        "| definition | channel | messages | " + " | ".join(_COLUMNS.values()) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in _COLUMNS) + " |",
    ]
    for group in plan.messages.by_definition():
        counts = " | ".join(str(group.counts.get(action, 0)) for action in _COLUMNS)
        name = _cell(group.definition.name, redactor)
        lines.append(f"| {name} | {group.definition.channel} | {group.total} | {counts} |")
    return "\n".join(lines) + "\n\n"


_COLUMNS = {
    Action.SEND: "`+` send",
    Action.UNCHANGED: "`=` unchanged",
    Action.CHANGED: "`~` changed",
    Action.UNKNOWN: "`?` unknown",
    Action.WAIT: "`>` wait",
    Action.SKIPPED: "skipped",
}


def _every(plan: Plan, redactor: Redactor, room: int) -> tuple[str, int]:
    """Every message, in at most `room` characters: the body, and how many were left out."""
    room -= _FOOTER_RESERVE
    body = ""
    # Read only as far as the comment has room: a fan-out is never read back whole.
    actionable = (m for a in ACTIONABLE for m in plan.messages.only(a))
    actionable_count = sum(plan.messages.count(a) for a in ACTIONABLE)
    shown = 0
    for message in actionable:
        section = _section(message, redactor)
        if len(body) + len(section) > room:
            break
        body += section
        shown += 1
    quiet = (m for m in plan.messages if m.action in (Action.UNCHANGED, Action.SKIPPED))
    quiet_count = plan.messages.count(Action.UNCHANGED) + plan.messages.count(Action.SKIPPED)
    quiet_lines = ""
    for message in quiet:
        note = (
            f"sent {message.state.sent_at and message.state.sent_at[:10]} as "
            f"{message.state.object_id}"
            if message.action is Action.UNCHANGED
            else "skipped"
        )
        line = f"- `{_ICONS[message.action]}` {_cell(message.address, redactor)} ({note})\n"
        if len(body) + len(quiet_lines) + len(line) > room:
            break
        quiet_lines += line
        shown += 1
    if quiet_lines:
        body += (
            f"<details><summary>{quiet_count} unchanged or skipped</summary>\n\n"
            f"{quiet_lines}\n</details>\n\n"
        )
    return body, actionable_count + quiet_count - shown


def _left_out(count: int) -> str:
    if not count:
        return ""
    return f"_{count} more messages not shown: this comment is limited to {LIMIT:,} characters._\n"


def show_plan(console: Console, plan: Plan, detail: bool = False) -> None:
    console.out_lines(render_markdown(plan, console.redactor, detail).rstrip("\n"))
