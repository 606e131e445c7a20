"""The CommBox enums that definitions may name instead of giving the integer."""

from __future__ import annotations

from typing import Any

OBJECT_TYPE = {
    "text": 0, "link": 1, "photo": 2, "video": 3, "conversation": 4, "mail": 5, "audio": 6,
    "location": 7, "voice": 8, "review": 9, "form": 10, "system_message": 11, "option": 12,
    "input_data": 13, "contacts": 14, "album": 15, "template_message": 16,
    "campaign_message": 17, "survey_message": 18,
}  # fmt: skip

OBJECT_STATUS = {
    "open": 1, "resolved": 2, "forward": 3, "irrelevant": 4, "deleted": 5, "forward_reply": 6,
    "draft": 7, "in_process": 8, "scheduled": 9, "follow_up": 10, "automated": 11, "sent": 13,
    "archive": 14, "pending": 15,
}  # fmt: skip

STREAM_PROVIDER_TYPE = {
    "commbox": 0, "facebook": 1, "twitter": 2, "youtube": 3, "mail": 4, "telephone": 5,
    "anonymous": 6, "whatsapp": 7, "web": 8, "apple_app_store": 9, "instagram": 10,
    "google": 11, "telegram": 12, "google_my_business": 13, "microsoft365": 14, "gmail": 15,
    "whatsapp_cloud": 16, "salesforce": 17,
}  # fmt: skip

# definition key -> the enum it takes
ENUM_FIELDS: dict[str, dict[str, int]] = {
    "type": OBJECT_TYPE,
    "status_id": OBJECT_STATUS,
    "stream_provider_type": STREAM_PROVIDER_TYPE,
    "user_stream_provider_type": STREAM_PROVIDER_TYPE,
}


def _squash(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " _-")


_LOOKUP = {
    field: {_squash(name): number for name, number in table.items()}
    for field, table in ENUM_FIELDS.items()
}


def normalize_enum(field: str, value: Any) -> Any:
    """The enum's integer for a name (case-insensitive, spaces or `_`), else the value as is."""
    if isinstance(value, str):
        return _LOOKUP[field].get(_squash(value), value)
    return value
