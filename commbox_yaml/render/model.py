"""What rendering gives: one message's values, and a value that stands for a message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commbox_yaml.definitions import Definition

# Keys that steer rendering instead of being rendered as values.
STRUCTURAL = ("name", "channel", "for_each", "key", "when")


@dataclass(frozen=True)
class RenderedMessage:
    """One message after templating: the definition's values, ready for the schema."""

    definition: Definition
    address: str
    key: str
    item_key: str | None
    values: dict[str, Any]
    skipped: bool = False
    # The values rendered with the real sensitive values, when any template uses one (then
    # `values`, rendered with them as `(sensitive)`, is what every output shows).
    sent: dict[str, Any] | None = None


@dataclass(frozen=True)
class OfMessage:
    """A value that stands for one rendered message: named by its address and ledger key."""

    message: RenderedMessage

    @property
    def address(self) -> str:
        return self.message.address

    @property
    def key(self) -> str:
        return self.message.key
