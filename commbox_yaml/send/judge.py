"""What a reply means for the message it answers (SPEC section 6): sent, failed, unknown, or
retry, and whether it proves its connection out of step."""

from __future__ import annotations

import json
import re
from typing import Any

from commbox_yaml.client import Reply, retry_after_seconds
from commbox_yaml.ledger import object_id_text
from commbox_yaml.readback import commbox_object_id
from commbox_yaml.redact import Redactor
from commbox_yaml.send.outcome import Halt, ObjectIds, Outcome, Verdict

DESCRIPTION_LIMIT = 200
# A WhatsApp message id as CommBox's v2 endpoint answers it (gBEGlyVGZjUpAgmyuqAHfxbHmnQ,
# wamid.HBgL...=): kept in the ledger only when it has this shape.
_WHATSAPP_ID = re.compile(r"^[A-Za-z0-9._:=+/-]{1,256}$")


class ReplyJudge:
    """Classifies whole replies; shared by every worker (the object ids under their lock)."""

    def __init__(
        self, redactor: Redactor, ids: ObjectIds, halt: Halt, max_retry_after_s: float
    ) -> None:
        self._redactor = redactor
        self._ids = ids
        self._halt = halt
        self._max_retry_after_s = max_retry_after_s

    def classify(self, reply: Reply, key: str, recipient: str | None = None) -> Verdict:
        """With `recipient` (its phone number, as sent): the reply of CommBox's v2 WhatsApp
        endpoint to a request for that one recipient (SPEC section 11)."""
        status = reply.status
        payload = _json(reply.body)
        if recipient is not None and 200 <= status < 300:
            return self._templated(status, payload, key, recipient, reply)
        if 200 <= status < 300:
            return self._created(status, payload, key)

        description = self._description(payload, reply)
        if status in (429, 503):
            wait = _retry_after(reply.headers.get("retry-after"), self._max_retry_after_s)
            return Verdict(Outcome.FAILED, status, description, wait)
        if status in (401, 403):
            self._halt.refuse(f"the API token was refused (HTTP {status}: {description})")
            return Verdict(Outcome.FAILED, status, description)
        if 400 <= status < 500 or status == 501:
            # 501 Not Implemented: the server refused the operation, it did not perform it.
            return Verdict(Outcome.FAILED, status, description)
        # 5xx, and 3xx too: a redirect (303 See Other) is how a POST that did create something
        # may be answered, so it does not say the server did not take it.
        return Verdict(Outcome.UNKNOWN, status, description)

    def _created(self, status: int, payload: Any, key: str) -> Verdict:
        """A 2xx: `sent` only with an object id that is CommBox's and new."""
        found, named = _object_id(payload)
        if not found:
            # A proxy's page, a 204, `{"data": {}}`: it may or may not have been created.
            return Verdict(
                Outcome.UNKNOWN, status, f"the server answered {status} without an object id"
            )
        object_id = commbox_object_id(named)
        if object_id is None:  # nothing of it is kept: it may echo anything, a secret too
            return Verdict(
                Outcome.UNKNOWN,
                status,
                f"the server answered {status} with an id that is not a CommBox object id "
                "(a positive integer)",
            )
        holder = self._known_id(object_id, key)
        if holder is not None:
            return _stray(status, f"with object {object_id}, which {holder}")
        return Verdict(Outcome.SENT, status, None, object_id=object_id)

    def _templated(
        self, status: int, payload: Any, key: str, recipient: str, reply: Reply
    ) -> Verdict:
        """A 2xx of the v2 endpoint: its one item says sent (status 200 and a WhatsApp id),
        failed (a 206, or another item status), or nothing readable (unknown). An item for
        another recipient, or a WhatsApp id already answered in this run, is a stray reply."""
        data = payload.get("data") if isinstance(payload, dict) else None
        items = [i for i in data if isinstance(i, dict)] if isinstance(data, list) else []
        other = next((i for i in items if not _same_recipient(i.get("recipient"), recipient)), None)
        if other is not None:  # this request was for one recipient: the reply is another's
            return _stray(status, "for another recipient")
        if status == 206 or any(i.get("status") not in (200, "200", None) for i in items):
            texts = [self._description(payload, reply)] if status == 206 else []
            for entry in items:
                if entry.get("status") not in (200, "200") and entry.get("failed") is not None:
                    texts.append(f"{entry.get('status')}: {entry['failed']}")
            texts = texts or [f"the item's status is {items[0].get('status')}" if items else ""]
            text = self._redactor.text("; ".join(t for t in texts if t))[:DESCRIPTION_LIMIT]
            return Verdict(Outcome.FAILED, status, text)
        if len(items) != 1:
            return Verdict(
                Outcome.UNKNOWN,
                status,
                f"the server answered {status} with {len(items)} items for one recipient",
            )
        message_id = items[0].get("id")
        if items[0].get("status") not in (200, "200") or not (
            isinstance(message_id, str) and _WHATSAPP_ID.fullmatch(message_id)
        ):
            return Verdict(
                Outcome.UNKNOWN, status, f"the server answered {status} without a WhatsApp id"
            )
        with self._ids.lock:
            earlier = self._ids.answered.setdefault(f"whatsapp:{message_id}", key)
        if earlier != key:
            return _stray(
                status, f"with a WhatsApp message id answered for {earlier} earlier in this run"
            )
        object_id = commbox_object_id(items[0].get("object_id"))
        if object_id is not None:
            holder = self._known_id(object_id, key)
            if holder is not None:
                return _stray(status, f"with object {object_id}, which {holder}")
        return Verdict(Outcome.SENT, status, None, object_id=object_id, whatsapp_id=message_id)

    def _known_id(self, object_id: int, key: str) -> str | None:
        """Why `object_id` cannot be `key`'s new object, or None (it is then noted as answered)."""
        text = object_id_text(object_id)
        recorded = self._ids.recorded.get(text)
        if recorded is not None and recorded != key:
            return f"the ledger records for {recorded}"
        with self._ids.lock:
            answered = self._ids.answered.get(text)
            if answered is not None:
                return f"was answered for {answered} earlier in this run"
            self._ids.answered[text] = key
        return None

    def _description(self, payload: Any, reply: Reply) -> str:
        """The server's own words, redacted before they are cut (a cut secret is still one)."""
        text = payload.get("description") if isinstance(payload, dict) else None
        if not text:
            text = reply.reason or f"HTTP {reply.status}"
        return self._redactor.text(str(text))[:DESCRIPTION_LIMIT]


def _retry_after(value: str | None, cap: float) -> float:
    """Seconds to wait: Retry-After as seconds or an HTTP date, capped; backoff when absent."""
    seconds = retry_after_seconds(value)
    return -1.0 if seconds is None else min(max(seconds, 0.0), cap)


def _stray(status: int, what: str) -> Verdict:
    """A reply that answers another request: this one's own reply was never read."""
    return Verdict(
        Outcome.UNKNOWN,
        status,
        f"the server answered {status} {what}: the connection was out of step (a stray "
        "reply), so this request's own reply was not read; the connection was closed",
        out_of_step=True,
    )


def _same_recipient(named: Any, recipient: str) -> bool:
    """Whether an item's `recipient` (a string or a number of digits; absent says nothing)
    is the phone number the request was for."""
    if named is None:
        return True
    if isinstance(named, bool) or not isinstance(named, (str, int)):
        return False
    return "".join(ch for ch in str(named) if ch.isdigit()) == recipient


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _object_id(payload: Any) -> tuple[bool, Any]:
    """Whether the reply names an object id (`data.id`, read without regard to case), and it."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict):
        for key, value in data.items():
            if key.lower() == "id":
                return value is not None, value
    return False, None
