"""What the sandbox reads and answers: faults, received requests, body shape checks."""

from __future__ import annotations

import email.policy
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs

from commbox_yaml.output import one_line

FIRST_ID = 294159  # the id in the reference's 200 example: for tests that want fixed ids
MAX_BODY_BYTES = 256 * 1024 * 1024  # far above any attachment limit; keeps a runaway client sane

OBJECTS_PATH = re.compile(r"/streams/([^/]+)/objects")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized access",
    404: "Not found",
    429: "Too Many Requests",
    500: "Operation failed",
    501: "Not Implemented",
}
_INTEGER_FIELDS = (
    "Type",
    "StreamProviderType",
    "UserStreamProviderType",
    "UserIdentity",
    "SubStreamId",
    "ManagerId",
)
_STRING_FIELDS = ("StreamProviderId", "UserStreamProviderId")
_BOOLEAN_FIELDS = ("sendToClient", "createChildObject")


@dataclass(frozen=True)
class Fault:
    """How to answer one scripted request (see `SandboxServer.script`).

    With neither `status` nor `drop` the request is handled normally (token, shape, a new id),
    after `delay_s`; `id`, `id_key` and `body` then shape the success answer. A non-2xx `status`
    answers that error without looking at the token or the body. `accept=True` (or a 2xx
    `status`) answers success even when the body's shape is wrong, but the token still counts.
    `store=True` with an error `status` or `drop` handles the request normally first (token,
    shape, a new stored object), then answers that error or drops the connection: an object
    created whose client never learns it. A 2xx `body` without an id does the same.
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
    store: bool = False  # create the object even though the answer is an error or a drop

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"Fault status {self.status} is not an HTTP status")
        if self.accept and self.status is not None and not is_success(self.status):
            raise ValueError("Fault(accept=True) needs a 2xx status or none")
        if self.delay_s < 0:
            raise ValueError("Fault delay_s must not be negative")
        if self.store and not (self.drop or self.answers_error):
            raise ValueError("Fault(store=True) needs drop=True or an error status")

    @property
    def answers_error(self) -> bool:
        return self.status is not None and not is_success(self.status)

    @property
    def forces_success(self) -> bool:
        return self.accept or (self.status is not None and is_success(self.status))


NO_FAULT = Fault()


class ObjectIds:
    """Object ids that never repeat across runs: each is at least the microseconds since the
    epoch when it is made, and greater than the one before. CommBox's ids are positive int64s;
    these stay below 2**53 (until the year 2255), so JSON readers holding numbers as doubles
    read them exactly. With `first_id`, fixed ids from that one up, for tests."""

    def __init__(self, first_id: int | None = None) -> None:
        if first_id is not None and first_id < 1:
            raise ValueError("first_id must be a positive integer")
        self._fixed = first_id is not None
        self._next = first_id if first_id is not None else _clock_id()
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            object_id = self._next if self._fixed else max(self._next, _clock_id())
            self._next = object_id + 1
        return object_id


def _clock_id() -> int:
    return time.time_ns() // 1000


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
    body: Any = None  # the JSON document of a v2 WhatsApp request, as received
    whatsapp_ids: tuple[str, ...] = ()  # the message ids a v2 WhatsApp answer gave

    @property
    def accepted(self) -> bool:
        return self.object_id is not None or bool(self.whatsapp_ids)

    @property
    def dropped(self) -> bool:
        return self.status is None

    @property
    def outcome(self) -> str:
        """accepted, dropped, throttled (429), failed (5xx), read (a GET answered 2xx) or
        rejected (other answers)."""
        if self.accepted:
            return "accepted"
        if self.status is None:
            return "dropped"
        if self.method == "GET" and is_success(self.status):
            return "read"
        if self.status == 429:
            return "throttled"
        return "failed" if self.status >= 500 else "rejected"


@dataclass(frozen=True)
class Parsed:
    data: dict[str, Any] | None = None
    files: tuple[ReceivedFile, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What to send back; `status` None means: close the connection without a reply."""

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    description: str = ""
    object_id: int | None = None


# --- the body: shape checks ------------------------------------------------------------------


def parse_body(content_type: str | None, body: bytes) -> Parsed:
    """The inner data object and files of a Create Object body, or what is wrong with it."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        parsed = _parse_json(body)
    elif media_type == "multipart/form-data":
        parsed = _parse_multipart(content_type or "", body)
    elif media_type == "application/x-www-form-urlencoded":
        parsed = _parse_form(body)
    else:
        shown = media_type or "none"
        return Parsed(
            problems=(
                "Content-Type must be application/json, application/x-www-form-urlencoded or "
                f"multipart/form-data, not {shown}",
            )
        )
    if parsed.problems:
        return parsed
    return Parsed(parsed.data, parsed.files, tuple(check_data(parsed.data)))


def _parse_json(body: bytes) -> Parsed:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Parsed(problems=(f"the body is not valid JSON: {exc}",))
    if not isinstance(document, dict) or "data" not in document:
        return Parsed(problems=('the body must be a JSON object {"data": {...}}',))
    extra = sorted(set(document) - {"data"})
    if extra:
        return Parsed(problems=(f"unexpected top-level key(s) {', '.join(extra)}",))
    data = document["data"]
    if not isinstance(data, dict):
        return Parsed(problems=(f"data must be an object, not {_json_type(data)}",))
    return Parsed(data=data)


def _parse_form(body: bytes) -> Parsed:
    """A form-urlencoded body: its `data` field holds the data object as JSON (the OpenAPI)."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        return Parsed(problems=(f"the form body cannot be read: {exc}",))
    extra = sorted(set(fields) - {"data"})
    if extra:
        return Parsed(problems=(f"unexpected form field(s) {', '.join(extra)}",))
    values = fields.get("data", [])
    if len(values) != 1:
        return Parsed(problems=(f"expected one 'data' field, got {len(values)}",))
    return _parse_data_field(values[0].encode("utf-8"))


