"""One message's send: claim, request, classify, retry, record (SPEC section 6).

The policy exists because a POST to Create Object is not idempotent and the API has no
idempotency key: only a reply that says the server did *not* take a request (429, 503) or a
connection that never opened makes a retry safe. Everything that may have reached the server
without a clear answer (500, 502, 504, a read timeout, a dropped connection) is `unknown` and
is never retried: sending twice is worse than asking a person. urllib3's own `Retry` is
therefore switched off (`retries=False`, in client.py).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from commbox_yaml.channels.whatsapp_v2 import past_schedule
from commbox_yaml.client import Client, NotSent, Reply, ReplyLost
from commbox_yaml.compile import Request
from commbox_yaml.conversation import child_path
from commbox_yaml.ledger import LedgerStore
from commbox_yaml.plan import PlannedMessage
from commbox_yaml.project import ApiSettings
from commbox_yaml.redact import Redactor
from commbox_yaml.send.judge import ReplyJudge
from commbox_yaml.send.outcome import Halt, ObjectIds, Outcome, SendResult, Verdict
from commbox_yaml.send.pace import Pace

BACKOFF_BASE_S = 0.5


@dataclass(frozen=True)
class Prepared:
    """What a JSON request needs before it is claimed, made before sending starts."""

    body: bytes
    content_type: str
    fields: dict[str, str]  # the per-field hashes of the `pending` event


class MessagePolicy:
    """Sends one message at a time for whichever worker calls it; shared by all of them."""

    def __init__(
        self,
        api: ApiSettings,
        client: Client,
        ledger: LedgerStore,
        redactor: Redactor,
        run_id: str,
        halt: Halt,
        ids: ObjectIds,
    ) -> None:
        self.api = api
        self.client = client
        self.ledger = ledger
        self.redactor = redactor
        self.run_id = run_id
        self.halt = halt
        self.pace = Pace(api.rate_per_s)
        self.judge = ReplyJudge(redactor, ids, halt, api.max_retry_after_s)
        self._local = threading.local()  # per worker: the wait for its last outcome's fsync

    def take_durable(self) -> Callable[[], None] | None:
        """The calling worker's wait for its last outcome to be on disk, if one is queued."""
        durable: Callable[[], None] | None = self._local.__dict__.pop("durable", None)
        return durable

    def prepare(self, message: PlannedMessage) -> Prepared | None:
        """What a JSON request needs before it is claimed, worked out before sending starts
        (a multipart body is built when sent: its attachments are read then)."""
        request = message.request
        if request is None or request.multipart:
            return None
        body = json.dumps(request.body, ensure_ascii=False).encode()
        return Prepared(body, "application/json", dict(request.field_hashes))

    def send_one(self, message: PlannedMessage, prepared: Prepared | None = None) -> SendResult:
        request = message.request
        assert request is not None
        started = time.monotonic()
        made = prepared or self._made(request)
        if isinstance(made, str):  # an attachment could not be read: nothing was sent
            return SendResult(message.address, message.key, Outcome.FAILED, description=made)
        body, content_type, fields = made.body, made.content_type, made.fields
        past = past_schedule(request.sent_data, time.time()) if request.v2 else None
        if past is not None:  # WhatsApp would deliver it at once, not when it was meant
            return SendResult(message.address, message.key, Outcome.FAILED, description=past)
        path = request.path
        if message.parent is not None:  # a reply: in its parent's conversation
            if message.parent.object_id is None:
                return SendResult(
                    message.address, message.key, Outcome.HELD,
                    description=f"its parent {message.parent.address} has no object id",
                )  # fmt: skip
            path = child_path(request, message.parent.object_id)
        attempt = 0
        while True:
            if not self.pace.wait_turn(self.halt.event):
                return self._result(message, Outcome.NOT_SENT, attempt, started)
            attempt += 1
            if not self._claim(message, attempt, fields):
                return SendResult(
                    message.address, message.key, Outcome.TAKEN,
                    description="another apply claimed or sent it since this one planned",
                )  # fmt: skip
            self.pace.gate()
            outcome = self._attempt(request, path, body, content_type)
            if outcome.retry_after is None:
                return self._finish(message, outcome, attempt, started)
            self.event(
                "retry",
                request,
                attempt=attempt,
                status=outcome.status,
                description=outcome.description,
            )
            if attempt >= self.api.max_attempts:
                outcome.description = (
                    f"{outcome.description}; gave up after {attempt} attempts (api.max_attempts)"
                )
                return self._finish(message, outcome, attempt, started, final=Outcome.FAILED)
            delay = outcome.retry_after if outcome.retry_after >= 0 else _backoff(attempt)
            if outcome.status in (429, 503):
                self.pace.pause(delay)  # every worker waits, this one at the top of the loop
            elif self.halt.event.wait(delay):
                return self._result(message, Outcome.NOT_SENT, attempt, started)

    def _finish(
        self,
        message: PlannedMessage,
        outcome: Verdict,
        attempt: int,
        started: float,
        final: Outcome | None = None,
    ) -> SendResult:
        request = message.request
        assert request is not None
        result_outcome = final or outcome.outcome
        fields: dict[str, Any] = {"attempt": attempt, "status": outcome.status}
        if result_outcome is Outcome.SENT:
            fields["object_id"] = outcome.object_id
            fields["whatsapp_id"] = outcome.whatsapp_id
        else:
            fields["description"] = outcome.description
        record = self._record(result_outcome.value, request, **fields)
        later = getattr(self.ledger, "append_later", None)
        if later is None:
            self.ledger.append(record)
        else:
            # Queued, not waited for: the worker reports this result only after its next
            # claim (or, at its end, a wait) has put this outcome on disk.
            self._local.durable = later(record)
        return SendResult(
            message.address, message.key, result_outcome, outcome.object_id, outcome.status,
            outcome.description, attempt, time.monotonic() - started, outcome.whatsapp_id,
        )  # fmt: skip

    def _result(
        self, message: PlannedMessage, outcome: Outcome, attempts: int, started: float
    ) -> SendResult:
        return SendResult(
            message.address,
            message.key,
            outcome,
            attempts=attempts,
            seconds=time.monotonic() - started,
        )

    def _claim(self, message: PlannedMessage, attempt: int, fields: dict[str, str]) -> bool:
        """Write `pending`, unless another apply took the key since this one planned."""
        request = message.request
        assert request is not None
        event = self._record(
            "pending",
            request,
            attempt=attempt,
            address=request.address,
            stream=request.stream,
            fields=dict(fields),
        )
        return self.ledger.claim(event, message.state.events if attempt == 1 else None)

    def event(self, kind: str, request: Request, **fields: Any) -> None:
        self.ledger.append(self._record(kind, request, **fields))

    def _record(self, kind: str, request: Request, **fields: Any) -> dict[str, Any]:
        event = {
            "event": kind,
            "key": request.key,
            "fingerprint": request.fingerprint,
            "run": self.run_id,
        }
        if request.parent_key is not None:  # a reply: its parent's key
            event["parent"] = request.parent_key
        event.update({k: v for k, v in fields.items() if v is not None})
        if "description" in event:
            event["description"] = self.redactor.text(str(event["description"]))
        return event

    def _made(self, request: Request) -> Prepared | str:
        """A request's body made now (a multipart one reads its attachments), or why not."""
        try:
            body, content_type = self._encode(request)
        except ValueError as exc:
            return str(exc)
        return Prepared(body, content_type, dict(request.field_hashes))

    def _encode(self, request: Request) -> tuple[bytes, str]:
        if not request.multipart:
            return json.dumps(request.body, ensure_ascii=False).encode(), "application/json"
        fields: list[tuple[str, Any]] = [("data", request.data_field)]
        for attachment in request.files:
            try:
                content = attachment.absolute.read_bytes()
            except OSError as exc:
                raise ValueError(f"attachment {attachment.path}: {exc.strerror}") from None
            if hashlib.sha256(content).hexdigest() != attachment.sha256:
                raise ValueError(f"attachment {attachment.path} changed while apply was running")
            fields.append(("file", (attachment.name, content, attachment.mime)))
        body, content_type = urllib3.encode_multipart_formdata(fields)
        return body, content_type

    def _attempt(self, request: Request, path: str, body: bytes, content_type: str) -> Verdict:
        judged: list[Verdict] = []
        # A v2 template goes to one recipient: its reply must be about that one.
        recipient = str(request.sent_data["template_data"]["to"]) if request.v2 else None

        def in_step(reply: Reply) -> bool:
            judged.append(self.judge.classify(reply, request.key, recipient))
            return not judged[0].out_of_step

        try:
            self.client.post(path, body, content_type, in_step)
        except NotSent as exc:
            if exc.fatal:
                # Nothing was sent, and nothing will be to this server.
                self.halt.refuse(exc.reason)
                return Verdict(Outcome.FAILED, None, exc.reason)
            return Verdict(Outcome.FAILED, None, exc.reason, -1.0)  # safe to try again
        except ReplyLost as exc:
            return Verdict(Outcome.UNKNOWN, None, exc.reason)
        return judged[0]


def _backoff(attempt: int) -> float:
    ceiling: float = BACKOFF_BASE_S * 2.0 ** (attempt - 1)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter spreads the workers out
