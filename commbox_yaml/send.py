"""Sending planned requests: workers, a shared pace, and an explicit retry policy.

The policy (SPEC section 6) exists because a POST to Create Object is not idempotent and the
API has no idempotency key: only a reply that says the server did *not* take a request (429,
503) or a connection that never opened makes a retry safe. Everything that may have reached
the server without a clear answer (500, 502, 504, a read timeout, a dropped connection) is
`unknown` and is never retried: sending twice is worse than asking a person.
urllib3's own `Retry` is therefore switched off (`retries=False`, in client.py).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import urllib3

from commbox_yaml import store
from commbox_yaml.client import Client, NotSent, Reply, ReplyLost, retry_after_seconds
from commbox_yaml.compile import Request
from commbox_yaml.ledger import LedgerStore, LedgerWriteError, object_id_text
from commbox_yaml.output import Redactor
from commbox_yaml.plan import PlannedMessage
from commbox_yaml.project import ApiSettings
from commbox_yaml.readback import commbox_object_id

BACKOFF_BASE_S = 0.5
DESCRIPTION_LIMIT = 200


class Outcome(Enum):
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"  # apply stopped before this request went out
    TAKEN = "taken"  # another apply claimed or sent the key since this one planned


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "key": self.key,
            "outcome": self.outcome.value,
            "object_id": self.object_id,
            "status": self.status,
            "description": self.description,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
        }


class Pace:
    """When the next request may start: `rate_per_s` and any server-asked pause, for all workers.

    Two steps: `wait_turn` before a key is claimed reserves a slot (so that a claim is made
    shortly before its request, never long before), and `gate` right before the request
    leaves keeps the requests themselves on the `1 / rate_per_s` schedule, whatever the claim's
    durable write took: no second sees more than `rate_per_s` of them.
    """

    def __init__(self, rate_per_s: float) -> None:
        self._lock = threading.Lock()
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._gate_lock = threading.Lock()
        self._due = 0.0
        # when the last requests left, as many as one second may hold
        self._recent: collections.deque[float] = collections.deque(
            maxlen=max(1, math.floor(rate_per_s))
        )

    def wait_turn(self, stop: threading.Event) -> bool:
        """Block until this worker may send; False when apply is stopping."""
        if not self._interval and not self._paused_until:  # no rate, no pause yet: no wait
            return not stop.is_set()
        while True:
            with self._lock:
                now = time.monotonic()
                if now >= self._paused_until:
                    slot = max(now, self._next)
                    self._next = slot + self._interval
                    delay, reserved = slot - now, True
                else:
                    delay, reserved = self._paused_until - now, False
            if delay > 0 and stop.wait(delay):
                return False
            if stop.is_set():
                return False
            if reserved and time.monotonic() >= self._paused_until:
                return True

    def gate(self) -> None:
        """Block until this request may leave: on the `1 / rate_per_s` schedule (a request
        that left a little late lets the next ones make up at most two intervals), and never
        a request more than `rate_per_s` within one second. The wait is short (a slot was
        reserved before the claim), and a claimed request always goes."""
        if not self._interval:
            return
        while True:
            with self._gate_lock:
                now = time.monotonic()
                self._due = max(self._due, now - 2 * self._interval)
                wait = self._due - now
                if len(self._recent) == self._recent.maxlen:
                    wait = max(wait, self._recent[0] + 1.0 - now)
                if wait <= 0:
                    self._recent.append(now)
                    self._due += self._interval
                    return
            time.sleep(wait)

    def paused(self) -> bool:
        """Whether a server-asked pause holds every worker now."""
        return time.monotonic() < self._paused_until  # one float read: no lock needed

    def pause(self, seconds: float) -> None:
        """A 429 or 503 slows every worker, not only the one that saw it."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


# A worker's last result: (index, message, result, wait until its outcome is on disk).
_Held = tuple[int, PlannedMessage, "SendResult", Callable[[], None] | None]


