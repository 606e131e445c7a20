"""Email: subject, to/cc/bcc recipients, uploaded or linked attachments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commbox_yaml.channels.base import Channel, ContentParts


def _recipient(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"address": value}
    return dict(value)


def recipient_text(value: Any) -> str:
    """A recipient as a mail client shows it: `Dana <cto@acme.example>`, or the address."""
    if isinstance(value, dict):
        address = str(value.get("address", ""))
        return f"{value['name']} <{address}>" if value.get("name") else address
    return str(value)


def content(values: Mapping[str, Any]) -> ContentParts:
    parts = ContentParts()
    if "subject" in values:
        parts.put("subject", values["subject"], "subject")
    for field in ("to", "cc", "bcc"):
        if field in values:
            parts.put(field, [_recipient(r) for r in values[field]], field)
    links = []
    for index, attachment in enumerate(values.get("attachments", [])):
        if isinstance(attachment, str):
            parts.uploads.append((attachment, ("attachments", index)))
        else:
            links.append({"path": attachment["url"], "name": attachment["name"]})
    if links:
        parts.put("attachments", links, "attachments")
    return parts


CHANNEL = Channel(
    name="email",
    presets={"type": 5, "status_id": 1, "stream_provider_type": 4, "user_stream_provider_type": 4},
    content=content,
)
