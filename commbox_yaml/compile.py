"""Rendered definitions -> the exact Create Object requests, with their fingerprints."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mimetypes
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commbox_yaml.channels import CHANNELS, whatsapp_v2
from commbox_yaml.channels.base import Channel, ContentParts, user_object, wire_phone
from commbox_yaml.errors import Problem, UserError
from commbox_yaml.files import human_size
from commbox_yaml.project import Project
from commbox_yaml.redact import Redactor
from commbox_yaml.render import OfMessage, RenderedMessage
from commbox_yaml.source import PathKey
from commbox_yaml.streams import StreamIdError, path_segment, resolve
from commbox_yaml.written import Written, sent_otherwise, wrap

# Definition key -> wire field, in the order the reference examples write them.
# "Content" and "User" are built, not copied.
WIRE_ORDER: tuple[tuple[str, str], ...] = (
    ("type", "Type"),
    ("status_id", "StatusId"),
    ("stream_provider_type", "StreamProviderType"),
    ("stream_provider_id", "StreamProviderId"),
    ("user_stream_provider_id", "UserStreamProviderId"),
    ("user_stream_provider_type", "UserStreamProviderType"),
    ("user_identity", "UserIdentity"),
    ("manager_id", "ManagerId"),
    ("sub_stream_id", "SubStreamId"),
    ("send_to_client", "sendToClient"),
    ("content", "Content"),
    ("message", "Message"),
    ("create_child_object", "createChildObject"),
    ("user", "User"),
)
# Built-in table only, so a MIME type (part of the fingerprint) is the same on every machine.
_MIME = mimetypes.MimeTypes(filenames=())
for _ext, _type in {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".md": "text/markdown",
    ".webp": "image/webp",
}.items():
    _MIME.add_type(_type, _ext)


@dataclass(frozen=True)
class Attachment:
    """A file uploaded with a message."""

    path: str  # as the user wrote it, relative to the project root
    name: str  # the base name sent in the multipart part
    size: int
    sha256: str
    mime: str
    absolute: Path

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "bytes": self.size,
            "sha256": self.sha256,
            "mime": self.mime,
        }


@dataclass(frozen=True)
class Request(OfMessage):
    """One Create Object request, exactly as it would be sent."""

    stream: str
    data: dict[str, Any]
    files: tuple[Attachment, ...]
    fingerprint: str
    field_hashes: Mapping[str, str]
    # The data to send, when a template used a sensitive variable: `data`, and everything
    # shown, planned or fingerprinted, has `(sensitive)` in its place (see taint.py).
    sent: dict[str, Any] | None = None
    # A reply (`reply_to`, conversation.py): its parent's ledger key and address. Its path
    # holds the parent's object id, known when it is sent.
    parent_key: str | None = None
    parent_address: str | None = None

    method = "POST"

    @property
    def channel(self) -> str:
        return self.message.definition.channel

    @property
    def v2(self) -> bool:
        """Sent through CommBox's v2 WhatsApp endpoint: `data` is the one item of a list."""
        return whatsapp_v2.is_v2(self.message.values)

    @property
    def path(self) -> str:
        if self.v2:
            return whatsapp_v2.PATH.format(path_segment(self.stream))
        objects = f"/streams/{path_segment(self.stream)}/objects"
        if self.parent_key is not None:  # a reply: conversation.child_path once it is sent
            return f"{objects}/{{OBJECT_ID of {self.parent_key}}}/child"
        return objects

    @property
    def sent_data(self) -> dict[str, Any]:
        """The data object as sent: with the real sensitive values."""
        return self.data if self.sent is None else self.sent

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body as sent (for display: shown_body)."""
        return {"data": [self.sent_data] if self.v2 else self.sent_data}

    @property
    def data_field(self) -> str:
        """The multipart `data` field as sent: the JSON text of the data object."""
        return json.dumps(self.sent_data)

    @property
    def shown_body(self) -> dict[str, Any]:
        """The body as every output shows it: `(sensitive)` for what came of a secret."""
        return {"data": [self.data] if self.v2 else self.data}

    @property
    def shown_data_field(self) -> str:
        return json.dumps(self.data)

    @property
    def multipart(self) -> bool:
        return bool(self.files)

    @property
    def content_type(self) -> str:
        """The media type sent (multipart's boundary is chosen when the body is encoded)."""
        return "multipart/form-data" if self.files else "application/json"

    @property
    def send_always(self) -> bool:
        return bool(self.message.values.get("send", "once") == "always")


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) uses, built
# once: dumps would build it again for each of the ~15 values hashed per request.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the text fingerprints and field hashes are taken of."""
    return _CANONICAL.encode(value).encode()


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


