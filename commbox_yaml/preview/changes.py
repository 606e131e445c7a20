"""What changed since a git ref, per planned message: its status and its changed fields."""

from __future__ import annotations

from commbox_yaml.plan import Against, PlannedMessage
from commbox_yaml.preview.diff import FieldChange, changed_fields


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
