"""What changed since a git ref (`plan --against REF`), for each planned message: in JSON, and
as old -> new lines of the changed fields, words marked, for the text and Markdown plans."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

from commbox_yaml.plan import Against, Plan, PlannedMessage
from commbox_yaml.preview.changes import changes, status
from commbox_yaml.preview.diff import FieldChange, marked
from commbox_yaml.redact import Redactor


def against_object(message: PlannedMessage, against: Against) -> dict[str, Any]:
    """plan --json's `against` of one message."""
    previous = against.requests.get(message.key)
    return {
        "ref": against.ref,
        "status": status(message, against),
        "changed_fields": [change.path for change in changes(message, against)],
        "previous_request": None
        if previous is None
        else {"stream": previous.stream, "body": previous.body},
    }


def removed(against: Against, keys: set[str]) -> list[dict[str, Any]]:
    """The requests the ref had that the plan no longer makes."""
    return [
        {"key": key, "status": "removed", "previous_request": {"stream": p.stream, "body": p.body}}
        for key, p in against.requests.items()
        if key not in keys
    ]


SHOWN_CHANGED = 50  # a text plan lists this many changed messages; JSON has them all


def changed_messages(plan: Plan) -> Iterator[tuple[PlannedMessage, list[FieldChange]]]:
    """Each planned message whose request differs from the ref's, with its changed fields."""
    against = plan.against
    if against is None:
        return
    for message in plan.messages:
        found = changes(message, against)
        if found:
            yield message, found


def text_section(plan: Plan, redactor: Redactor) -> list[str]:
    """The text plan's "Changed since REF" lines: per message, each changed field with its
    old and new words marked ([-old-]{+new+})."""
    against = plan.against
    if against is None:
        return []
    lines = [f"Changed since {against.ref} ({against.commit[:12]}):"]
    shown = 0
    for message, found in changed_messages(plan):
        shown += 1
        if shown > SHOWN_CHANGED:
            continue
        lines.append(f"  ~ {message.address}")
        lines += [
            f"      {change.path}: {redactor.text(marked(change.pieces()))}" for change in found
        ]
    if shown > SHOWN_CHANGED:
        lines.append(f"  ... {shown - SHOWN_CHANGED} more (plan --json --against lists every one)")
    if shown == 0:
        lines.append("  no message's request differs")
    return lines


def markdown_section(plan: Plan, redactor: Redactor, room: int) -> str:
    """The Markdown plan's "Changed since REF": a collapsed `<details>` per changed message,
    its fields' words marked with <del> and <ins>; within `room` characters."""
    against = plan.against
    if against is None:
        return ""
    out = f"#### Changed since `{against.ref}`\n\n"
    left = 0
    for message, found in changed_messages(plan):
        rows = "".join(
            f"<li><code>{html.escape(c.path)}</code>: {_html_pieces(c, redactor)}</li>"
            for c in found
        )
        section = (
            f"<details><summary><code>{html.escape(redactor.text(message.address))}</code>"
            f"</summary>\n\n<ul>{rows}</ul>\n\n</details>\n\n"
        )
        if left or len(out) + len(section) > room:
            left += 1
            continue
        out += section
    if left:
        out += f"_{left} more changed messages not shown here._\n\n"
    return out


def _html_pieces(change: FieldChange, redactor: Redactor) -> str:
    tags = {"same": "{}", "removed": "<del>{}</del>", "added": "<ins>{}</ins>"}
    return "".join(tags[p.kind].format(html.escape(redactor.text(p.text))) for p in change.pieces())