class Compiler:
    """Compiles rendered messages of one project; attachment hashes are computed once."""

    def __init__(self, project: Project, secrets: Redactor | None = None) -> None:
        self.project = project
        self.secrets = secrets or Redactor()
        self._files: dict[Path, tuple[int, str]] = {}

    def compile(self, message: RenderedMessage) -> tuple[Request | None, list[Problem]]:
        """The request; with the data to send beside it when a secret was rendered."""
        request, problems = self._compile(message, message.values)
        if request is None or message.sent is None:
            return request, problems
        sent, sent_problems = self._compile(message, message.sent)
        if sent is None:  # the shown values compiled: only a secret's own shape can fail
            return None, [_withheld(p) for p in sent_problems]
        return dataclasses.replace(request, sent=sent.data), []

    def _compile(
        self, message: RenderedMessage, values: dict[str, Any]
    ) -> tuple[Request | None, list[Problem]]:
        problems: list[Problem] = []
        definition = message.definition
        channel = CHANNELS[definition.channel]

        def problem(path: tuple[str | int, ...], text: str, key: bool = False) -> None:
            loc = definition.where_key(*path) if key else definition.where(*path)
            dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
            problems.append(Problem(loc, text, dotted.replace(".[", "["), message.item_key))

        stream = self._stream(
            values["stream"], definition.positions.texts.get(("stream",)), problem
        )
        v2 = whatsapp_v2.is_v2(values)
        parts = ContentParts() if v2 else channel.content(values)
        if definition.channel == "whatsapp":
            whatsapp_v2.check(values, stream, problem)
        if v2:
            data = {} if problems else whatsapp_v2.item(values, channel.presets)
        else:
            data = _wire_data(values, channel, _content(values, parts, problem), problem)
        literal = (("raw",), ("content",), *((("template",),) if v2 else ()))
        for path, text in _changed_literals(definition.positions.texts, definition.data, literal):
            problem(path, text)

        files = []
        for relative, path in parts.uploads:
            try:
                files.append(self._attachment(relative))
            except UserError as exc:
                problem(path, exc.problem.message)
        if problems:
            return None, problems
        fingerprint, hashes = fingerprint_of(stream, data, files, self.secrets)
        return Request(message, stream, data, tuple(files), fingerprint, hashes), []

    def _stream(self, value: Any, written: str | None, problem: Any) -> str:
        """The decoded stream id of an alias or a raw id (see streams.resolve)."""
        if written is not None and isinstance(value, int):
            # YAML read `stream: 017566` as octal 8054: never send to a stream nobody wrote.
            problem(("stream",), f"{written} is read by YAML as {value}; put it in quotes")
            return str(value)
        try:
            return resolve(value, self.project.streams)
        except StreamIdError as exc:
            problem(("stream",), str(exc))
            return str(value)

    def _attachment(self, relative: str) -> Attachment:
        path = self.project.resolve(relative, None, "attachment")
        if not path.is_file():
            raise UserError(
                f"attachment {relative!r} not found (paths are relative to the project root)"
            )
        stat = path.stat()
        limit = self.project.api.max_attachment_mb * 1024 * 1024
        if stat.st_size > limit:
            raise UserError(
                f"attachment {relative!r} is {human_size(stat.st_size)}, over the "
                f"{human_size(limit)} limit (api.max_attachment_mb: "
                f"{self.project.api.max_attachment_mb:g})"
            )
        cached = self._files.get(path)
        if cached is None or cached[0] != stat.st_size:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            cached = self._files[path] = (stat.st_size, digest.hexdigest())
        mime = _MIME.guess_type(path.name, strict=False)[0] or "application/octet-stream"
        return Attachment(relative, path.name, cached[0], cached[1], mime, path)


def _changed_literals(
    texts: Mapping[PathKey, str],
    data: dict[str, Any],
    literal: tuple[PathKey, ...] = (("raw",), ("content",)),
) -> Iterator[tuple[PathKey, str]]:
    """(path, error) for each value written in `raw` or `content` (sent as they are, as JSON;
    a v2 template's values are sent as text) that YAML reads as another: `1.10` would be sent
    as 1.1, `1_000` as 1000, `NO` as false."""
    for path, written in texts.items():
        if path[:1] not in literal:
            continue
        value: Any = data
        for part in path:
            if isinstance(value, list) and isinstance(part, int):
                value = value[part]
            elif isinstance(value, dict):
                value = value.get(part)
        wrapped = wrap(value, written, None, "")
        if isinstance(wrapped, Written) and sent_otherwise(wrapped):
            yield (
                path,
                (
                    f"{written} is read by YAML as {wrapped.read_as}; quote it: '{written}' (or "
                    f"write {wrapped.read_as} if that is meant)"
                ),
            )


def _withheld(problem: Problem) -> Problem:
    """A problem met only with the real sensitive values: its wording could quote one."""
    return Problem(
        problem.location,
        "the request cannot be built with the real value of a sensitive variable (the "
        "reason is not shown: it could quote the value)",
        problem.path,
        problem.item_key,
    )


def file_ids_of(files: tuple[Attachment, ...] | list[Attachment]) -> list[dict[str, str]]:
    """What the fingerprint knows of each upload: its name, content hash and type."""
    return [{"name": f.name, "sha256": f.sha256, "mime": f.mime} for f in files]


