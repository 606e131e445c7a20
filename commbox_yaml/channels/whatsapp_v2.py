"""WhatsApp templates through CommBox's v2 endpoint, Send_Templated_Message_V2 (SPEC 11).

A whatsapp definition with `api: v2` is sent as one item of `{"data": [...]}` to
`/v2/whatsapp/sendtemplatedmessage/{ENCRYPTED_STREAM_ID}`: `schedule` (unix seconds, when set),
`template_data` (`to`, one phone number, and the template with its components) and, when the
definition writes any Create Object field, `object_data`. The components are written in the
order CommBox's own examples use: header, buttons, body.

`object_data` holds the Create Object fields the definition writes (CommBox's examples send
`createChildObject`, `SubStreamId`, `StatusId`, `ManagerId`, `Content` and `User`, and no
`Message`). A definition with a `message` opens a conversation with it: `object_data` then
holds every Create Object field, the channel's presets too, with `UserStreamProviderId`
defaulting to the recipient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from commbox_yaml.channels.base import user_object, wire_phone

if TYPE_CHECKING:
    from commbox_yaml.definitions import Definition

Problem = Callable[..., None]  # problem(path, text, key=False), as in compile.py

PATH = "/v2/whatsapp/sendtemplatedmessage/{}"
SCHEDULED = 9  # StatusId "scheduled": a conversation's state, not a send time
MEDIA = ("image", "video", "document")
HEADER_KINDS = ("text", *MEDIA)
BUTTON_KINDS = ("url", "quick_reply")
# Definition key -> object_data field, in the order of CommBox's v2 examples where they have it.
OBJECT_FIELDS: tuple[tuple[str, str], ...] = (
    ("create_child_object", "createChildObject"),
    ("type", "Type"),
    ("sub_stream_id", "SubStreamId"),
    ("status_id", "StatusId"),
    ("stream_provider_type", "StreamProviderType"),
    ("stream_provider_id", "StreamProviderId"),
    ("user_stream_provider_id", "UserStreamProviderId"),
    ("user_stream_provider_type", "UserStreamProviderType"),
    ("user_identity", "UserIdentity"),
    ("manager_id", "ManagerId"),
    ("content", "Content"),
    ("message", "Message"),
    ("user", "User"),
)
_FOR_EACH = (
    "for several recipients use for_each (one request and one ledger key each), e.g. "
    "for_each: phones, to: '{{ item }}'"
)


def is_v2(values: Mapping[str, Any]) -> bool:
    return values.get("channel") == "whatsapp" and values.get("api") == "v2"


def schedule_time(text: Any) -> datetime | None:
    """The schedule as an aware time; None when it is not ISO 8601 with a zone."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def schedule_text(seconds: int) -> str:
    """Unix seconds as an ISO 8601 UTC time, for outputs."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def past_schedule(data: Mapping[str, Any], now: float) -> str | None:
    """Why a v2 item may not be sent now (its schedule is past), or None."""
    seconds = data.get("schedule")
    if not isinstance(seconds, int) or seconds > now:
        return None
    return (
        f"the schedule {schedule_text(seconds)} is already past, so nothing was sent (WhatsApp "
        "would deliver it at once); set a later schedule, or remove it to send now"
    )


def check(values: Mapping[str, Any], stream: str, problem: Problem) -> None:
    """The rules that depend on `api`, each a problem at the key it is about."""
    template = values.get("template") or {}
    if not is_v2(values):
        _check_v1(values, template, problem)
        return
    to = values.get("to")
    if isinstance(to, list) and len(to) > 1:
        problem(("to",), f"api: v2 sends a template to one recipient per request; {_FOR_EACH}")
    if "language" not in template:
        problem(
            ("template",),
            "missing required key 'language' (api: v2 sends template.language.code); "
            "e.g. language: en",
        )
    if stream.isdigit():
        problem(
            ("stream",),
            f"api: v2 needs the stream's encrypted id (CommBox's path says "
            f"ENCRYPTED_STREAM_ID, e.g. hNyRN_fLUy7rrOrN9jLpipA==), not its number {stream}; "
            "copy it from the channel's settings in CommBox",
        )
    header = template.get("header")
    if isinstance(header, dict):
        kinds = [k for k in HEADER_KINDS if k in header]
        if len(kinds) != 1:
            problem(
                ("template", "header"),
                "a header is one of {text: ...}, {image: URL}, {video: URL} or "
                f"{{document: URL, filename: NAME}}; this one has {len(kinds)}"
                + (f" ({', '.join(kinds)})" if kinds else ""),
            )
        if "filename" in header and "document" not in header:
            problem(("template", "header", "filename"), "filename goes with document only")
    for index, button in enumerate(template.get("buttons") or []):
        if isinstance(button, dict) and len(button) > 1:
            problem(
                ("template", "buttons", index),
                "a button is {url: SUFFIX}, {quick_reply: PAYLOAD} or {}, one at a time",
            )
    if "schedule" in values and schedule_time(values["schedule"]) is None:
        problem(("schedule",), _schedule_problem(values["schedule"]))
    written = {wire.lower() for name, wire in OBJECT_FIELDS if name in values}
    for key in values.get("raw") or {}:
        if str(key).lower() in written:
            problem(
                ("raw", key),
                f"object_data key '{key}' is already set from the definition; "
                "use the definition's own key instead of raw",
                key=True,
            )


def _check_v1(values: Mapping[str, Any], template: Mapping[str, Any], problem: Problem) -> None:
    for path in (("schedule",), ("template", "header"), ("template", "buttons")):
        holder = template if len(path) == 2 else values
        if path[-1] in holder:
            problem(
                path,
                "needs `api: v2` (CommBox's v2 WhatsApp endpoint); add api: v2 to the message",
                key=True,
            )
    if "user_stream_provider_id" not in values:
        problem((), "missing required key 'user_stream_provider_id' (optional with api: v2)")
    if "message" not in values:
        problem((), "needs a 'message' (or a 'message_file'); both are optional with api: v2")
    to = values.get("to")
    if isinstance(to, str):
        problem(("to",), f"write a list of phone numbers: to: ['{to}'] (one number is api: v2's)")


def _schedule_problem(value: Any) -> str:
    text = str(value).strip()
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return (
            f"{value!r} is not an ISO 8601 time; write e.g. 2026-12-24T09:00:00+02:00 "
            "(or ...Z for UTC)"
        )
    return (
        f"{value!r} has no time zone, so the moment it names is not known; add one: "
        f"{text}+02:00, or {text}Z for UTC"
    )


def item(values: Mapping[str, Any], presets: Mapping[str, int]) -> dict[str, Any]:
    """The one item of `data` (the values are checked: see check)."""
    out: dict[str, Any] = {}
    moment = schedule_time(values.get("schedule"))
    if moment is not None:
        out["schedule"] = int(moment.timestamp())
    to = values["to"]
    phone = wire_phone(to if isinstance(to, str) else to[0])
    template = values["template"]
    out["template_data"] = {
        "to": phone,
        "template": {
            "name": template["name"],
            "language": {"code": template.get("language")},
            "components": components(template),
        },
    }
    objects = object_data(values, presets, phone)
    if objects is not None:
        out["object_data"] = objects
    return out


def components(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Header, buttons, then body: the order of CommBox's examples."""
    out: list[dict[str, Any]] = []
    header = template.get("header")
    if isinstance(header, dict):
        for kind in HEADER_KINDS:
            if kind not in header:
                continue
            if kind == "text":
                parameter: dict[str, Any] = {"type": "text", "text": str(header["text"])}
            else:
                media: dict[str, Any] = {"link": header[kind]}
                if "filename" in header:
                    media["filename"] = header["filename"]
                parameter = {"type": kind, kind: media}
            out.append({"type": "header", "parameters": [parameter]})
            break
    for index, button in enumerate(template.get("buttons") or []):
        if "url" in button:
            parameters = [{"type": "text", "text": str(button["url"])}]
            out.append(_button("url", index, parameters))
        elif "quick_reply" in button:
            parameters = [{"type": "payload", "payload": str(button["quick_reply"])}]
            out.append(_button("quick_reply", index, parameters))
    params = template.get("params") or []
    if params:
        text = [{"type": "text", "text": str(p)} for p in params]
        out.append({"type": "body", "parameters": text})
    return out


