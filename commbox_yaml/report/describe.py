"""The few request fields a reviewer needs, shared by the text and Markdown reports."""

from __future__ import annotations

import json
from typing import Any

from commbox_yaml.channels import whatsapp_v2
from commbox_yaml.compile import Request
from commbox_yaml.files import human_size
from commbox_yaml.plan import Action, Plan, PlannedMessage
from commbox_yaml.redact import Redactor
from commbox_yaml.segments import SmsSize, segments_text, sms_size


def first_line(text: str, limit: int = 40) -> str:
    """The text's first line, cut at a word boundary near `limit`, with ' ...' when cut."""
    stripped = text.strip()
    line = stripped.splitlines()[0] if stripped else ""
    if len(line) <= limit and line == stripped:
        return line
    if len(line) > limit:
        cut = line[: limit + 1].rsplit(" ", 1)[0]
        line = cut if len(cut) >= limit // 2 else line[:limit]
    return line.rstrip(" ,;:") + " ..."


def _recipient(value: Any) -> str:
    if isinstance(value, dict):
        address = str(value.get("address", ""))
        return f"{address} ({value['name']})" if value.get("name") else address
    return str(value)


def fields(request: Request, redactor: Redactor) -> list[tuple[str, str]]:
    """(label, text) rows describing a request for review.

    Values are redacted here, before they are cut to a preview: a cut secret would no longer
    match, and its first characters would show.
    """
    data = redactor.data(request.data)
    content = data.get("Content") if isinstance(data.get("Content"), dict) else {}
    assert isinstance(content, dict)
    rows: list[tuple[str, str]] = [("key", redactor.text(request.key))]
    if request.v2:  # a WhatsApp template through the v2 endpoint
        shown = dict(whatsapp_v2.shown_rows(data))
        shown["Template"] += f" ({shown.pop('Language')})"
        shown["Params"] = shown.pop("Parameters")
        return rows + [(label.lower(), text) for label, text in shown.items()]
    if "subject" in content:
        rows.append(("subject", f'"{content["subject"]}"'))
    for label in ("to", "cc", "bcc"):
        if content.get(label):
            rows.append((label, ", ".join(_recipient(v) for v in content[label])))
    if request.channel != "email" or not content.get("to"):
        rows.append(("user", str(data.get("UserStreamProviderId", ""))))
    if "whatsapp_hsm_name" in content:
        language = content.get("whatsapp_language_code")
        rows.append(
            ("template", content["whatsapp_hsm_name"] + (f" ({language})" if language else ""))
        )
    message = str(data.get("Message", ""))
    rows.append(("message", f'"{first_line(message)}" ({len(message)} chars)'))
    size = sms_of(request)
    if size is not None:
        rows.append(("segments", segments_text(size)))
    files = [f"{redactor.text(f.name)} ({human_size(f.size)})" for f in request.files]
    files += [
        f"{a.get('name')} (link)" for a in content.get("attachments", []) if isinstance(a, dict)
    ]
    if files:
        rows.append(("files", ", ".join(files)))
    return rows


def changed_rows(message: PlannedMessage, redactor: Redactor) -> list[tuple[str, str]]:
    """For a held `~` message: the key, the earlier send, and each changed field's new value
    (redacted before it is cut to one line)."""
    request = message.request
    assert request is not None
    rows = [
        ("key", message.key),
        ("sent", sent_text(message)),
        ("changed", ", ".join(message.changed_fields) or "(attachments)"),
    ]
    for name in message.changed_fields:
        rows.append((f"new {name}", new_value(request, name, redactor)))
    return rows


def new_value(request: Request, name: str, redactor: Redactor) -> str:
    """A changed field's value now, as one short line ('(removed)' when it is gone)."""
    value: Any
    if name == "stream":
        value = request.stream
    elif name == "parent":
        value = request.parent_address if request.parent_address is not None else _GONE
    elif name == "files":
        value = ", ".join(f"{f.name} ({human_size(f.size)})" for f in request.files)
    elif name.startswith("Content."):
        content = request.data.get("Content")
        value = content.get(name[8:], _GONE) if isinstance(content, dict) else _GONE
    else:
        value = request.data.get(name, _GONE)
    if value is _GONE:
        return "(removed)"
    value = redactor.data(value)
    if isinstance(value, str):
        return f'"{first_line(value, 60)}"'
    return first_line(json.dumps(value, ensure_ascii=False), 60)


_GONE = object()


def sent_text(message: PlannedMessage) -> str:
    state = message.state
    when = (state.sent_at or "")[:16].replace("T", " ")
    return f"{when} UTC as object {state.object_id}" if when else f"as object {state.object_id}"


def sms_of(request: Request) -> SmsSize | None:
    """The encoding and segments of an SMS message's text (None for other channels)."""
    if request.channel != "sms":
        return None
    return sms_size(str(request.data.get("Message", "")))


COMPACT_AFTER = 50  # a plan of more messages lists its definitions, not each message


def compact(plan: Plan, detail: bool) -> bool:
    """Whether the plan is shown compact: past COMPACT_AFTER messages, unless --detail."""
    return not detail and len(plan.messages) > COMPACT_AFTER


_COUNT_WORDS = {
    Action.SEND: "to send",
    Action.UNCHANGED: "unchanged",
    Action.CHANGED: "changed (held)",
    Action.UNKNOWN: "unknown (held)",
    Action.WAIT: "waiting for their parent",
    Action.SKIPPED: "skipped",
}


def counts_text(counts: dict[Action, int]) -> list[tuple[Action, str]]:
    """`counts` in words, in the summary line's order: [(SEND, "3 to send"), ...]."""
    return [(action, f"{counts[action]} {_COUNT_WORDS[action]}") for action in _COUNT_WORDS
            if counts.get(action)]  # fmt: skip


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    line = (
        f"Plan: {counts['send']} to send, {counts['unchanged']} unchanged, "
        f"{counts['changed']} changed (held), {counts['unknown']} unknown"
    )
    if counts["wait"]:
        line += f", {counts['wait']} waiting for their parent"
    if counts["skipped"]:
        line += f", {counts['skipped']} skipped"
    sms = [*plan.sends.of_channel("sms"), *plan.following.of_channel("sms")]  # only these are read
    sizes = (sms_of(m.request) for m in sms if m.request is not None)
    texts = [size.segments for size in sizes if size is not None]
    if texts:  # SMS is billed per segment
        total = sum(texts)
        line += f"; {total} SMS segment{'s' if total != 1 else ''} to send"
    return line + "."


def wait_text(message: PlannedMessage) -> str:
    """Why a `>` reply waits, and when it goes."""
    parent = message.parent
    assert parent is not None
    if parent.in_this_apply:
        return f"next: goes right after its parent {parent.address} in this apply"
    return f"held: waiting for its parent {parent.address} (key {parent.key}) to be sent"


def parent_text(message: PlannedMessage) -> str | None:
    """`open[7] (object 294159)` for a reply; None for any other message."""
    parent = message.parent
    if parent is None:
        return None
    if parent.object_id is not None:
        return f"{parent.address} (object {parent.object_id})"
    return f"{parent.address} (not sent yet)"


def stream_label(message: PlannedMessage) -> str:
    stream = message.message.values.get("stream")
    channel = message.message.definition.channel
    return f"{channel} -> {stream}" if stream is not None else channel


ACTIONABLE = (Action.SEND, Action.CHANGED, Action.UNKNOWN, Action.WAIT)