def fingerprint_of(
    stream: str,
    data: dict[str, Any],
    files: list[Attachment],
    secrets: Redactor | None = None,
    parent: str | None = None,
) -> tuple[str, Mapping[str, str]]:
    """The request's fingerprint, and a hash per field (to name what changed later).

    Both are taken with every secret replaced by a fixed placeholder: they land in the ledger
    and in plan files, and a hash of a short secret is undone by trying every value. So a
    change of a secret alone changes nothing here. Attachment contents are files, not
    variables: their hashes stay as they are. A reply's `parent` (its parent's ledger key)
    is part of both.
    """
    file_ids = file_ids_of(files)
    of: dict[str, Any] = {"stream": stream, "body": {"data": data}, "files": file_ids}
    if parent is not None:
        of["parent"] = parent
    whole = canonical_json(of)
    # Most requests hold no secret: one search of their text spares walking them.
    hidden = secrets if secrets is not None and secrets.may_occur(whole.decode()) else None
    if hidden is not None:
        whole = canonical_json(_redacted(stream, data, file_ids, hidden) | _parent(parent))
    fingerprint = "sha256:" + hashlib.sha256(whole).hexdigest()
    return fingerprint, FieldHashes(stream, data, file_ids, hidden, parent)


def _parent(parent: str | None) -> dict[str, str]:
    return {} if parent is None else {"parent": parent}


def _redacted(
    stream: str, data: dict[str, Any], file_ids: list[dict[str, str]], secrets: Redactor
) -> dict[str, Any]:
    files = [{**entry, "name": secrets.data(entry["name"])} for entry in file_ids]
    return {"stream": secrets.data(stream), "body": {"data": secrets.data(data)}, "files": files}


class FieldHashes(Mapping[str, str]):
    """A hash per field, computed on first use: only a changed message (`~`) and the ledger's
    `pending` event need them, and a plan of unchanged or new messages never does. With
    `secrets` (the request holds one), they are taken of the redacted request."""

    def __init__(
        self,
        stream: str,
        data: dict[str, Any],
        file_ids: list[dict[str, str]],
        secrets: Redactor | None = None,
        parent: str | None = None,
    ) -> None:
        self._parent = parent
        self._parts: tuple[str, dict[str, Any], list[dict[str, str]]] | None = (
            stream,
            data,
            file_ids,
        )
        self._secrets = secrets
        self._hashes: dict[str, str] = {}

    @property
    def redacted(self) -> bool:
        return self._secrets is not None

    def _computed(self) -> dict[str, str]:
        if self._parts is not None:
            stream, data, file_ids = self._parts
            if self._secrets is not None:
                hidden = _redacted(stream, data, file_ids, self._secrets)
                stream, data, file_ids = hidden["stream"], hidden["body"]["data"], hidden["files"]
            hashes = {"stream": _digest(stream)[:16]}
            for key, value in data.items():
                if key == "Content" and isinstance(value, dict):
                    for sub, sub_value in value.items():
                        hashes[f"Content.{sub}"] = _digest(sub_value)[:16]
                else:
                    hashes[key] = _digest(value)[:16]
            if file_ids:
                hashes["files"] = _digest(file_ids)[:16]
            if self._parent is not None:
                hashes["parent"] = _digest(self._parent)[:16]
            self._hashes, self._parts = hashes, None
        return self._hashes

    def __getitem__(self, key: str) -> str:
        return self._computed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._computed())

    def __len__(self) -> int:
        return len(self._computed())

    def __repr__(self) -> str:
        return repr(self._computed())


def _content(
    values: dict[str, Any], parts: ContentParts, problem: Callable[..., None]
) -> dict[str, Any]:
    """`Content`: the channel's shorthands, then `content:`'s own keys (a clash is a problem)."""
    content = dict(parts.content)
    folded = {k.lower(): k for k in content}
    for key, value in (values.get("content") or {}).items():
        if str(key).lower() in folded:
            source = parts.sources[folded[str(key).lower()]]
            problem(
                ("content", key),
                f"Content key '{key}' is already set by '{source}'; set it in one place",
                key=True,
            )
        content[key] = value
    return content


def _wire_data(
    values: dict[str, Any],
    channel: Channel,
    content: dict[str, Any],
    problem: Callable[..., None],
) -> dict[str, Any]:
    """The `data` object in wire order: definition keys, presets, then `raw:` (a clash with
    a key the definition already set is a problem)."""
    data: dict[str, Any] = {}
    for name, wire in WIRE_ORDER:
        if name == "content":
            if content:
                data[wire] = content
        elif name == "user":
            if "user" in values:
                data[wire] = user_object(values["user"])
        elif name in channel.phone_fields and name in values:
            data[wire] = wire_phone(values[name])
        elif name in values:
            data[wire] = values[name]
        elif name in channel.presets:
            data[wire] = channel.presets[name]
    wire_names = {k.lower() for k in data}
    for key, value in (values.get("raw") or {}).items():
        if str(key).lower() in wire_names:
            problem(
                ("raw", key),
                f"data key '{key}' is already set from the definition; "
                "use the definition's own key instead of raw",
                key=True,
            )
        data[key] = value
    return data