def _button(sub_type: str, index: int, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "button", "sub_type": sub_type, "index": index, "parameters": parameters}


def object_data(
    values: Mapping[str, Any], presets: Mapping[str, int], recipient: str
) -> dict[str, Any] | None:
    """The Create Object fields to send with the template, or None when none is written."""
    written = [name for name, _ in OBJECT_FIELDS if name in values]
    if not written and not values.get("raw"):
        return None
    whole = "message" in values  # a conversation: every field, presets and defaults too
    out: dict[str, Any] = {}
    for name, wire in OBJECT_FIELDS:
        if name in values:
            value = values[name]
            if name == "user":
                value = user_object(value)
            elif name == "user_stream_provider_id":
                value = wire_phone(value)
            out[wire] = value
        elif whole and name in presets:
            out[wire] = presets[name]
        elif whole and name == "user_stream_provider_id":
            out[wire] = recipient
    for key, value in (values.get("raw") or {}).items():
        out[key] = value
    return out


def shown_rows(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of a v2 item as its recipient gets it: to, template, language, header,
    parameters, buttons, schedule (and the conversation's message, when one is opened)."""
    sent = item.get("template_data") or {}
    template = sent.get("template") or {}
    rows = [
        ("To", str(sent.get("to", ""))),
        ("Template", str(template.get("name", ""))),
        ("Language", str((template.get("language") or {}).get("code"))),
    ]
    params: list[str] = []
    buttons: list[str] = []
    for component in template.get("components") or []:
        values = component.get("parameters") or [{}]
        if component.get("type") == "header":
            kind = str(values[0].get("type"))
            media = values[0].get(kind)
            if isinstance(media, dict):
                named = f" ({media['filename']})" if media.get("filename") else ""
                rows.append(("Header", f"{kind} {media.get('link', media.get('id'))}{named}"))
            else:
                rows.append(("Header", str(values[0].get("text", ""))))
        elif component.get("type") == "body":
            params = [str(p.get("text", "")) for p in values]
        elif component.get("type") == "button":
            value = values[0].get("text", values[0].get("payload"))
            buttons.append(f"[{component.get('index')}] {component.get('sub_type')}: {value}")
    listed = ", ".join(f"{{{{{i}}}}} = {p}" for i, p in enumerate(params, 1))
    rows.append(("Parameters", listed or "(none)"))
    if buttons:
        rows.append(("Buttons", ", ".join(buttons)))
    if isinstance(item.get("schedule"), int):
        rows.append(("Schedule", f"{schedule_text(item['schedule'])} ({item['schedule']})"))
    objects = item.get("object_data")
    if isinstance(objects, dict):
        rows.append(("Conversation", "opened with object_data" if objects else "(none)"))
    return rows


def warnings(definition: Definition, values: Mapping[str, Any], now: float) -> list[str]:
    """What validate warns of (errors with --strict): a `status_id: scheduled` that schedules
    nothing, and a v2 schedule already past (apply will refuse it; old messages stay valid)."""
    out: list[str] = []
    if values.get("status_id") == SCHEDULED:
        out.append(
            f"{definition.where('status_id')}: status_id: scheduled (9) does not schedule a "
            "send (CommBox's Create Object has no send time: the message goes out when apply "
            "sends it); to send a WhatsApp template later, use api: v2 with schedule: "
            "(an ISO 8601 time with a zone)"
        )
    moment = schedule_time(values.get("schedule")) if is_v2(values) else None
    if moment is not None and moment.timestamp() <= now:
        out.append(
            f"{definition.where('schedule')}: schedule {values['schedule']} is already past: "
            "apply will refuse to send this message (failed, nothing sent); set a later "
            "schedule, or remove it to send at once"
        )
    return out


def preview(item: Mapping[str, Any]) -> dict[str, Any]:
    """What the preview page shows of a v2 item: header, text, buttons, schedule, recipient."""
    rows = dict(shown_rows(item))
    objects = item.get("object_data") or {}
    text = str(objects.get("Message", "")) if isinstance(objects, dict) else ""
    summary = f"Template {rows['Template']} ({rows['Language']}): {rows['Parameters']}"
    return {
        "header": rows.get("Header"),
        "text": text or summary,
        "buttons": rows["Buttons"].split(", ") if "Buttons" in rows else [],
        "schedule": rows.get("Schedule", ""),
        "recipients": rows["To"],
    }
