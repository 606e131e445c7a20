"""A local stand-in for CommBox's Create Object endpoint, for rehearsals and tests.

`SandboxServer` is a real threaded HTTP/1.1 server on 127.0.0.1 that answers
`POST /streams/{STREAM_ID}/objects` the way the reference describes: it checks the Bearer token
and the body's shape, answers 200 with `data.id` (or 400/401/404/405 with
`status`/`description`/`response_time`), and records every request it received. Faults can be
injected periodically (latency, 429 with Retry-After, 5xx, dropped connections) or scripted one
request at a time with `Fault`, so a client's retry and "unknown outcome" paths can be exercised
over real sockets.

Multipart bodies are parsed with the standard library's `email` package on purpose: the client
builds them with urllib3, and a sandbox using the same library would hide its mistakes.
"""

from __future__ import annotations

import contextlib
import email.policy
import hmac
import json
import re
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO, cast
from urllib.parse import unquote, urlsplit

from commbox_yaml import __version__

FIRST_ID = 294159  # the id in the reference's 200 example
HOST = "127.0.0.1"
MAX_BODY_BYTES = 256 * 1024 * 1024  # far above any attachment limit; keeps a runaway client sane

_OBJECTS_PATH = re.compile(r"/streams/([^/]+)/objects")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized access",
    404: "Not found",
    405: "Method not allowed",
    429: "Too Many Requests",
    500: "Operation failed",
}
_INTEGER_FIELDS = (
    "Type",
    "StreamProviderType",
    "UserStreamProviderType",
    "UserIdentity",
    "SubStreamId",
    "ManagerId",
)
_STRING_FIELDS = ("StreamProviderId",)
_BOOLEAN_FIELDS = ("sendToClient", "createChildObject")
_OBJECT_FIELDS = ("Content", "User")


@dataclass(frozen=True)
class Fault:
    """How to answer one scripted request (see `SandboxServer.script`).

    With neither `status` nor `drop` the request is handled normally (token, shape, a new id),
    after `delay_s`; `id`, `id_key` and `body` then shape the success answer. A non-2xx `status`
    answers that error without looking at the token or the body. `accept=True` (or a 2xx
    `status`) answers success even when the body's shape is wrong, but the token still counts.
    """

    status: int | None = None
    description: str | None = None
    retry_after: int | str | None = None  # seconds, or an HTTP date: sent as Retry-After
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering (e.g. past a client's read timeout)
    drop: bool = False  # read the request, then close the connection without a reply
    accept: bool = False
    id: int | None = None  # the object id to answer with, instead of the next one
    id_key: str = "id"  # "Id" answers {"data": {"Id": N}}, as some CommBox answers do
    body: bytes | None = None  # the exact response body, instead of the JSON one

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"Fault status {self.status} is not an HTTP status")
        if self.accept and self.status is not None and not _is_success(self.status):
            raise ValueError("Fault(accept=True) needs a 2xx status or none")
        if self.delay_s < 0:
            raise ValueError("Fault delay_s must not be negative")

    @property
    def answers_error(self) -> bool:
        return self.status is not None and not _is_success(self.status)

    @property
    def forces_success(self) -> bool:
        return self.accept or (self.status is not None and _is_success(self.status))


_NO_FAULT = Fault()


@dataclass(frozen=True)
class ReceivedFile:
    """One `file` part of a multipart request, byte for byte."""

    filename: str
    content_type: str | None
    content: bytes


@dataclass(frozen=True)
class Received:
    """One request as the sandbox saw it, and how it answered.

    Header names are lower-case; the Authorization header is stored redacted (the token is never
    kept). `status` is None when the connection was dropped; `object_id` is set only when an
    object was created, so accepted requests are the deliveries.
    """

    method: str
    path: str
    stream_id: str | None
    headers: dict[str, str]
    data: dict[str, Any] | None
    files: tuple[ReceivedFile, ...]
    status: int | None
    object_id: int | None
    description: str
    time: datetime

    @property
    def accepted(self) -> bool:
        return self.object_id is not None

    @property
    def dropped(self) -> bool:
        return self.status is None

    @property
    def outcome(self) -> str:
        """accepted, dropped, throttled (429), failed (5xx) or rejected (other answers)."""
        if self.object_id is not None:
            return "accepted"
        if self.status is None:
            return "dropped"
        if self.status == 429:
            return "throttled"
        return "failed" if self.status >= 500 else "rejected"


