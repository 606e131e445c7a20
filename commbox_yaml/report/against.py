"""What changed since a git ref (`plan --against REF`), for each planned message: in JSON, and
as old -> new lines of the changed fields, words marked, for the text and Markdown plans."""

from __future__ import annotations

from typing import Any

from commbox_yaml.plan import PlannedMessage
from commbox_yaml.preview.against import Against
from commbox_yaml.preview.diff import FieldChange, changed_fields, marked
from commbox_yaml.redact import Redactor


def status(message: PlannedMessage, against: Against) -> str:
    """`new` (not in the project as of the ref), `changed` or `same` (its request)."""
    previous = against.requests.get(message.key)
    if previous is None:
        return "new"
    request = message.request
    if request is None or request.fingerprint != previous.fingerprint:
        return "changed"
    return "same"


def changes(message: PlannedMessage, against: Against) -> list[FieldChange]:
    """The request's fields whose text differs from the ref's (the stream as `stream`)."""
    previous = against.requests.get(message.key)
    request = message.request
    if previous is None or request is None:
        return []
    found = changed_fields(previous.body, request.shown_body)
    if previous.stream != request.stream:
        found.insert(0, FieldChange("stream", previous.stream, request.stream))
    return found


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


def change_lines(message: PlannedMessage, against: Against, redactor: Redactor) -> list[str]:
    """One line per changed field: `path: old-and-new text, words marked`."""
    return [
        f"{change.path}: {redactor.text(marked(change.pieces()))}"
        for change in changes(message, against)
    ]
