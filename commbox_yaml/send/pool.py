"""Sending planned requests: `concurrency` workers over one shared per-message policy."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence

from commbox_yaml import store
from commbox_yaml.client import Client
from commbox_yaml.ledger import LedgerStore, LedgerWriteError
from commbox_yaml.plan import PlannedMessage
from commbox_yaml.project import ApiSettings
from commbox_yaml.redact import Redactor
from commbox_yaml.send.outcome import Halt, ObjectIds, Outcome, SendResult
from commbox_yaml.send.policy import MessagePolicy, Prepared

# A worker's last result: (index, message, result, wait until its outcome is on disk).
_Held = tuple[int, PlannedMessage, SendResult, Callable[[], None] | None]


class Sender:
    """The workers of one apply; each message goes through `policy`, and results come back in
    the messages' order."""

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
        self.halt = Halt(stop)
        self.policy = MessagePolicy(
            api, client, ledger, redactor, run_id, self.halt, ObjectIds(recorded_ids)
        )

    @property
    def refused(self) -> str | None:
        """Why the whole apply stopped, when it did."""
        return self.halt.refused

    # -- the run ----------------------------------------------------------------------------

    def send_all(
        self,
        messages: Sequence[PlannedMessage],
        on_result: Callable[[int, SendResult], None] = lambda index, result: None,
        following: Sequence[PlannedMessage] = (),
    ) -> list[SendResult]:
        """Send every message, `concurrency` at a time; results in the messages' order, then
        those of `following`: replies (`>`) whose parent is among `messages`. The worker that
        sends a parent sends its replies right after its reply, one after another in plan
        order, into the conversation it made; a parent not sent leaves them held.
        `on_result(index, result)` hears of each as it is on disk, in any order."""
        self._replies: dict[str, list[tuple[int, PlannedMessage]]] = {}
        self._siblings: dict[int, list[tuple[int, PlannedMessage, Prepared | None]]] = {}
        for number, reply in enumerate(following):
            assert reply.parent is not None
            self._replies.setdefault(reply.parent.key, []).append((len(messages) + number, reply))
        self._take = self._work(messages)
        self._results: dict[int, SendResult] = {}
        self._report_lock = threading.Lock()
        self._on_result = on_result
        threads = [
            threading.Thread(target=self._worker, name=f"commbox-send-{n}", daemon=True)
            for n in range(min(self.api.concurrency, max(len(messages), 1)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)  # short joins keep the main thread free to take signals
        results = self._results
        for index in range(len(messages)):
            if index not in results:  # only these are read again
                message = messages[index]
                results[index] = SendResult(message.address, message.key, Outcome.NOT_SENT)
        for waiting in self._replies.values():
            for index, reply in waiting:
                if index not in results:
                    results[index] = SendResult(reply.address, reply.key, Outcome.NOT_SENT)
        return [results[i] for i in range(len(messages) + len(following))]

    def _worker(self) -> None:
        held: _Held | None = None  # a result whose outcome may not be on disk yet
        try:
            while not self.halt.event.is_set():
                try:
                    index, message, prepared = self._take()
                except IndexError:
                    return
                except Exception as exc:  # the plan could not be read: send nothing more
                    self.halt.refuse(f"the plan's messages could not be read: {exc}")
                    return
                if held is not None and self.policy.pace.paused():
                    # No claim will flush it soon (a 429 pause): put it on disk now.
                    self._settle(held)
                    held = None
                result, durable = self._send(message, prepared)
                if held is not None:  # this message's claim flushed its outcome too
                    self._settle(held)
                held = (index, message, result, durable)
                for reply_index, reply in self._replies.get(message.key, ()):
                    held = self._send_reply(reply_index, reply, result, held)
                for later, sibling, made in self._siblings.get(index, ()):
                    if self.halt.event.is_set():
                        break  # reported as not sent
                    outcome, durable = self._send(sibling, made)
                    self._settle(held)  # this reply's claim flushed its outcome too
                    held = (later, sibling, outcome, durable)
        finally:
            if held is not None:
                self._settle(held)

    def _send_reply(
        self, index: int, reply: PlannedMessage, parent: SendResult, held: _Held
    ) -> _Held:
        """A reply sent right after its parent's result, into the object it made; held (no
        ledger event: the next plan shows it `>`) when the parent was not sent."""
        assert reply.parent is not None
        if parent.outcome is not Outcome.SENT or parent.object_id is None:
            why = parent.outcome.value if parent.outcome is not Outcome.SENT else "no object id"
            description = (
                f"its parent {parent.address} was not sent ({why}): it waits ('>') until its "
                "parent is sent"
            )
            self._settle((index, reply, self._held(reply, description), None))
            return held
        if self.halt.event.is_set():
            self._settle(
                (index, reply, SendResult(reply.address, reply.key, Outcome.NOT_SENT), None)
            )
            return held
        linked = dataclasses.replace(
            reply, parent=dataclasses.replace(reply.parent, object_id=parent.object_id)
        )
        result, durable = self._send(linked, None)
        self._settle(held)  # this reply's claim flushed its outcome too
        return (index, linked, result, durable)

    @staticmethod
    def _held(reply: PlannedMessage, description: str) -> SendResult:
        return SendResult(reply.address, reply.key, Outcome.HELD, description=description)

    def _send(
        self, message: PlannedMessage, prepared: Prepared | None
    ) -> tuple[SendResult, Callable[[], None] | None]:
        """One message's result, and the wait for its outcome to be on disk."""
        try:
            result = self.policy.send_one(message, prepared)
            return result, self.policy.take_durable()
        except LedgerWriteError as exc:  # nothing more can be recorded: stop
            self.halt.refuse(str(exc))
            lost = Outcome.NOT_SENT if exc.before_send else Outcome.UNKNOWN
            return SendResult(message.address, message.key, lost, description=str(exc)), None
        except Exception as exc:  # a bug must not lose track of a request
            return self._crashed(message, exc), None

    def _settle(self, held: _Held) -> None:
        """Report a result once its outcome is on disk (see MessagePolicy._finish)."""
        index, message, result, durable = held
        if durable is not None:
            try:
                durable()
            except LedgerWriteError as exc:  # its request went out: unknown
                self.halt.refuse(str(exc))
                result = SendResult(
                    message.address, message.key, Outcome.UNKNOWN, description=str(exc)
                )
        with self._report_lock:
            self._results[index] = result
            # The output may go away (`apply | head`): the ledger has it all.
            with contextlib.suppress(OSError):
                self._on_result(index, result)

    def _work(
        self, messages: Sequence[PlannedMessage]
    ) -> Callable[[], tuple[int, PlannedMessage, Prepared | None]]:
        """What a worker calls for its next message; IndexError when there is none.

        A plan held in memory has every body made before sending starts, off the workers'
        path; replies to one conversation go one after another, in plan order, by the worker
        that takes the first of them. A larger one (its messages kept on disk, see
        store.SPILL_AFTER) has each read and made by the worker that sends it: an apply never
        holds a whole fan-out.
        """
        # popleft is atomic: 32 workers take messages without a lock to queue up on
        if len(messages) <= store.SPILL_AFTER:
            work: collections.deque[tuple[int, PlannedMessage, Prepared | None]]
            work = collections.deque()
            first: dict[str, int] = {}  # a parent's first reply here: the others go after it
            for index, message in enumerate(messages):
                item = (index, message, self.policy.prepare(message))
                parent = message.parent
                if parent is not None and first.setdefault(parent.key, index) != index:
                    self._siblings.setdefault(first[parent.key], []).append(item)
                else:
                    work.append(item)
            return work.popleft
        numbers = collections.deque(range(len(messages)))

        def take() -> tuple[int, PlannedMessage, Prepared | None]:
            index = numbers.popleft()
            message = messages[index]
            return index, message, self.policy.prepare(message)

        return take

    def _crashed(self, message: PlannedMessage, exc: Exception) -> SendResult:
        """Record an unexpected error as unknown: the request may have gone out."""
        description = f"internal error: {type(exc).__name__}: {exc}"
        assert message.request is not None
        try:
            self.policy.event("unknown", message.request, description=description)
        except Exception:  # the ledger itself failed; the result still says so
            description += " (and the ledger could not record it)"
        self.halt.refuse(description)  # an internal error stops the whole apply
        return SendResult(message.address, message.key, Outcome.UNKNOWN, description=description)
