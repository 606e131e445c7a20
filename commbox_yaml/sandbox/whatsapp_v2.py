"""The sandbox's Send_Templated_Message_V2: `POST /v2/whatsapp/sendtemplatedmessage/{ID}`.

As CommBox documents it, no stricter: a JSON body `{"data": [...]}` of 1 to 20 items, each
with `template_data.to` and `template_data.template.name`; `schedule` (unix seconds) and
`object_data` (Create Object's fields, no field required) are optional. The answer is 200
"Operation successful" with an item `{recipient, id, status: 200, object_id}` per recipient
(`object_id` when the item had object_data: the object is stored, so reads find it), or 206
"Provider returned failure" when a recipient is one of `invalid`, whose item is
`{recipient, status: 400, failed}`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import Message
from typing import Any

from commbox_yaml.sandbox.records import Records
from commbox_yaml.sandbox.wire import (
    Answer,
    Fault,
    ObjectIds,
    Parsed,
    check_data,
    error_answer,
    json_bytes,
    response_time,
    utc_now,
)

V2_PATH = re.compile(r"/v2/whatsapp/sendtemplatedmessage/([^/]+)")
MAX_ITEMS = 20
NOT_WHATSAPP = "invalid — Not a valid WhatsApp user"


@dataclass(frozen=True)
class V2Body:
    document: Any = None
    items: tuple[dict[str, Any], ...] = ()
    problems: tuple[str, ...] = ()


def parse_v2(content_type: str | None, body: bytes) -> V2Body:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return V2Body(problems=(f"Content-Type must be application/json, not {media_type}",))
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return V2Body(problems=(f"the body is not valid JSON: {exc}",))
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_ITEMS:
        return V2Body(
            document, problems=(f'the body must be {{"data": [...]}} of 1 to {MAX_ITEMS} items',)
        )
    problems: list[str] = []
    for index, entry in enumerate(data):
        problems.extend(f"data[{index}]: {p}" for p in _item_problems(entry))
    items = tuple(e for e in data if isinstance(e, dict))
    return V2Body(document, items, tuple(problems))


def _item_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["an item must be an object"]
    problems: list[str] = []
    schedule = entry.get("schedule")
    if schedule is not None and (not isinstance(schedule, int) or isinstance(schedule, bool)):
        problems.append("schedule must be unix seconds (an integer)")
    template_data = entry.get("template_data")
    if not isinstance(template_data, dict):
        return [*problems, "template_data is required (an object)"]
    to = template_data.get("to")
    if not isinstance(to, (str, int)) or isinstance(to, bool) or not str(to):
        problems.append("template_data.to is required (the recipient's phone number)")
    template = template_data.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        problems.append("template_data.template.name is required (a string)")
    objects = entry.get("object_data")
    if objects is not None:
        problems.extend(
            f"object_data: {p}" for p in check_data(objects) if not p.startswith("Message")
        )
    return problems


def handle_v2(
    *,
    fault: Fault,
    authorized: bool,
    parsed: V2Body,
    ids: ObjectIds,
    invalid: Collection[str],
) -> tuple[Answer, list[tuple[int, dict[str, Any]]], tuple[str, ...]]:
    """The answer, the objects to store (id, object_data), and the WhatsApp ids given."""
    if fault.drop and not fault.store:
        return Answer(None, description="dropped"), [], ()
    if fault.answers_error and not fault.store:
        return error_answer(int(fault.status or 500), fault=fault), [], ()
    if not authorized:
        return error_answer(401), [], ()
    if parsed.problems and not fault.forces_success:
        return error_answer(400, "; ".join(parsed.problems)), [], ()
    answered: list[dict[str, Any]] = []
    objects: list[tuple[int, dict[str, Any]]] = []
    given: list[str] = []
    for entry in parsed.items:
        template_data = entry.get("template_data") or {}
        recipient = str(template_data.get("to", "")) if isinstance(template_data, dict) else ""
        if digits(recipient) in invalid:
            answered.append({"recipient": recipient, "status": 400, "failed": NOT_WHATSAPP})
            continue
        message_id = "wamid." + uuid.uuid4().hex.upper()
        given.append(message_id)
        result: dict[str, Any] = {"recipient": recipient, "id": message_id, "status": 200}
        if isinstance(entry.get("object_data"), dict):
            object_id = ids.next()
            objects.append((object_id, entry["object_data"]))
            result["object_id"] = object_id
        answered.append(result)
    first = objects[0][0] if objects else None
    if fault.drop:
        return Answer(None, description="dropped after storing", object_id=first), objects, ()
    if fault.answers_error:
        answer = error_answer(int(fault.status or 500), fault=fault)
        return (
            Answer(answer.status, answer.body, answer.headers, answer.description, first),
            (objects),
            (),
        )
    failed = any(r["status"] != 200 for r in answered)
    status = fault.status or (206 if failed else 200)
    text = fault.description or ("Provider returned failure" if failed else "Operation successful")
    payload = {
        "status": str(status),
        "description": text,
        "response_time": response_time(utc_now()),
        "data": answered,
    }
    body = fault.body if fault.body is not None else json_bytes(payload)
    headers = tuple(fault.headers.items())
    return Answer(status, body, headers, text, first), objects, tuple(given)


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def serve_v2(
    *,
    method: str,
    target: str,
    stream_id: str,
    headers: Message,
    body: bytes,
    fault: Fault,
    authorized: Callable[[str | None], bool],
    ids: ObjectIds,
    invalid: Collection[str],
    records: Records,
) -> Answer:
    """One request to the v2 endpoint, answered and recorded."""
    if method != "POST":
        answer = error_answer(501, f"{method} is not supported here; use POST")
        return records.record(method, target, stream_id, headers, Parsed(), answer)
    parsed = parse_v2(headers.get("Content-Type"), body)
    answer, objects, given = handle_v2(
        fault=fault,
        authorized=authorized(headers.get("Authorization")),
        parsed=parsed,
        ids=ids,
        invalid=invalid,
    )
    return records.record(
        method,
        target,
        stream_id,
        headers,
        Parsed(),
        answer,
        body=parsed.document,
        objects=objects,
        whatsapp_ids=given,
    )
