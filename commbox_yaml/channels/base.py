"""What every channel provides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from commbox_yaml.phones import normalize_phone
from commbox_yaml.redact import REDACTED
from commbox_yaml.source import PathKey


@dataclass
class ContentParts:
    """The Content object a channel's shorthands give, and the files to upload."""

    content: dict[str, Any] = field(default_factory=dict)
    # (path as written, where it was written in the definition)
    uploads: list[tuple[str, PathKey]] = field(default_factory=list)
    # Content key -> the definition key that set it, to name the source of a clash
    sources: dict[str, str] = field(default_factory=dict)

    def put(self, wire: str, value: Any, source: str) -> None:
        self.content[wire] = value
        self.sources[wire] = source


@dataclass(frozen=True)
class Channel:
    name: str
    # definition key -> value used when the definition does not set it
    presets: Mapping[str, int]
    content: Callable[[Mapping[str, Any]], ContentParts]
    # definition keys holding a phone number, sent as digits (Content.to is one for sms/whatsapp)
    phone_fields: tuple[str, ...] = ()


USER_FIELDS: tuple[tuple[str, str], ...] = (
    ("unique_id", "UniqueId"),
    ("last_name", "LastName"),
    ("first_name", "FirstName"),
    ("phone1", "Phone1"),
    ("email", "Email"),
    ("remarks", "Remarks"),
)


def wire_phone(value: Any) -> str:
    """A phone number as the digits CommBox wants; the placeholder of a secret stays one."""
    text = str(value)
    return text if text == REDACTED else normalize_phone(text)


def user_object(user: Mapping[str, Any]) -> dict[str, Any]:
    """The User object, in CommBox's order; Phone1 as the digits CommBox wants."""
    out = {wire: user[name] for name, wire in USER_FIELDS if name in user}
    if isinstance(out.get("Phone1"), str):
        out["Phone1"] = wire_phone(out["Phone1"])
    return out


def phones(values: Mapping[str, Any], parts: ContentParts) -> None:
    """`to:` as Content.to, a list of phone numbers as digits (SMS, WhatsApp)."""
    if "to" in values:
        # The placeholder of a sensitive number stays one in what is shown (taint.py).
        to = values["to"]
        written = [to] if isinstance(to, str) else to  # one number: a WhatsApp v2 `to`
        numbers = [wire_phone(v) for v in written]
        parts.put("to", numbers, "to")
