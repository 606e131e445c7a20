"""One HTTP/1.1 exchange on a connection that is already open: the request written in one
send, the reply read straight from the socket.

This is the path every apply request takes once its keep-alive connection is up (urllib3 opens
the connection: TCP, TLS and its checks, and it answers every request a connection is opened
for). A POST through urllib3 and http.client takes 350-420 µs of CPU in Python on a 2-CPU
machine (header checks, the email parser for the reply's headers, three layers of response
objects), and 32 senders queue for the interpreter lock on it; here it takes about 95 µs.

The reader follows RFC 9112 for what CommBox (or a proxy in front of it) may answer: 1xx
replies skipped, a body framed by chunked transfer coding, Content-Length or the end of the
connection, gzip or deflate content coding undone, the reply capped. Anything malformed is a
`ProtocolError`, as urllib3 raises it, so the caller classifies both paths alike.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import (
    HTTPException,
    IncompleteRead,
    LineTooLong,
    RemoteDisconnected,
)
from typing import Any

from urllib3 import HTTPHeaderDict
from urllib3.exceptions import ProtocolError

MAX_LINE = 65536  # http.client's limits: a longer line or more headers is not a reply
MAX_HEADERS = 100
_READ = 65536


class TooLong(Exception):
    """The reply body is longer than the cap; it was not read to the end."""


class BadReply(HTTPException):
    """Not an HTTP/1.x reply, or one whose framing cannot be trusted."""


def request_head(
    method: str, target: str, host: str, headers: dict[str, str], length: int
) -> bytes:
    """The header block http.client writes for these arguments, in its order."""
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}",
        "Accept-Encoding: identity",
        f"Content-Length: {length}",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def host_header(host: str, port: int | None, default_port: int) -> str:
    """The Host header http.client sends for a connection to host:port."""
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or port == default_port else f"{host}:{port}"


@dataclass(frozen=True)
class Reply:
    """A whole reply, read by either path; its headers are urllib3's HTTPHeaderDict on both
    (names looked up without regard to case)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


def exchange(sock: Any, request: bytes, cap: int) -> tuple[Reply, bool]:
    """Send `request` whole and read its reply; the body is at most `cap` bytes (decoded).
    With the reply, whether the connection is at the start of the next one (reusable).

    Raises OSError from the socket, ProtocolError for a reply that is not one, TooLong.
    """
    sock.sendall(request)
    return _Reader(sock).reply(cap)


