"""The paths every send takes: the ledger's group commit and the client's requests.

Real files under tmp_path, real sockets to small servers on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from commbox_yaml.client import Client, ClientSettings, ReplyLost
from commbox_yaml.connections import TrackedHTTPConnection
from commbox_yaml.ledger import Ledger
from commbox_yaml.ledger.appender import Appender, AppendFailed
from tests.sending import apply, events, file_ledger, ledger_path, read_request
from tests.test_apply_faults import key, make, text, use

# -- the ledger ---------------------------------------------------------------------------------


def _keys(ledger: Ledger) -> list[str]:
    return [json.loads(line)["key"] for line in ledger.path.read_text().splitlines()]


def test_an_outcome_queued_without_waiting_goes_to_disk_with_the_next_claim(
    tmp_path: Path,
) -> None:
    ledger = file_ledger(tmp_path)
    with ledger.locked():
        durable = ledger.append_later({"event": "sent", "key": "a", "object_id": 1})
        assert _keys(ledger) == [], "nothing waits for it: it waits for the next write"
        ledger.append({"event": "pending", "key": "b"})
        assert _keys(ledger) == ["a", "b"]
        durable()  # already on disk: returns at once


def test_waiting_for_a_queued_outcome_writes_it(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    with ledger.locked():
        durable = ledger.append_later({"event": "sent", "key": "a", "object_id": 1})
        durable()
        assert _keys(ledger) == ["a"]


def test_closing_the_ledger_writes_what_is_queued(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    with ledger.locked():
        ledger.append_later({"event": "sent", "key": "a", "object_id": 1})
    assert _keys(ledger) == ["a"]


def test_senders_claims_and_outcomes_keep_their_order_and_are_on_disk_when_returned(
    tmp_path: Path,
) -> None:
    """16 threads, each: the last reply's outcome queued, then the next claim written. A claim
    returns only with its line and the outcome before it on disk, whoever wrote them."""
    ledger = file_ledger(tmp_path)
    problems: list[str] = []

    def sender(number: int) -> None:
        durable: Callable[[], None] | None = None
        for n in range(30):
            key = f"s{number}-{n}"
            ledger.append({"event": "pending", "key": key})
            text = ledger.path.read_text()
            if f'"key":"{key}"' not in text:
                problems.append(f"{key}: claim returned before it was written")
            if n and f'"key":"s{number}-{n - 1}","object_id"' not in text:
                problems.append(f"{key}: the outcome before it is not on disk")
            if durable is not None:
                durable()
            durable = ledger.append_later({"event": "sent", "key": key, "object_id": n})
        assert durable is not None
        durable()

    with ledger.locked():
        threads = [threading.Thread(target=sender, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert problems == []
    events = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    assert len(events) == 16 * 30 * 2
    for number in range(16):
        mine = [(e["event"], e["key"]) for e in events if e["key"].startswith(f"s{number}-")]
        expected = [(kind, f"s{number}-{n}") for n in range(30) for kind in ("pending", "sent")]
        assert mine == expected


def test_a_failed_write_fails_its_line_and_every_line_after_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)  # every write fails (EBADF), as on a broken disk
    appender = Appender(fd, 0, synced=False)
    try:
        with pytest.raises(AppendFailed):
            appender.append(b'{"key":"a"}\n')
        with pytest.raises(AppendFailed):
            appender.put(b'{"key":"b"}\n')
        with pytest.raises(AppendFailed):
            appender.append(b'{"key":"c"}\n')
    finally:
        appender.close()
        os.close(fd)
    assert path.read_bytes() == b""


# -- the client ---------------------------------------------------------------------------------


class _Server:
    """One-thread HTTP/1.1 server on a raw socket: `answer(request)` gives the reply bytes,
    or None to read the request and never answer."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            while True:
                request = read_request(conn)
                if b"\r\n\r\n" not in request:  # closed before a whole request
                    return
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    time.sleep(30)
                    return
                conn.sendall(reply)

    def close(self) -> None:
        self.listener.close()
        for conn in self._open:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


_ids = itertools.count(7)


def _ok(request: bytes) -> bytes:
    body = b'{"data": {"Id": %d}}' % next(_ids)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@contextmanager
def _server(answer: Callable[[bytes], bytes | None]) -> Iterator[_Server]:
    server = _Server(answer)
    try:
        yield server
    finally:
        server.close()


def _client(url: str, timeout_s: float = 5) -> Client:
    return Client(ClientSettings(url, "secret-token", timeout_s, 2, environ={}))


def test_a_post_goes_under_the_base_urls_path_and_reuses_its_connection() -> None:
    with _server(_ok) as server:
        client = _client(f"http://127.0.0.1:{server.port}/api/v2")
        try:
            for n in range(3):
                reply = client.post("/streams/s 1/objects", b'{"n": %d}' % n, "application/json")
                assert reply.status == 200
                assert json.loads(reply.body)["data"]["Id"] >= 7
                assert reply.headers.get("content-type") == "application/json"
        finally:
            client.close()
    lines = [r.split(b"\r\n", 1)[0] for r in server.requests]
    assert lines == [b"POST /api/v2/streams/s%201/objects HTTP/1.1"] * 3
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in server.requests] == [
        b'{"n": 0}',
        b'{"n": 1}',
        b'{"n": 2}',
    ]
    assert len(server._open) == 1, "each request opened a connection of its own"


def test_a_connected_socket_keeps_its_timeout_and_the_deadline_ends_a_silent_reply() -> None:
    with _server(lambda request: None) as server:
        conn = TrackedHTTPConnection("127.0.0.1", server.port, timeout=7)
        conn.connect()
        try:
            # urllib3's timeouts stay as the backstop: a socket never blocks without one
            assert conn.sock.gettimeout() == 7
            assert conn.made_sock is conn.sock
        finally:
            conn.close()
        client = _client(f"http://127.0.0.1:{server.port}", timeout_s=0.5)
        started = time.monotonic()
        try:
            with pytest.raises(ReplyLost, match=r"no reply within 0.5 s"):
                client.post("/o", b"{}", "application/json")
        finally:
            client.close()
    assert time.monotonic() - started < 5


def test_every_request_finds_its_claim_already_in_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is written while the request is prepared: the server, reading the ledger when
    the request arrives, must find that key's `pending` there every time."""
    count = 60
    root = make(tmp_path, count=count, concurrency=8)
    texts = {text(n): key(n) for n in range(count)}
    early: list[str] = []

    def answer(request: bytes) -> bytes:
        message = json.loads(request.rsplit(b"\r\n\r\n", 1)[1])["data"]["Message"]
        claimed = {
            (event["event"], event["key"])
            for event in (json.loads(line) for line in ledger_path(root).read_text().splitlines())
        }
        if ("pending", texts[message]) not in claimed:
            early.append(texts[message])
        return _ok(request)

    with _server(answer) as server:
        use(monkeypatch, f"http://127.0.0.1:{server.port}")
        assert apply(root) == 0
    assert len(server.requests) == count
    assert early == [], f"requests left before their claim was on disk: {early[:5]}"
    kinds = [(e["event"], e["key"]) for e in events(root)]
    for n in range(count):
        assert kinds.index(("pending", key(n))) < kinds.index(("sent", key(n)))