@dataclass(frozen=True)
class _Parsed:
    data: dict[str, Any] | None = None
    files: tuple[ReceivedFile, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Answer:
    """What to send back; `status` None means: close the connection without a reply."""

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    description: str = ""
    object_id: int | None = None


# --- the body: shape checks ------------------------------------------------------------------


def parse_body(content_type: str | None, body: bytes) -> _Parsed:
    """The inner data object and files of a Create Object body, or what is wrong with it."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        parsed = _parse_json(body)
    elif media_type == "multipart/form-data":
        parsed = _parse_multipart(content_type or "", body)
    else:
        shown = media_type or "none"
        return _Parsed(
            problems=(f"Content-Type must be application/json or multipart/form-data, not {shown}",)
        )
    if parsed.problems:
        return parsed
    return _Parsed(parsed.data, parsed.files, tuple(check_data(parsed.data)))


def _parse_json(body: bytes) -> _Parsed:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return _Parsed(problems=(f"the body is not valid JSON: {exc}",))
    if not isinstance(document, dict) or "data" not in document:
        return _Parsed(problems=('the body must be a JSON object {"data": {...}}',))
    extra = sorted(set(document) - {"data"})
    if extra:
        return _Parsed(problems=(f"unexpected top-level key(s) {', '.join(extra)}",))
    data = document["data"]
    if not isinstance(data, dict):
        return _Parsed(problems=(f"data must be an object, not {_json_type(data)}",))
    return _Parsed(data=data)


def _parse_multipart(content_type: str, body: bytes) -> _Parsed:
    # A synthetic header block turns the body into a MIME document the email parser reads.
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    document = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not document.is_multipart():
        return _Parsed(problems=("the multipart body has no parts (check the boundary)",))
    data_parts: list[bytes] = []
    files: list[ReceivedFile] = []
    problems: list[str] = [
        f"malformed multipart body: {type(d).__name__}" for d in document.defects
    ]
    for part in cast(list[Message], document.get_payload()):
        problems.extend(_read_part(part, data_parts, files))
    if problems:
        return _Parsed(problems=tuple(problems))
    if len(data_parts) != 1:
        return _Parsed(problems=(f"expected one 'data' field, got {len(data_parts)}",))
    parsed = _parse_data_field(data_parts[0])
    return _Parsed(parsed.data, tuple(files), parsed.problems)


def _read_part(part: Message, data_parts: list[bytes], files: list[ReceivedFile]) -> list[str]:
    name = part.get_param("name", header="content-disposition")
    content = part.get_payload(decode=True)
    if not isinstance(name, str) or not isinstance(content, bytes):
        return ["every multipart part needs a name and a plain body"]
    if name == "data":
        data_parts.append(content)
        return []
    if name != "file":
        return [f"unexpected multipart field {name!r} (expected 'data' and 'file')"]
    filename = part.get_filename()
    if not filename:
        return ["a 'file' part has no filename"]
    content_type = part.get_content_type() if "content-type" in part else None
    files.append(ReceivedFile(filename, content_type, content))
    return []


def _parse_data_field(content: bytes) -> _Parsed:
    """The multipart `data` field: the inner data object as a JSON string."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return _Parsed(problems=(f"the 'data' field is not valid JSON: {exc}",))
    if not isinstance(data, dict):
        return _Parsed(problems=(f"the 'data' field must hold an object, not {_json_type(data)}",))
    return _Parsed(data=data)


def check_data(data: Any) -> list[str]:
    """What is wrong with a data object, measured against the reference's field types."""
    if not isinstance(data, dict):
        return [f"data must be an object, not {_json_type(data)}"]
    problems = [*_required_strings(data)]
    for name in _INTEGER_FIELDS:
        if name in data and not _is_int(data[name]):
            problems.append(f"{name} must be an integer, not {_json_type(data[name])}")
    if "StatusId" in data and not (_is_int(data["StatusId"]) or isinstance(data["StatusId"], str)):
        problems.append(
            f"StatusId must be an integer or a string, not {_json_type(data['StatusId'])}"
        )
    problems.extend(_typed(data, _STRING_FIELDS, str, "a string"))
    problems.extend(_typed(data, _BOOLEAN_FIELDS, bool, "a boolean"))
    problems.extend(_typed(data, _OBJECT_FIELDS, dict, "an object"))
    return problems


def _required_strings(data: dict[str, Any]) -> Iterable[str]:
    for name in ("Message", "UserStreamProviderId"):
        if name not in data:
            yield f"{name} is required"
        elif not isinstance(data[name], str) or not data[name]:
            yield f"{name} must be a non-empty string"


def _typed(data: dict[str, Any], names: Iterable[str], kind: type, noun: str) -> Iterable[str]:
    for name in names:
        if name in data and not isinstance(data[name], kind):
            yield f"{name} must be {noun}, not {_json_type(data[name])}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_success(status: int) -> bool:
    return 200 <= status < 300


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- answers ---------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _response_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _description(status: int) -> str:
    if status in _DESCRIPTIONS:
        return _DESCRIPTIONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _error(
    status: int,
    description: str | None = None,
    fault: Fault = _NO_FAULT,
    headers: tuple[tuple[str, str], ...] = (),
) -> _Answer:
    text = description or fault.description or _description(status)
    payload = {"status": status, "description": text, "response_time": _response_time(_now())}
    body = fault.body if fault.body is not None else _json_bytes(payload)
    return _Answer(status, body, headers + _fault_headers(fault), text)


def _success(status: int, object_id: int, fault: Fault) -> _Answer:
    payload = {
        # The reference's 200 example has the status as a string, its errors as integers.
        "status": str(status),
        "description": fault.description or "OK",
        "response_time": _response_time(_now()),
        "data": {fault.id_key: object_id},
    }
    body = fault.body if fault.body is not None else _json_bytes(payload)
    return _Answer(status, body, _fault_headers(fault), "OK", object_id)


def _fault_headers(fault: Fault) -> tuple[tuple[str, str], ...]:
    headers = tuple(fault.headers.items())
    if fault.retry_after is not None:
        headers += (("Retry-After", str(fault.retry_after)),)
    return headers


def _redacted_headers(headers: Message) -> dict[str, str]:
    """Lower-case names; secrets replaced so no token is ever kept or printed."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in _SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value.strip() else ""
            value = f"{scheme} (redacted)".strip()
        result[key] = value
    return result


# --- the printed log -------------------------------------------------------------------------


def log_line(received: Received) -> str:
    """One line per request, for a person watching the sandbox."""
    clock = received.time.astimezone().strftime("%H:%M:%S")
    if received.status is None:
        answer = "dropped (no reply)"
    elif received.object_id is not None:
        answer = f"{received.status} id={received.object_id}"
    else:
        answer = f"{received.status} {received.description}"
    if received.stream_id is None or received.method != "POST":
        return _printable(f"{clock}  {received.method} {received.path}  -> {answer}")
    data = received.data or {}
    files = ", ".join(f.filename for f in received.files) or "no files"
    return _printable(
        f"{clock}  stream {received.stream_id}  Type {data.get('Type', '-')}  "
        f"{_snippet(data.get('Message'))}  [{files}]  -> {answer}"
    )


def _snippet(message: Any, width: int = 60) -> str:
    if not isinstance(message, str):
        return "(no Message)"
    more = "…" if len(message) > width else ""
    return json.dumps(message[:width], ensure_ascii=False) + more


def _printable(text: str) -> str:
    # Whatever a client sends must not drive the terminal (escape sequences, carriage returns).
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


# --- the HTTP layer --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Never wait for handlers on close: one may be sleeping in a scripted delay.
    block_on_close = False

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away (a read timeout, a reset): nothing to tell anyone
        self.sandbox._internal_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (about 40 ms a request on Linux).
    disable_nagle_algorithm = True
    server_version = f"commbox-sandbox/{__version__}"

    def version_string(self) -> str:
        return self.server_version  # without the Python version http.server appends

    @property
    def _sandbox(self) -> SandboxServer:
        return cast(_Server, self.server).sandbox

    def setup(self) -> None:
        super().setup()
        self._sandbox._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._sandbox._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sandbox prints its own line per request."""

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            answer = self._sandbox._unreadable(self.command, self.path, self.headers)
        else:
            answer = self._sandbox._handle(self.command, self.path, self.headers, body)
        self._write(answer)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes | None:
        """The whole request body (so keep-alive stays in step), or None when unreadable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 <= length <= MAX_BODY_BYTES:
            return None
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
            except ValueError:
                return None
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _write(self, answer: _Answer) -> None:
        if answer.status is None:
            self._drop()
            return
        self.send_response(answer.status)
        content_types = {name.lower() for name, _ in answer.headers}
        if "content-type" not in content_types:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _drop(self) -> None:
        # The request was read in full; closing now is "dropped after the request went out".
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# --- the sandbox -----------------------------------------------------------------------------


class SandboxServer:
    """The CommBox stand-in: `with SandboxServer() as server: ... server.url ...`.

    Periodic faults count the requests to the Create Object endpoint (1-based): when several
    apply to one request, drop wins over fail, fail over throttle. Scripted faults are used
    first, one per request, in order. Output (one line per request) goes to `output` if given.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        token: str | None = None,
        latency_ms: int = 0,
        throttle_every: int = 0,
        throttle_retry_after: int | str | None = 1,
        fail_every: int = 0,
        fail_status: int = 500,
        drop_every: int = 0,
        first_id: int = FIRST_ID,
        output: TextIO | None = None,
    ) -> None:
        for name, value in (
            ("port", port),
            ("latency_ms", latency_ms),
            ("throttle_every", throttle_every),
            ("fail_every", fail_every),
            ("drop_every", drop_every),
        ):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if not 500 <= fail_status <= 599:
            raise ValueError("fail_status must be a 5xx status")
        self._port = port
        self._token = token or None
        self.latency_ms = latency_ms
        self.throttle_every = throttle_every
        self.throttle_retry_after = throttle_retry_after
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.drop_every = drop_every
        self._output = output
        self._lock = threading.Condition()
        self._print_lock = threading.Lock()
        self._stopping = threading.Event()
        self._received: list[Received] = []
        self._script: list[Fault] = []
        self._requests = 0
        self._next_id = first_id
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        self._stopping.clear()
        self._server = _Server((HOST, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits at most this long for the loop
            name=f"commbox-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake any delayed handler, and close every connection. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # Wakes handler threads blocked on an idle keep-alive connection.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def token_required(self) -> bool:
        """True when only the token given at construction is accepted."""
        return self._token is not None

    # what tests use

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests to the endpoint, before the periodic rules."""
        with self._lock:
            self._script.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        """The requests that created an object: the deliveries."""
        return [r for r in self.received if r.object_id is not None]

    @property
    def requests(self) -> int:
        """How many requests reached the endpoint (what the periodic faults count)."""
        with self._lock:
            return self._requests

    def count(self, **criteria: Any) -> int:
        """How many received requests match, e.g. `count(outcome="accepted", stream_id="s")`."""
        return sum(
            all(getattr(r, name) == value for name, value in criteria.items())
            for r in self.received
        )

    def clear(self) -> None:
        """Forget what was received and what was scripted (counters and ids continue)."""
        with self._lock:
            self._received.clear()
            self._script.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` requests were recorded (e.g. one answered after a client gave up)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._received) >= count, timeout)

    # the handler's side

    def _handle(self, method: str, target: str, headers: Message, body: bytes) -> _Answer:
        path = urlsplit(target).path
        match = _OBJECTS_PATH.fullmatch(path)
        if match is None:
            return self._record(method, target, None, headers, _Parsed(), _error(404))
        stream_id = unquote(match.group(1))
        if method != "POST":
            answer = _error(
                405, f"{method} is not allowed here; use POST", headers=(("Allow", "POST"),)
            )
            return self._record(method, target, stream_id, headers, _Parsed(), answer)
        fault = self._next_fault()
        parsed = parse_body(headers.get("Content-Type"), body)
        self._sleep(self.latency_ms / 1000 + fault.delay_s)
        answer = self._decide(fault, headers, parsed)
        return self._record(method, target, stream_id, headers, parsed, answer)

    def _unreadable(self, method: str, target: str, headers: Message) -> _Answer:
        answer = _error(400, "the request body could not be read (check Content-Length)")
        return self._record(method, target, None, headers, _Parsed(), answer)

    def _next_fault(self) -> Fault:
        with self._lock:
            self._requests += 1
            if self._script:
                return self._script.pop(0)
            number = self._requests
        if _every(self.drop_every, number):
            return Fault(drop=True)
        if _every(self.fail_every, number):
            return Fault(status=self.fail_status)
        if _every(self.throttle_every, number):
            return Fault(status=429, retry_after=self.throttle_retry_after)
        return _NO_FAULT

    def _decide(self, fault: Fault, headers: Message, parsed: _Parsed) -> _Answer:
        if fault.drop:
            return _Answer(None, description="dropped")
        if fault.answers_error:
            return _error(cast(int, fault.status), fault=fault)
        if not self._authorized(headers.get("Authorization")):
            return _error(401)
        if parsed.problems and not fault.forces_success:
            return _error(400, "; ".join(parsed.problems))
        return _success(fault.status or 200, self._object_id(fault), fault)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self._token is None:
            return True
        return hmac.compare_digest(token.encode("utf-8"), self._token.encode("utf-8"))

    def _object_id(self, fault: Fault) -> int:
        if fault.id is not None:
            return fault.id
        with self._lock:
            object_id, self._next_id = self._next_id, self._next_id + 1
        return object_id

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # stop() cuts it short

    def _record(
        self,
        method: str,
        target: str,
        stream_id: str | None,
        headers: Message,
        parsed: _Parsed,
        answer: _Answer,
    ) -> _Answer:
        # Recorded before the answer is written: a client that has its answer finds it here.
        received = Received(
            method=method,
            path=target,
            stream_id=stream_id,
            headers=_redacted_headers(headers),
            data=parsed.data,
            files=parsed.files,
            status=answer.status,
            object_id=answer.object_id,
            description=answer.description,
            time=_now(),
        )
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()
        self._print(log_line(received))
        return answer

    def _print(self, line: str) -> None:
        if self._output is None:
            return
        with self._print_lock:
            self._output.write(line + "\n")
            self._output.flush()

    def _internal_error(self, text: str) -> None:
        (self._output or sys.stderr).write(f"commbox sandbox: internal error\n{text}")

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


def _every(period: int, number: int) -> bool:
    return period > 0 and number % period == 0
