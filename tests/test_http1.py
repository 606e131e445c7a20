"""The kept-alive path of a POST (commbox_yaml.http1): the first request on a connection goes
through urllib3, the ones after it are written and read here. Every test runs a real server on
127.0.0.1 that answers each request on a connection from a script, so both paths meet the same
bytes: where a reply can be read either way, the two readings must be the same."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from commbox_yaml import http1
from commbox_yaml.client import Client, ClientSettings, Reply, ReplyLost
from commbox_yaml.sandbox import SandboxServer
from tests.sending import RawServer, raw_server, read_request, self_signed

PATH = "/streams/5fd0c1/objects"
BODY = b'{"data": {"Type": 4}}'
ID = b'{"data": {"id": 7}}'


def ok(body: bytes = ID, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


Step = bytes | Callable[[socket.socket], None]  # a reply, or what to do instead of one


class Script:
    """Answers the requests of every connection in turn, from one list of steps; a step that
    is a function ends the connection after it runs."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.connections = 0

    def __call__(self, sock: socket.socket, received: list[bytes]) -> None:
        self.connections += 1
        while self.steps:
            request = read_request(sock)
            if not request:
                return  # the client closed the connection
            received.append(request)
            step = self.steps.pop(0)
            if not isinstance(step, bytes):
                step(sock)
                return
            sock.sendall(step)


def then_close(data: bytes) -> Callable[[socket.socket], None]:
    def step(sock: socket.socket) -> None:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sock.recv(1)

    return step


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def silent(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.settimeout(10)
        sock.recv(1)  # until the client gives up and closes


@contextlib.contextmanager
def serving(script: Script, timeout_s: float = 5) -> Iterator[tuple[Client, RawServer]]:
    with raw_server(script) as server:
        client = Client(ClientSettings(server.url + "/api", "tok", timeout_s, concurrency=1))
        try:
            yield client, server
        finally:
            client.close()


def post(client: Client) -> Reply:
    return client.post(PATH, BODY, "application/json")


def same(reply: Reply) -> tuple[int, str, bytes, list[tuple[str, str]]]:
    return reply.status, reply.reason, reply.body, sorted(reply.headers.items())


# -- the request ---------------------------------------------------------------------------------


def test_a_kept_alive_connection_carries_the_next_requests_byte_for_byte() -> None:
    script = Script(ok(), ok(), ok())
    with serving(script) as (client, server):
        replies = [post(client) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 200]
    assert all(r.body == ID for r in replies)
    assert script.connections == 1
    first, *later = server.received
    assert first.startswith(b"POST /api/streams/5fd0c1/objects HTTP/1.1\r\n")
    assert b"Authorization: Bearer tok\r\n" in first
    assert later == [first, first], "the kept-alive path wrote other bytes than urllib3"


@pytest.mark.parametrize(
    ("host", "port", "default", "header"),
    [
        ("api.commbox.io", 443, 443, "api.commbox.io"),
        ("api.commbox.io", 8443, 443, "api.commbox.io:8443"),
        ("127.0.0.1", 4010, 80, "127.0.0.1:4010"),
        ("::1", 4010, 80, "[::1]:4010"),
        ("::1", 80, 80, "[::1]"),
        ("bücher.example", 443, 443, "xn--bcher-kva.example"),
    ],
)
def test_the_host_header_is_the_one_http_client_writes(
    host: str, port: int, default: int, header: str
) -> None:
    assert http1.host_header(host, port, default) == header


# -- replies read the same on both paths ---------------------------------------------------------


def _chunked(*parts: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x;n=1\r\n%s\r\n" % (len(p), p) for p in parts)
    return (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r1\r\n\r\n"
        + body
        + b"0\r\n"
        + trailer
        + b"\r\n"
    )


def _coded(coding: bytes, data: bytes) -> bytes:
    return ok(data, b"Content-Encoding: " + coding + b"\r\n")


GZ = gzip.compress(ID)
DEFLATE_RAW = zlib.compressobj(wbits=-zlib.MAX_WBITS)
RAW_DEFLATED = DEFLATE_RAW.compress(ID) + DEFLATE_RAW.flush()

SHAPES = {
    "content-length": ok(),
    "chunked, extensions and a trailer": _chunked(ID[:5], ID[5:], trailer=b"X-T: 1\r\n"),
    "100 continue first": b"HTTP/1.1 100 Continue\r\n\r\n" + ok(),
    "gzip": _coded(b"gzip", gzip.compress(ID)),
    "gzip in chunks": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (GZ[:9], GZ[9:]))
        + b"0\r\n\r\n"
    ),
    "deflate": _coded(b"deflate", zlib.compress(ID)),
    "raw deflate": _coded(b"deflate", RAW_DEFLATED),
    "an unknown coding is left as it came": _coded(b"compress", b"\x1f\x9d..."),
    "repeated headers": ok(extra=b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"),
    "no reason phrase": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
    "204 without a body": b"HTTP/1.1 204 No Content\r\n\r\n",
    "429 with Retry-After": b"HTTP/1.1 429 Too Many\r\nretry-after: 3\r\nContent-Length: 0\r\n\r\n",
    "an empty JSON reply": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.0 kept alive": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}"
    ),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_a_reply_reads_the_same_through_urllib3_and_kept_alive(shape: bytes) -> None:
    script = Script(shape, shape)
    with serving(script) as (client, _):
        through_urllib3, kept_alive = post(client), post(client)
    assert script.connections == 1
    assert same(kept_alive) == same(through_urllib3)


def test_headers_are_looked_up_without_regard_to_case() -> None:
    with serving(Script(ok(), SHAPES["429 with Retry-After"])) as (client, _):
        post(client)
        reply = post(client)
    assert reply.status == 429
    assert reply.headers.get("Retry-After") == reply.headers.get("retry-after") == "3"


def test_a_folded_header_is_joined_with_a_space() -> None:
    with serving(Script(ok(), ok(extra=b"X-Note: one\r\n  two\r\n"))) as (client, _):
        post(client)
        assert post(client).headers["x-note"] == "one two"


# -- when the connection is not used again -------------------------------------------------------

ENDS = {
    "read to the end of the connection": then_close(b"HTTP/1.1 200 OK\r\n\r\n" + ID),
    "Connection: close": ok(extra=b"Connection: close\r\n"),
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ID), ID),
    "bytes after the reply": ok() + b"HTTP/1.1 200 OK\r\n",
    "switching protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "chunked beside a Content-Length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(ID), ID)
    ),
}


