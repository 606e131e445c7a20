"""One HTTP stack: every request through urllib3's public API, and deadlines that hold on every
path, whatever the reply's framing.

Real sockets to raw servers on 127.0.0.1 that answer exactly the bytes each case needs; real
processes for the signals.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.sending import apply, events, raw_server, read_request, spawn, wait_until
from tests.test_apply_faults import TOKEN, key, make, states, text, use

# -- replies whose body stalls or trickles, in every framing --------------------------------------

BODY = b'{"data": {"id": 41}}'

# The head of a reply whose body will not arrive whole: each framing that http.client hands
# the socket to the reply for (it sets the connection's `sock` to None), and plain keep-alive.
HEADS = {
    "connection-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 40\r\n\r\n",
    "http-1.0": b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
    "no-length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
    "length-17-17": b"HTTP/1.1 200 OK\r\nContent-Length: 17, 17\r\n\r\n",
    "keep-alive": b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n",
}


def _stall(head: bytes) -> Callable[[socket.socket, list[bytes]], None]:
    """Send the head and the body's first bytes, then nothing until the client gives up."""

    def handler(sock: socket.socket, received: list[bytes]) -> None:
        received.append(read_request(sock))
        sock.sendall(head + BODY[:5])
        sock.settimeout(30)
        sock.recv(1)  # returns when the client shuts the connection

    return handler


def _trickle(head: bytes) -> Callable[[socket.socket, list[bytes]], None]:
    """Send the head, then a byte of body every 0.1 s: each read is inside urllib3's timeout,
    so only the whole-reply deadline can end it."""

    def handler(sock: socket.socket, received: list[bytes]) -> None:
        received.append(read_request(sock))
        sock.sendall(head)
        for _ in range(600):
            sock.sendall(b" ")
            time.sleep(0.1)

    return handler


@pytest.mark.parametrize("framing", HEADS)
@pytest.mark.parametrize("serve", [_stall, _trickle], ids=["stalled", "trickled"])
def test_a_reply_body_that_never_ends_is_unknown_by_the_deadline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    framing: str,
    serve: Callable[[bytes], Callable[[socket.socket, list[bytes]], None]],
) -> None:
    make(tmp_path, count=1, timeout=1)
    with raw_server(serve(HEADS[framing])) as server:
        use(monkeypatch, server.url)
        started = time.monotonic()
        assert apply(tmp_path) == 1
        elapsed = time.monotonic() - started
    assert elapsed < 4, f"apply took {elapsed:.1f} s against a 1 s deadline ({framing})"
    final = states(tmp_path)[key(0)]
    assert final.status is KeyStatus.UNKNOWN
    assert "no reply within 1 s" in str(final.description)
    assert len(server.received) == 1


