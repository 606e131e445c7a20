"""What one send came to: its outcome, the result reported for it, and the verdict on a reply."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Outcome(Enum):
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"  # apply stopped before this request went out
    TAKEN = "taken"  # another apply claimed or sent the key since this one planned
    HELD = "held"  # a reply whose parent this apply did not send: it waits (`>`)


@dataclass(frozen=True)
class SendResult:
    address: str
    key: str
    outcome: Outcome
    object_id: Any = None
    status: int | None = None
    description: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    whatsapp_id: str | None = None  # a v2 WhatsApp template's message id

    def as_dict(self) -> dict[str, Any]:
        extra = {} if self.whatsapp_id is None else {"whatsapp_id": self.whatsapp_id}
        return {
            "address": self.address,
            "key": self.key,
            "outcome": self.outcome.value,
            "object_id": self.object_id,
            "status": self.status,
            "description": self.description,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            **extra,
        }


@dataclass
class Verdict:
    """What one attempt came to, before it is recorded."""

    outcome: Outcome
    status: int | None
    description: str | None
    # None: final. >= 0: retry after that many seconds. < 0: retry after exponential backoff.
    retry_after: float | None = None
    object_id: Any = None
    out_of_step: bool = False  # the reply was not this request's: close its connection
    whatsapp_id: str | None = None  # the message id a v2 WhatsApp send was answered with


class Halt:
    """Why the whole apply stopped, once: set by any worker, seen by all."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self.refused: str | None = None

    def refuse(self, why: str) -> None:
        if self.refused is None:
            self.refused = why
        self.event.set()


class ObjectIds:
    """Object ids the ledger holds (and for which key), and those answered in this run: a 2xx
    naming one of them again proves its connection out of step (a stray copy of a reply)."""

    def __init__(self, recorded: Mapping[str, str] | None = None) -> None:
        self.recorded = recorded or {}
        self.answered: dict[str, str] = {}
        self.lock = threading.Lock()
