"""SMS: optional multi-recipient `to`, `send_to_client`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commbox_yaml.channels.base import Channel, ContentParts, phones


def content(values: Mapping[str, Any]) -> ContentParts:
    parts = ContentParts()
    phones(values, parts)
    return parts


CHANNEL = Channel(
    name="sms",
    presets={"type": 4, "status_id": 1, "stream_provider_type": 5, "user_stream_provider_type": 5},
    content=content,
    phone_fields=("user_stream_provider_id",),
)