class Sender:
    def __init__(
        self,
        api: ApiSettings,
        client: Client,
        ledger: LedgerStore,
        redactor: Redactor,
        run_id: str,
        stop: threading.Event | None = None,
        recorded_ids: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.ledger = ledger
        self.redactor = redactor
        self.run_id = run_id
        self.stop = stop or threading.Event()
        self.refused: str | None = None  # why the whole apply stopped, when it did
        self.pace = Pace(api.rate_per_s)
        self.client = client
        self._local = threading.local()  # per worker: the wait for its last outcome's fsync
        # Object ids the ledger holds (and for which key), and those answered in this run: a
        # 2xx naming one of them again proves its connection out of step (a stray reply).
        self._recorded_ids = recorded_ids or {}
        self._answered_ids: dict[str, str] = {}
        self._ids_lock = threading.Lock()

    # -- the run ----------------------------------------------------------------------------

    def send_all(
        self,
        messages: Sequence[PlannedMessage],
        on_result: Callable[[SendResult], None] = lambda r: None,
    ) -> list[SendResult]:
        """Send every message, `concurrency` at a time; results in the messages' order."""
        take = self._work(messages)
        results: dict[int, SendResult] = {}
        report_lock = threading.Lock()

        def report(index: int, message: PlannedMessage, result: SendResult) -> None:
            with report_lock:
                results[index] = result
                # The output may go away (`apply | head`): the ledger has it all.
                with contextlib.suppress(OSError):
                    on_result(result)

        def settle(held: _Held) -> None:
            """Report a result once its outcome is on disk (see _finish)."""
            index, message, result, durable = held
            if durable is not None:
                try:
                    durable()
                except LedgerWriteError as exc:  # its request went out: unknown
                    self._refuse(str(exc))
                    result = SendResult(
                        message.address, message.key, Outcome.UNKNOWN, description=str(exc)
                    )
            report(index, message, result)

        def worker() -> None:
            held: _Held | None = None  # a result whose outcome may not be on disk yet
            try:
                while not self.stop.is_set():
                    try:
                        index, message, prepared = take()
                    except IndexError:
                        return
                    except Exception as exc:  # the plan could not be read: send nothing more
                        self._refuse(f"the plan's messages could not be read: {exc}")
                        return
                    durable: Callable[[], None] | None = None
                    if held is not None and self.pace.paused():
                        # No claim will flush it soon (a 429 pause): put it on disk now.
                        settle(held)
                        held = None
                    try:
                        result = self.send_one(message, prepared)
                        durable = self._local.__dict__.pop("durable", None)
                    except LedgerWriteError as exc:  # nothing more can be recorded: stop
                        self._refuse(str(exc))
                        lost = Outcome.NOT_SENT if exc.before_send else Outcome.UNKNOWN
                        result = SendResult(
                            message.address, message.key, lost, description=str(exc)
                        )
                    except Exception as exc:  # a bug must not lose track of a request
                        result = self._crashed(message, exc)
                    if held is not None:  # this message's claim flushed its outcome too
                        settle(held)
                    held = (index, message, result, durable)
            finally:
                if held is not None:
                    settle(held)

        threads = [
            threading.Thread(target=worker, name=f"commbox-send-{n}", daemon=True)
            for n in range(min(self.api.concurrency, max(len(messages), 1)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)  # short joins keep the main thread free to take signals
        for index in range(len(messages)):
            if index not in results:  # only these are read again
                message = messages[index]
                results[index] = SendResult(message.address, message.key, Outcome.NOT_SENT)
        return [results[i] for i in range(len(messages))]

    def _work(
        self, messages: Sequence[PlannedMessage]
    ) -> Callable[[], tuple[int, PlannedMessage, _Prepared | None]]:
        """What a worker calls for its next message; IndexError when there is none.

        A plan held in memory has every body made before sending starts, off the workers'
        path. A larger one (its messages kept on disk, see store.SPILL_AFTER) has each read
        and made by the worker that sends it: an apply never holds a whole fan-out.
        """
        # popleft is atomic: 32 workers take messages without a lock to queue up on
        if len(messages) <= store.SPILL_AFTER:
            work = collections.deque(
                (index, message, self._prepare(message)) for index, message in enumerate(messages)
            )
            return work.popleft
        numbers = collections.deque(range(len(messages)))

        def take() -> tuple[int, PlannedMessage, _Prepared | None]:
            index = numbers.popleft()
            message = messages[index]
            return index, message, self._prepare(message)

        return take

    # -- one message ------------------------------------------------------------------------

    def _crashed(self, message: PlannedMessage, exc: Exception) -> SendResult:
        """Record an unexpected error as unknown: the request may have gone out."""
        description = f"internal error: {type(exc).__name__}: {exc}"
        assert message.request is not None
        try:
            self._event("unknown", message.request, description=description)
        except Exception:  # the ledger itself failed; the result still says so
            description += " (and the ledger could not record it)"
        self._refuse(description)  # an internal error stops the whole apply
        return SendResult(message.address, message.key, Outcome.UNKNOWN, description=description)

    def _prepare(self, message: PlannedMessage) -> _Prepared | None:
        """What a JSON request needs before it is claimed, worked out before sending starts
        (a multipart body is built when sent: its attachments are read then)."""
        request = message.request
        if request is None or request.multipart:
            return None
        body = json.dumps(request.body, ensure_ascii=False).encode()
        return _Prepared(body, "application/json", dict(request.field_hashes))

    def send_one(self, message: PlannedMessage, prepared: _Prepared | None = None) -> SendResult:
        request = message.request
        assert request is not None
        started = time.monotonic()
        if prepared is None:
            try:
                body, content_type = self._encode(request)
            except ValueError as exc:
                return SendResult(
                    message.address, message.key, Outcome.FAILED, description=str(exc)
                )
            fields = dict(request.field_hashes)
        else:
            body, content_type, fields = prepared.body, prepared.content_type, prepared.fields
        attempt = 0
        while True:
            if not self.pace.wait_turn(self.stop):
                return self._result(message, Outcome.NOT_SENT, attempt, started)
            attempt += 1
            if not self._claim(message, attempt, fields):
                return SendResult(
                    message.address, message.key, Outcome.TAKEN,
                    description="another apply claimed or sent it since this one planned",
                )  # fmt: skip
            self.pace.gate()
            outcome = self._attempt(request, body, content_type)
            if outcome.retry_after is None:
                return self._finish(message, outcome, attempt, started)
            self._event(
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
            elif self.stop.wait(delay):
                return self._result(message, Outcome.NOT_SENT, attempt, started)

    def _finish(
        self,
        message: PlannedMessage,
        outcome: _Attempt,
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
            outcome.description, attempt, time.monotonic() - started,
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

    def _event(self, kind: str, request: Request, **fields: Any) -> None:
        self.ledger.append(self._record(kind, request, **fields))

    def _record(self, kind: str, request: Request, **fields: Any) -> dict[str, Any]:
        event = {
            "event": kind,
            "key": request.key,
            "fingerprint": request.fingerprint,
            "run": self.run_id,
        }
        event.update({k: v for k, v in fields.items() if v is not None})
        if "description" in event:
            event["description"] = self.redactor.text(str(event["description"]))
        return event

    # -- HTTP -------------------------------------------------------------------------------

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

    def _attempt(self, request: Request, body: bytes, content_type: str) -> _Attempt:
        judged: list[_Attempt] = []

        def in_step(reply: Reply) -> bool:
            judged.append(self._classify(reply, request.key))
            return not judged[0].out_of_step

        try:
            self.client.post(request.path, body, content_type, in_step)
        except NotSent as exc:
            if exc.fatal:
                # Nothing was sent, and nothing will be to this server.
                self._refuse(exc.reason)
                return _Attempt(Outcome.FAILED, None, exc.reason)
            return _Attempt(Outcome.FAILED, None, exc.reason, -1.0)  # safe to try again
        except ReplyLost as exc:
            return _Attempt(Outcome.UNKNOWN, None, exc.reason)
        return judged[0]

    def _classify(self, reply: Reply, key: str) -> _Attempt:
        status = reply.status
        payload = _json(reply.body)
        if 200 <= status < 300:
            return self._created(status, payload, key)

        description = self._description(payload, reply)
        if status in (429, 503):
            wait = _retry_after(reply.headers.get("retry-after"), self.api.max_retry_after_s)
            return _Attempt(Outcome.FAILED, status, description, wait)
        if status in (401, 403):
            self._refuse(f"the API token was refused (HTTP {status}: {description})")
            return _Attempt(Outcome.FAILED, status, description)
        if 400 <= status < 500 or status == 501:
            # 501 Not Implemented: the server refused the operation, it did not perform it.
            return _Attempt(Outcome.FAILED, status, description)
        # 5xx, and 3xx too: a redirect (303 See Other) is how a POST that did create something
        # may be answered, so it does not say the server did not take it.
        return _Attempt(Outcome.UNKNOWN, status, description)

    def _created(self, status: int, payload: Any, key: str) -> _Attempt:
        """A 2xx: `sent` only with an object id that is CommBox's and new."""
        found, named = _object_id(payload)
        if not found:
            # A proxy's page, a 204, `{"data": {}}`: it may or may not have been created.
            return _Attempt(
                Outcome.UNKNOWN, status, f"the server answered {status} without an object id"
            )
        object_id = commbox_object_id(named)
        if object_id is None:  # nothing of it is kept: it may echo anything, a secret too
            return _Attempt(
                Outcome.UNKNOWN,
                status,
                f"the server answered {status} with an id that is not a CommBox object id "
                "(a positive integer)",
            )
        holder = self._known_id(object_id, key)
        if holder is not None:
            return _Attempt(
                Outcome.UNKNOWN,
                status,
                f"the server answered {status} with object {object_id}, which {holder}: the "
                "connection was out of step (a stray reply), so this request's own reply was "
                "not read; the connection was closed",
                out_of_step=True,
            )
        return _Attempt(Outcome.SENT, status, None, object_id=object_id)

    def _known_id(self, object_id: int, key: str) -> str | None:
        """Why `object_id` cannot be `key`'s new object, or None (it is then noted as answered)."""
        text = object_id_text(object_id)
        recorded = self._recorded_ids.get(text)
        if recorded is not None and recorded != key:
            return f"the ledger records for {recorded}"
        with self._ids_lock:
            answered = self._answered_ids.get(text)
            if answered is not None:
                return f"was answered for {answered} earlier in this run"
            self._answered_ids[text] = key
        return None

    def _description(self, payload: Any, reply: Reply) -> str:
        """The server's own words, redacted before they are cut (a cut secret is still one)."""
        text = payload.get("description") if isinstance(payload, dict) else None
        if not text:
            text = reply.reason or f"HTTP {reply.status}"
        return self.redactor.text(str(text))[:DESCRIPTION_LIMIT]

    def _refuse(self, why: str) -> None:
        if self.refused is None:
            self.refused = why
        self.stop.set()


@dataclass(frozen=True)
class _Prepared:
    body: bytes
    content_type: str
    fields: dict[str, str]  # the per-field hashes of the `pending` event


@dataclass
class _Attempt:
    outcome: Outcome
    status: int | None
    description: str | None
    # None: final. >= 0: retry after that many seconds. < 0: retry after exponential backoff.
    retry_after: float | None = None
    object_id: Any = None
    out_of_step: bool = False  # the reply was not this request's: close its connection


def _backoff(attempt: int) -> float:
    ceiling: float = BACKOFF_BASE_S * 2.0 ** (attempt - 1)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter spreads the workers out


def _retry_after(value: str | None, cap: float) -> float:
    """Seconds to wait: Retry-After as seconds or an HTTP date, capped; backoff when absent."""
    seconds = retry_after_seconds(value)
    return -1.0 if seconds is None else min(max(seconds, 0.0), cap)


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