def _parse_multipart(content_type: str, body: bytes) -> Parsed:
    # A synthetic header block turns the body into a MIME document the email parser reads.
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    document = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not document.is_multipart():
        return Parsed(problems=("the multipart body has no parts (check the boundary)",))
    data_parts: list[bytes] = []
    files: list[ReceivedFile] = []
    problems: list[str] = [
        f"malformed multipart body: {type(d).__name__}" for d in document.defects
    ]
    for part in cast(list[Message], document.get_payload()):
        problems.extend(_read_part(part, data_parts, files))
    if problems:
        return Parsed(problems=tuple(problems))
    if len(data_parts) != 1:
        return Parsed(problems=(f"expected one 'data' field, got {len(data_parts)}",))
    parsed = _parse_data_field(data_parts[0])
    return Parsed(parsed.data, tuple(files), parsed.problems)


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


def _parse_data_field(content: bytes) -> Parsed:
    """The multipart `data` field: the inner data object as a JSON string."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Parsed(problems=(f"the 'data' field is not valid JSON: {exc}",))
    if not isinstance(data, dict):
        return Parsed(problems=(f"the 'data' field must hold an object, not {_json_type(data)}",))
    return Parsed(data=data)


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
    problems.extend(_typed(data, ("User",), dict, "an object"))
    if "Content" in data and not _is_content(data["Content"]):
        problems.append(
            f"Content must be an object or a JSON string of one, not {_json_type(data['Content'])}"
        )
    return problems


def _required_strings(data: dict[str, Any]) -> Iterable[str]:
    # Only Message is required ("(required) The text of the primary message").
    if "Message" not in data:
        yield "Message is required"
    elif not isinstance(data["Message"], str) or not data["Message"]:
        yield "Message must be a non-empty string"


def _is_content(content: Any) -> bool:
    """An object, or (as the OpenAPI types it: a "JSON string") the JSON text of one."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            return False
    return isinstance(content, dict)


def _typed(data: dict[str, Any], names: Iterable[str], kind: type, noun: str) -> Iterable[str]:
    for name in names:
        if name in data and not isinstance(data[name], kind):
            yield f"{name} must be {noun}, not {_json_type(data[name])}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_success(status: int) -> bool:
    return 200 <= status < 300


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- answers ---------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def response_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _description(status: int) -> str:
    if status in _DESCRIPTIONS:
        return _DESCRIPTIONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def error_answer(
    status: int,
    description: str | None = None,
    fault: Fault = NO_FAULT,
    headers: tuple[tuple[str, str], ...] = (),
) -> Answer:
    text = description or fault.description or _description(status)
    payload = {"status": status, "description": text, "response_time": response_time(utc_now())}
    body = fault.body if fault.body is not None else json_bytes(payload)
    return Answer(status, body, headers + _fault_headers(fault), text)


def success_answer(status: int, object_id: int, fault: Fault) -> Answer:
    payload = {
        # The reference's 200 example has the status as a string, its errors as integers.
        "status": str(status),
        "description": fault.description or "OK",
        "response_time": response_time(utc_now()),
        "data": {fault.id_key: object_id},
    }
    body = fault.body if fault.body is not None else json_bytes(payload)
    return Answer(status, body, _fault_headers(fault), "OK", object_id)


def _fault_headers(fault: Fault) -> tuple[tuple[str, str], ...]:
    headers = tuple(fault.headers.items())
    if fault.retry_after is not None:
        headers += (("Retry-After", str(fault.retry_after)),)
    return headers


def redacted_headers(headers: Message) -> dict[str, str]:
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
    stored = "" if received.object_id is None else f" (stored as id={received.object_id})"
    if received.status is None:
        answer = "dropped (no reply)" + stored
    elif received.object_id is not None and not is_success(received.status):
        answer = f"{received.status} {received.description}{stored}"
    elif received.object_id is not None:
        answer = f"{received.status} id={received.object_id}"
    else:
        answer = f"{received.status} {received.description}"
    if received.stream_id is None or received.method != "POST":
        return _printable(f"{clock}  {received.method} {received.path}  -> {answer}")
    if received.body is not None:  # a v2 WhatsApp template
        items = received.body.get("data") if isinstance(received.body, dict) else None
        first = items[0] if isinstance(items, list) and items else {}
        found = first.get("template_data") if isinstance(first, dict) else None
        sent: dict[str, Any] = found if isinstance(found, dict) else {}
        named = sent.get("template")
        template: dict[str, Any] = named if isinstance(named, dict) else {}
        return _printable(
            f"{clock}  v2 stream {received.stream_id}  template "
            f"{_snippet(template.get('name'))} to {sent.get('to', '-')}  -> {answer}"
        )
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
    return one_line("".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text))
