"""WhatsApp: an approved template (HSM) sent to phone numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commbox_yaml.channels.base import Channel, ContentParts, phones


def content(values: Mapping[str, Any]) -> ContentParts:
    parts = ContentParts()
    phones(values, parts)
    template = values.get("template") or {}
    if "name" in template:
        parts.put("whatsapp_hsm_name", template["name"], "template.name")
    if "params" in template:
        parts.put("whatsapp_localizable_params", list(template["params"]), "template.params")
    if "language" in template:
        parts.put("whatsapp_language_code", template["language"], "template.language")
    return parts


# CommBox's StreamProviderType enum says WhatsApp is 7 (the Create Object page's example
# shows 5, which a definition gets with `stream_provider_type: 5`).
CHANNEL = Channel(
    name="whatsapp",
    presets={"type": 4, "status_id": 1, "stream_provider_type": 7, "user_stream_provider_type": 5},
    content=content,
)