class _Reader:
    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._eof = False

    def reply(self, cap: int) -> tuple[Reply, bool]:
        try:
            while True:
                version, status, reason = self._status_line()
                headers = self._headers()
                if status < 200 and status != 101:
                    continue  # 100 Continue, 103 Early Hints: the reply follows
                return self._finish(version, status, reason, headers, cap)
        except (HTTPException, OSError) as exc:
            raise ProtocolError("Connection aborted.", exc) from exc

    # -- the head ---------------------------------------------------------------------------

    def _status_line(self) -> tuple[int, int, str]:
        line = self._line()
        if line is None:
            raise RemoteDisconnected("Remote end closed connection without response")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        parts = text.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise BadReply(f"not an HTTP/1.x status line: {text[:80]!r}")
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 999:
            raise BadReply(f"bad status code in {text[:80]!r}")
        minor = parts[0][len("HTTP/1.") :]
        return (11 if minor != "0" else 10), int(code), parts[2] if len(parts) > 2 else ""

    def _headers(self) -> HTTPHeaderDict:
        fields: list[list[str]] = []
        while True:
            line = self._line()
            if line is None:
                raise BadReply("the connection closed inside the reply's headers")
            if line in (b"\r\n", b"\n"):
                break
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and fields:  # obsolete line folding
                fields[-1][1] += " " + text.strip(" \t")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                raise BadReply(f"malformed header line {text[:80]!r}")
            if len(fields) == MAX_HEADERS:
                raise HTTPException(f"got more than {MAX_HEADERS} headers")
            fields.append([name, value.strip(" \t")])
        headers = HTTPHeaderDict()
        for name, value in fields:
            headers.add(name, value)
        return headers

    # -- the body ---------------------------------------------------------------------------

    def _finish(
        self, version: int, status: int, reason: str, headers: HTTPHeaderDict, cap: int
    ) -> tuple[Reply, bool]:
        tokens = {t.strip().lower() for t in ",".join(headers.getlist("connection")).split(",")}
        keep = "keep-alive" in tokens if version == 10 else "close" not in tokens
        coding = _Decoder.for_header(headers.get("content-encoding"), cap)
        transfer = headers.get("transfer-encoding")
        if status in (204, 304):
            body, framed = b"", True
        elif status == 101:  # the connection is no longer HTTP
            body, framed = b"", False
        elif transfer is not None and transfer.split(",")[-1].strip().lower() == "chunked":
            body = self._chunked(coding, cap)
            # With a Content-Length beside it (RFC 9112, 6.3) the connection is not used again.
            framed = "content-length" not in headers
        elif transfer is not None:  # another coding last: the body ends with the connection
            body, framed = self._rest(coding), False
        else:
            length = _content_length(headers)
            if length is None:
                body, framed = self._rest(coding), False
            else:
                if length > cap:  # coded or not: held back, not read
                    raise TooLong
                body, framed = self._exactly(length, coding), True
        body += coding.flush()
        return Reply(status, reason, headers, body), keep and framed and not self._buf

    def _exactly(self, length: int, coding: _Decoder) -> bytes:
        while len(self._buf) < length:
            if not self._fill():
                got = len(self._buf)
                raise IncompleteRead(self._buf, length - got)
        data, self._buf = self._buf[:length], self._buf[length:]
        return coding.feed(data)

    def _rest(self, coding: _Decoder) -> bytes:
        parts = [coding.feed(self._buf)]
        self._buf = b""
        while self._fill():
            parts.append(coding.feed(self._buf))
            self._buf = b""
        return b"".join(parts)

    def _chunked(self, coding: _Decoder, cap: int) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self._line()
            if line is None:
                raise IncompleteRead(b"".join(parts))
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadReply(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise BadReply(f"bad chunk size {size_text[:20]!r}")
            if size > cap:
                raise TooLong
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self._line()
                    if trailer is None or trailer in (b"\r\n", b"\n"):
                        return b"".join(parts)
            parts.append(self._exactly(size, coding))
            if self._line() not in (b"\r\n", b"\n"):
                raise BadReply("a chunk does not end with CRLF")

    # -- the socket -------------------------------------------------------------------------

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._sock.recv(_READ)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _line(self) -> bytes | None:
        """The next line with its line end; None at the end of the connection."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                if end >= MAX_LINE:
                    raise LineTooLong("header line")
                line, self._buf = self._buf[: end + 1], self._buf[end + 1 :]
                return line
            if len(self._buf) > MAX_LINE:
                raise LineTooLong("header line")
            start = len(self._buf)
            if not self._fill():
                if self._buf:
                    raise IncompleteRead(self._buf)
                return None


def _content_length(headers: HTTPHeaderDict) -> int | None:
    values = {v.strip() for field in headers.getlist("content-length") for v in field.split(",")}
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() for v in values):
        raise BadReply(f"invalid Content-Length {sorted(values)!r}")
    return int(values.pop())


class _Decoder:
    """Undoes a gzip or deflate content coding; counts the decoded size against the cap.
    Any other coding is left as it came (as urllib3 leaves it)."""

    def __init__(self, kind: str | None, cap: int) -> None:
        self._kind = kind
        self._cap = cap
        self._size = 0
        self._first = True
        self._zlib: Any = None
        if kind == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif kind == "deflate":
            self._zlib = zlib.decompressobj()

    @classmethod
    def for_header(cls, value: str | None, cap: int) -> _Decoder:
        coding = (value or "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            return cls("gzip", cap)
        if coding == "deflate":
            return cls("deflate", cap)
        return cls(None, cap)

    def feed(self, data: bytes) -> bytes:
        if self._zlib is not None and data:
            data = self._inflate(data)
        return self._count(data)

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        rest: bytes = self._zlib.flush()
        return self._count(rest)

    def _inflate(self, data: bytes) -> bytes:
        try:
            out: bytes = self._zlib.decompress(data, self._cap + 1 - self._size)
        except zlib.error:
            if self._kind == "deflate" and self._first:  # raw deflate, without the zlib header
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._first = False
                return self._inflate(data)
            raise BadReply(f"the reply's {self._kind} content coding is corrupt") from None
        self._first = False
        if self._zlib.unconsumed_tail:
            raise TooLong
        return out

    def _count(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size > self._cap:
            raise TooLong
        return data
