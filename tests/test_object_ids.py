"""A 2xx is `sent` only with an object id that is CommBox's and new.

- CommBox documents an object id as a positive integer: anything else is `unknown`, and
  nothing of it is stored (it may echo anything, a secret too).
- An id the ledger holds for another key, or one an earlier reply of this run named, proves
  the connection out of step (a stray copy of an earlier reply): that key is `unknown`, the
  connection is closed, and no later request reads what it still holds.

Real sockets: the sandbox, and a raw keep-alive server that sends stray copies of replies.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus, Ledger
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.leaks import LeakGuard
from tests.sending import apply, ledger_path, read_request, states
from tests.test_apply_faults import key, make, text, use


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    use(monkeypatch, server.url)


# -- ids that are not CommBox's ------------------------------------------------------------------

NOT_IDS = {
    "empty-string": b'""',
    "false": b"false",
    "true": b"true",
    "object": b"{}",
    "list": b"[]",
    "negative": b"-3",
    "zero": b"0",
    "zero-text": b'"0"',
    "fraction": b"1.5",
    "letters-after-digits": b'"12ab"',
    "superscript-digits": '"\u00b9\u00b2"'.encode(),
    "spaces": b'" 12"',
    "echoed-secret": b'"obj-ACCT-SECRET-77123"',
}


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("raw", NOT_IDS.values(), ids=NOT_IDS.keys())
def test_an_id_that_is_not_a_commbox_object_id_is_unknown_and_not_stored(
    tmp_path: Path,
    server: SandboxServer,
    capsys: pytest.CaptureFixture[str],
    leak_guard: LeakGuard,
    raw: bytes,
) -> None:
    leak_guard.register("ACCT-SECRET-77123")
    make(tmp_path, count=1)
    server.script(Fault(accept=True, body=b'{"data": {"id": %s}}' % raw))
    assert apply(tmp_path) == 1
    state = states(tmp_path)[key(0)]
    assert state.status is KeyStatus.UNKNOWN
    assert state.object_id is None
    assert "not a CommBox object id" in str(state.description)
    out, err = capsys.readouterr()
    assert "not a CommBox object id" in out + err
    assert "ACCT" not in ledger_path(tmp_path).read_text()
    assert apply(tmp_path) == 0  # held, never sent again
    assert len(server.received) == 1


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("raw", "stored"), [(b"77", 77), (b'"294159"', 294159), (b'"0042"', 42), (b"1", 1)]
)
def test_a_positive_integer_or_a_string_of_digits_is_an_object_id(
    tmp_path: Path, server: SandboxServer, raw: bytes, stored: int
) -> None:
    make(tmp_path, count=1)
    server.script(Fault(accept=True, body=b'{"data": {"Id": %s}}' % raw))
    assert apply(tmp_path) == 0
    assert (states(tmp_path)[key(0)].status, states(tmp_path)[key(0)].object_id) == (
        KeyStatus.SENT,
        stored,
    )


@pytest.mark.usefixtures("env")
def test_an_id_the_ledger_holds_for_another_key_is_unknown(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=1)
    assert apply(tmp_path) == 0
    first = states(tmp_path)[key(0)].object_id
    make(tmp_path, count=2)  # one more customer
    server.script(Fault(accept=True, id=first))  # the server names the first object again
    assert apply(tmp_path) == 1
    state = states(tmp_path)[key(1)]
    assert state.status is KeyStatus.UNKNOWN
    assert state.object_id is None
    assert f"object {first}, which the ledger records for {key(0)}" in str(state.description)
    assert states(tmp_path)[key(0)].object_id == first


@pytest.mark.usefixtures("env")
def test_an_id_named_twice_in_one_run_is_unknown_the_second_time(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=2, concurrency=1)
    server.script(Fault(accept=True, id=5555), Fault(accept=True, id=5555))
    assert apply(tmp_path) == 1
    final = states(tmp_path)
    assert [final[key(n)].status for n in range(2)] == [KeyStatus.SENT, KeyStatus.UNKNOWN]
    assert "earlier in this run" in str(final[key(1)].description)


# -- stray copies of replies on kept-alive connections --------------------------------------------


@dataclass
class _Connection:
    number: int
    requests: int = 0
    after_stray: int = 0  # requests that arrived after a stray copy was written on it
    stray_sent: bool = False


@dataclass
class StrayServer:
    """Keep-alive HTTP/1.1 that stores each POST (its Message) and answers 200 with a new id
    after `work_s`; a POST whose Message is in `rejected` gets 400. For the requests numbered in
    `echo`, the same reply is written again `echo_after_s` later: a middlebox's glitch."""

    echo: frozenset[int]
    rejected: frozenset[str] = frozenset()
    work_s: float = 0.3
    echo_after_s: float = 0.08
    stored: dict[str, int] = field(default_factory=dict)  # Message -> object id
    connections: list[_Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(900_001)
        self._order = itertools.count(1)
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(sock)
            with self._lock:
                conn = _Connection(len(self.connections))
                self.connections.append(conn)
            threading.Thread(target=self._talk, args=(sock, conn), daemon=True).start()

    def _talk(self, sock: socket.socket, conn: _Connection) -> None:
        with contextlib.suppress(OSError), sock:
            while True:
                request = read_request(sock)
                if b"\r\n\r\n" not in request:
                    return
                conn.requests += 1
                conn.after_stray += conn.stray_sent
                number = next(self._order)
                message = json.loads(request.rsplit(b"\r\n\r\n", 1)[1])["data"]["Message"]
                time.sleep(self.work_s)
                if message in self.rejected:
                    reply = _reply(400, {"status": "400", "description": "rejected"})
                else:
                    with self._lock:
                        self.stored[message] = next(self._ids)
                    reply = _reply(200, {"data": {"id": self.stored[message]}})
                sock.sendall(reply)
                if number in self.echo:
                    threading.Thread(
                        target=self._echo, args=(sock, conn, reply), daemon=True
                    ).start()

    def _echo(self, sock: socket.socket, conn: _Connection, reply: bytes) -> None:
        time.sleep(self.echo_after_s)
        with contextlib.suppress(OSError):
            sock.sendall(reply)
            conn.stray_sent = True

    def close(self) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _reply(status: int, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    reason = b"OK" if status == 200 else b"Bad Request"
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status,
        reason,
        len(body),
        body,
    )


@contextlib.contextmanager
def stray_server(**options: object) -> Iterator[StrayServer]:
    running = StrayServer(**options)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.close()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_stray_reply_never_puts_an_outcome_on_the_wrong_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    count = 8
    make(tmp_path, count=count, concurrency=concurrency)
    with stray_server(echo=frozenset({2, 5}), rejected=frozenset({text(6)})) as server:
        use(monkeypatch, server.url)
        apply(tmp_path)
        apply(tmp_path)  # a re-run sends nothing held, and nothing twice
        stored, connections = dict(server.stored), list(server.connections)
    final = states(tmp_path)
    for n in range(count):
        state = final[key(n)]
        if state.status is KeyStatus.SENT:  # only ever with its own object's id
            assert state.object_id == stored.get(text(n)), (key(n), state.object_id)
        elif state.status is KeyStatus.FAILED:  # only when the server did not store it
            assert text(n) not in stored, f"{key(n)} was stored but recorded failed"
        else:
            assert state.status is KeyStatus.UNKNOWN, (key(n), state)
    assert final[key(6)].status in (KeyStatus.FAILED, KeyStatus.UNKNOWN)
    # The request that read a stray copy is the last one its connection carried.
    assert all(c.after_stray <= 1 for c in connections), connections
    # At least one stray copy was read, and caught, as out of step.
    assert any("out of step" in str(s.description) for s in final.values())


def test_ledger_list_names_no_object_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After stray replies, every object id in the ledger belongs to one key only."""
    make(tmp_path, count=6, concurrency=1)
    with stray_server(echo=frozenset({1, 3})) as server:
        use(monkeypatch, server.url)
        apply(tmp_path)
    ids = [s.object_id for s in states(tmp_path).values() if s.object_id is not None]
    assert ids
    assert len(ids) == len(set(ids))
    assert main(["-C", str(tmp_path), "ledger", "list"]) == 0


@pytest.mark.usefixtures("env")
def test_only_an_apply_or_reconcile_reads_every_object_id(
    tmp_path: Path, server: SandboxServer
) -> None:
    """A plan over a long ledger must not hold every id it ever recorded (a 1,000,000-event
    ledger held 116 MB for them); an apply asks for them, for the stray-reply rule."""

    make(tmp_path, count=3)
    assert apply(tmp_path) == 0
    ledger = Ledger(ledger_path(tmp_path), "ledger.jsonl")
    assert ledger.read().object_ids == {}
    ids = ledger.read(object_ids=True).object_ids
    assert sorted(ids.values()) == [key(n) for n in range(3)]
    assert set(ids) == {str(s.object_id) for s in states(tmp_path).values()}