@pytest.mark.parametrize("framing", ["connection-close", "http-1.0", "no-length", "length-17-17"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_stalled_body_ends_apply_by_the_deadline(
    tmp_path: Path, framing: str, signum: signal.Signals
) -> None:
    make(tmp_path, count=3, timeout=2, concurrency=1)
    with raw_server(_stall(HEADS[framing])) as server:
        child = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
        try:
            wait_until(lambda: len(server.received) >= 1)
            time.sleep(0.3)
            signalled = time.monotonic()
            child.send_signal(signum)
            out, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        waited = time.monotonic() - signalled
    assert child.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], err
    assert waited < 5, f"{signum.name} took {waited:.1f} s with a 2 s deadline ({framing})"
    assert "Apply stopped:" in out
    assert [e["event"] for e in events(tmp_path)] == ["pending", "unknown"]
    assert states(tmp_path)[key(0)].status is KeyStatus.UNKNOWN  # held '?'
    assert len(server.received) == 1


# -- odd framings: one unknown (or a sent, as urllib3 reads it), never a crash ----------------


def _ok(number: int) -> bytes:
    body = json.dumps({"data": {"id": 700 + number}}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


ODD = {
    # byte 0xB2 is "²" in ISO-8859-1, as HTTP headers are read: it passes str.isdigit(), so only
    # a careless parser takes it for a length or a status
    "superscript-length": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n" + BODY,
    "superscript-status": b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 20\r\n\r\n" + BODY,
    "negative-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"-5\r\nabcde\r\n0\r\n\r\n",
    "chunk-size-not-hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "vertical-tab-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \x0bchunked\r\n"
    b"Content-Length: 20\r\n\r\n" + BODY,
    "two-gzip-members": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n"
    b"\r\n\x1f\x8b\x08\x00",
    "bare-cr-in-header": b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 20\r\n\r\n" + BODY,
    "garbage": b"\x00\x01\x02 not http at all\r\n\r\n",
}


def _odd_reply(reply: bytes, which: int) -> Callable[[socket.socket, list[bytes]], None]:
    """Request number `which` gets the odd reply (the first opens a connection; the second
    comes on the first one's kept-alive connection), and its connection is closed; every other
    request gets a normal 200 with an id of its own."""

    def handler(sock: socket.socket, received: list[bytes]) -> None:
        while True:
            request = read_request(sock)
            if b"\r\n\r\n" not in request:
                return
            received.append(request)
            if len(received) == which:
                sock.sendall(reply)
                return
            sock.sendall(_ok(len(received)))

    return handler


@pytest.mark.parametrize("odd", ODD)
@pytest.mark.parametrize("which", [1, 2], ids=["new-connection", "kept-alive"])
def test_an_odd_reply_is_one_outcome_and_the_other_messages_are_still_sent(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    odd: str,
    which: int,
) -> None:
    make(tmp_path, count=3, concurrency=1, timeout=2)
    with raw_server(_odd_reply(ODD[odd], which)) as server:
        use(monkeypatch, server.url)
        code = apply(tmp_path)
    out, err = capsys.readouterr()
    assert "internal error" not in out + err
    assert "this is a bug" not in out + err
    assert len(server.received) == 3, "apply stopped after the odd reply"
    final = states(tmp_path)
    odd_one = next(n for n in range(3) if text(n).encode() in server.received[which - 1])
    status = final[key(odd_one)].status
    assert status in (KeyStatus.UNKNOWN, KeyStatus.SENT), final[key(odd_one)]
    others = [final[key(n)] for n in range(3) if n != odd_one]
    assert [s.status for s in others] == [KeyStatus.SENT, KeyStatus.SENT]
    assert code == (1 if status is KeyStatus.UNKNOWN else 0)


# -- plain http never goes through a proxy --------------------------------------------------------


def test_plain_http_to_this_machine_never_goes_through_a_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_saw: list[bytes] = []

    def proxy(sock: socket.socket, received: list[bytes]) -> None:
        proxy_saw.append(read_request(sock))

    def commbox(sock: socket.socket, received: list[bytes]) -> None:
        received.append(read_request(sock))
        sock.sendall(_ok(1))

    make(tmp_path, count=1)
    with raw_server(proxy) as fake_proxy, raw_server(commbox) as server:
        port = server.url.rsplit(":", 1)[1]
        use(monkeypatch, f"http://localhost:{port}")
        monkeypatch.setenv("HTTP_PROXY", fake_proxy.url)
        monkeypatch.setenv("http_proxy", fake_proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert apply(tmp_path) == 0
    assert proxy_saw == [], "the token went to a proxy in clear"
    assert len(server.received) == 1
    assert states(tmp_path)[key(0)].status is KeyStatus.SENT


# -- no client module reads or writes a socket, or calls urllib3's private methods --------------


def test_the_client_uses_urllib3s_public_api_only() -> None:
    package = Path(__file__).resolve().parent.parent / "commbox_yaml"
    assert not (package / "http1.py").exists()
    private = ("._get_conn", "._put_conn", "._new_conn", "._make_request", "._validate_conn")
    raw = (".sendall(", ".recv(", ".recv_into(", ".makefile(")
    for module in package.rglob("*.py"):
        if "sandbox" in module.relative_to(package).parts:
            continue  # the sandbox is a server, not a client module
        source = module.read_text()
        for name in private + raw:
            assert name not in source, f"{module.name} uses {name}"


# -- reconcile reads through the same client: an odd reply there is a reason to hold -----------


@pytest.mark.parametrize("odd", ["negative-chunk", "superscript-status", "garbage"])
def test_an_odd_reply_to_a_read_keeps_the_key_held_and_reconcile_runs_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    odd: str,
) -> None:
    make(tmp_path, count=1)
    with SandboxServer() as sandbox:
        use(monkeypatch, sandbox.url)
        sandbox.script(Fault(drop=True))
        assert apply(tmp_path) == 1
    assert states(tmp_path)[key(0)].status is KeyStatus.UNKNOWN

    def reads(sock: socket.socket, received: list[bytes]) -> None:
        received.append(read_request(sock))
        sock.sendall(ODD[odd])

    with raw_server(reads) as server:
        use(monkeypatch, server.url)
        capsys.readouterr()
        assert main(["-C", str(tmp_path), "reconcile"]) == 0
        out, err = capsys.readouterr()
    assert server.received, "reconcile read nothing"
    assert "internal error" not in out + err
    assert "this is a bug" not in out + err
    assert "could not be read" in out + err or "dropped" in out + err, out + err
    assert states(tmp_path)[key(0)].status is KeyStatus.UNKNOWN
