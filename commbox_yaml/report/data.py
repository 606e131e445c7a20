"""The JSON shapes of messages, plans and apply results (format_version "1")."""

from __future__ import annotations

from typing import Any

from commbox_yaml.compile import Request
from commbox_yaml.conversation import child_path
from commbox_yaml.output import Console
from commbox_yaml.plan import PLAN_FORMAT, Against, Plan, PlannedMessage
from commbox_yaml.report.against import against_object, removed
from commbox_yaml.report.describe import sms_of


def message_object(
    request: Request, action: str = "send", changed_fields: tuple[str, ...] = ()
) -> dict[str, Any]:
    out = {
        "address": request.address,
        "key": request.key,
        "action": action,
        "channel": request.channel,
        "stream": request.stream,
        "fingerprint": request.fingerprint,
        "changed_fields": list(changed_fields),
        "request": request_object(request),
    }
    size = sms_of(request)
    if size is not None:
        out["sms"] = size.describe()
    return out


def request_object(request: Request) -> dict[str, Any]:
    """The request as sent, with `(sensitive)` for what a secret made: `body` is the data
    object either way; `parts` are the multipart form's fields in order (the `data` field's
    JSON text, then one `file` part per upload)."""
    return {
        "method": request.method,
        "path": request.path,
        "content_type": request.content_type,
        "body": request.shown_body,
        "parts": _parts(request),
        "files": [attachment.describe() for attachment in request.files],
    }


def _parts(request: Request) -> list[dict[str, Any]]:
    if not request.multipart:
        return []
    parts: list[dict[str, Any]] = [{"name": "data", "value": request.shown_data_field}]
    for attachment in request.files:
        parts.append(
            {
                "name": "file",
                "filename": attachment.name,
                "content_type": attachment.mime,
                "bytes": attachment.size,
            }
        )
    return parts


def planned_object(message: PlannedMessage, against: Against | None = None) -> dict[str, Any]:
    if message.request is not None:
        out = message_object(message.request, message.action.value, message.changed_fields)
    else:
        out = {
            "address": message.address,
            "key": message.key,
            "action": message.action.value,
            "channel": message.message.definition.channel,
            "stream": None,
            "fingerprint": None,
            "changed_fields": [],
            "request": None,
        }
    parent = message.parent
    if parent is not None:
        out["parent"] = {
            "address": parent.address,
            "key": parent.key,
            "object_id": parent.object_id,
        }
        if parent.object_id is not None and message.request is not None:
            out["request"]["path"] = child_path(message.request, parent.object_id)
    state = message.state
    out["replace"] = message.replace
    out["ledger"] = {
        "status": state.status.value,
        "object_id": state.object_id,
        "sent_at": state.sent_at,
        "last_at": state.last_at,
        "last_status": state.last_status,
    }
    if against is not None:
        out["against"] = against_object(message, against)
    return out


def plan_object(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": PLAN_FORMAT,
        "summary": plan.summary(),
        "messages": [planned_object(m) for m in plan.messages],
    }


def show_plan(console: Console, plan: Plan, detail: bool = False) -> None:
    """plan_object(plan) as JSON, written one message at a time (one per line): a fan-out
    to 100,000 never holds the whole document, as a dict or as text. JSON is for tools: it
    always has every message, `detail` or not."""
    head: dict[str, Any] = {"format_version": PLAN_FORMAT, "summary": plan.summary()}
    if plan.destination:
        head["digest"] = plan.digest
    against = plan.against
    tail: dict[str, Any] = {}
    if against is not None:
        keys = {m.key for m in plan.messages}
        tail["against"] = {
            "ref": against.ref,
            "commit": against.commit,
            "existed": against.existed,
            "removed": removed(against, keys),
        }
    console.json_with_list(
        head, "messages", (planned_object(m, against) for m in plan.messages), tail
    )
