"""Chat: a CommBox chat conversation, optionally as a child of the open one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commbox_yaml.channels.base import Channel, ContentParts


def content(values: Mapping[str, Any]) -> ContentParts:
    return ContentParts()


CHANNEL = Channel(
    name="chat",
    presets={"type": 4, "status_id": 1, "stream_provider_type": 0, "user_stream_provider_type": 5},
    content=content,
)