@pytest.mark.parametrize("end", ENDS.values(), ids=ENDS.keys())
def test_a_reply_that_ends_the_connection_is_read_and_the_next_request_opens_one(
    end: Step,
) -> None:
    script = Script(ok(), end, ok())
    with serving(script) as (client, _):
        post(client)
        reply = post(client)
        assert post(client).body == ID
    if reply.status == 200:
        assert reply.body == ID
    assert script.connections == 2


# -- trouble after the request went out: unknown -------------------------------------------------

MIB = 1024 * 1024
LOST = "connection dropped after the request was sent"
TOO_LONG = "the reply was longer than 1024 KiB; it was not read to the end"

TROUBLE: dict[str, tuple[Step, str]] = {
    "closed without a reply": (then_close(b""), LOST),
    "reset": (reset, LOST),
    "not HTTP": (then_close(b"HELLO THERE\r\n\r\n"), LOST),
    "a bad status code": (then_close(b"HTTP/1.1 2000 OK\r\n\r\n"), LOST),
    "closed inside the headers": (then_close(b"HTTP/1.1 200 OK\r\nContent-Le"), LOST),
    "body cut short": (then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"), LOST),
    "chunk cut short": (
        then_close(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{"data"'),
        LOST,
    ),
    "a bad chunk size": (
        then_close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        LOST,
    ),
    "a bad Content-Length": (then_close(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"), LOST),
    "two Content-Lengths": (
        then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        LOST,
    ),
    "a malformed header": (then_close(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), LOST),
    "101 headers": (
        then_close(b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n"),
        LOST,
    ),
    "a 70 KB header line": (then_close(b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70000), LOST),
    "corrupt gzip": (then_close(_coded(b"gzip", b"not gzip at all")), LOST),
    "Content-Length over the cap": (
        then_close(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * MIB)),
        TOO_LONG,
    ),
    "chunks over the cap": (
        then_close(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (MIB, b"x" * MIB) * 2
        ),
        TOO_LONG,
    ),
    "one chunk over the cap": (
        then_close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (2 * MIB)),
        TOO_LONG,
    ),
    "read to the end, over the cap": (
        then_close(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MIB + 10)),
        TOO_LONG,
    ),
    "gzip that inflates over the cap": (
        then_close(_coded(b"gzip", gzip.compress(b"\0" * (2 * MIB)))),
        TOO_LONG,
    ),
}


@pytest.mark.parametrize(("step", "reason"), TROUBLE.values(), ids=TROUBLE.keys())
def test_trouble_with_a_kept_alive_reply_is_a_lost_reply(step: Step, reason: str) -> None:
    script = Script(ok(), step, ok())
    with serving(script) as (client, server):
        post(client)
        with pytest.raises(ReplyLost) as lost:
            post(client)
        assert reason in lost.value.reason
        assert len(server.received) == 2, "the request did not reach the server"
        assert post(client).body == ID  # on a new connection
    assert script.connections == 2


def test_a_kept_alive_reply_that_never_comes_ends_at_the_deadline() -> None:
    script = Script(ok(), silent)
    with serving(script, timeout_s=0.3) as (client, _):
        post(client)
        started = time.monotonic()
        with pytest.raises(ReplyLost) as lost:
            post(client)
        waited = time.monotonic() - started
    assert lost.value.reason == "no reply within 0.3 s (api.timeout_s)"
    assert 0.25 < waited < 3


# -- TLS -----------------------------------------------------------------------------------------


def test_requests_after_the_first_go_over_the_same_tls_connection(tmp_path: Path) -> None:
    cert, key_file = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key_file)
    script = Script(ok(), _chunked(ID[:4], ID[4:]), ok(b'{"data": {"Id": 9}}'))

    def handler(sock: socket.socket, received: list[bytes]) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            script(tls, received)

    with raw_server(handler) as server:
        url = server.url.replace("http:", "https:")
        client = Client(ClientSettings(url, "tok", 5, 1, environ={"SSL_CERT_FILE": str(cert)}))
        try:
            replies = [post(client) for _ in range(3)]
        finally:
            client.close()
    assert [r.body for r in replies] == [ID, ID, b'{"data": {"Id": 9}}']
    assert [r.status for r in replies] == [200, 201, 200]
    assert script.connections == 1


# -- the sandbox reads both paths alike ----------------------------------------------------------


def test_the_sandbox_takes_kept_alive_requests_as_it_takes_the_first(
    server: SandboxServer,
) -> None:
    sms = {"Type": 4, "StatusId": 1, "StreamProviderType": 5, "UserStreamProviderType": 5,
           "UserStreamProviderId": "972500000001", "ManagerId": 36197, "Message": "Hi",
           "User": {"UniqueId": "c1", "Phone1": "972500000001"}}  # fmt: skip
    body = json.dumps({"data": sms}).encode()
    client = Client(ClientSettings(server.url, "tok", 5, concurrency=1))
    try:
        replies = [client.post(PATH, body, "application/json") for _ in range(4)]
    finally:
        client.close()
    assert [r.status for r in replies] == [200] * 4
    ids = [json.loads(r.body)["data"]["id"] for r in replies]
    assert len(set(ids)) == 4
    first, *later = server.received
    assert all(r.headers == first.headers and r.data == first.data for r in later)
    assert first.headers["user-agent"].startswith("commbox-yaml/")
