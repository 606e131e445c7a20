"""The messages of one build, in build order: held in memory, or past SPILL_AFTER in a file.

A fan-out to 100,000 customers gives 100,000 requests of about 3 KB each as Python objects.
Up to SPILL_AFTER messages they are simply kept; past it, each request is written as one
record to an unnamed temporary file (created readable only by this user, removed by the
system when the command ends) and read back when it is used. In memory stay only what
deciding a plan needs without reading a record: a hash of each ledger key, whether the
message was skipped, and whether the messages came in plan order. Messages skipped by
`when` are always kept (they are few, and hold no request).

Records are `marshal` data: the fastest codec of the standard library, and exact for the
plain data (dicts, lists, text, numbers) that rendering gives every value (see render.values.plain).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import tempfile
import weakref
from array import array
from collections.abc import Collection, Iterator
from typing import IO, Any

from commbox_yaml.compile import Attachment, FieldHashes, Request, file_ids_of
from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Problem, UserError
from commbox_yaml.keys import NaturalKey, natural_key
from commbox_yaml.redact import Redactor
from commbox_yaml.render import RenderedMessage

SPILL_AFTER = 20_000  # messages kept as objects (about 60 MB); past it, records on disk

_WRITE_BUFFER = _READ_AHEAD = 1 << 20
_SKIPPED = 1
_REPLY = 2  # a reply_to child: planned against its parent's state

Entry = Request | RenderedMessage  # a request, or a message skipped by `when`
PlanOrder = tuple[str, int, NaturalKey]


def plan_order(message: RenderedMessage) -> PlanOrder:
    """Where a message stands in a plan: by file, line, then address in natural order."""
    definition = message.definition
    return definition.file, definition.location.line, natural_key(message.address)


class BuiltMessages:
    """Requests and skipped messages in the order the build made them."""

    def __init__(self, secrets: Redactor | None = None, spill_after: int | None = None) -> None:
        self._secrets = secrets
        self._spill_after = SPILL_AFTER if spill_after is None else spill_after
        self._held: list[Entry] | None = []  # None once spilled
        self._skipped: dict[int, RenderedMessage] = {}
        self._file: IO[bytes] | None = None
        self._offsets = array("q")  # spilled: where each entry's record starts
        self._size = 0  # bytes written to the file
        self._chunk: tuple[int, bytes] = (0, b"")  # the last bytes read, and where they start
        self._hashes = array("q")  # hash() of each entry's ledger key
        self._flags = bytearray()
        self._definitions: list[Definition] = []
        self._definition_index: dict[int, int] = {}
        self._definition_of = array("q")  # each entry's definition, as its number
        self._attachments: list[Attachment] = []
        self._attachment_index: dict[Attachment, int] = {}
        self._key_hashes: set[int] = set()
        self._repeated: set[int] = set()  # key hashes seen twice: a duplicate key, or a collision
        self._watched: set[str] = set()  # keys read from the ledger too: replies' parents
        self._last: PlanOrder | None = None
        self.in_order = True  # entries came sorted by plan_order, as plans list them
        self.request_count = 0
        self._request_indexes = array("q")  # made when a request is asked for by its number

    # -- writing ------------------------------------------------------------------------------

    def expect(self, count: int) -> None:
        """`count` more messages are coming: past SPILL_AFTER in all, they go to disk from the
        first, so that a big fan-out is never held whole, not even for a moment."""
        if self._held is not None and len(self._held) + count > self._spill_after:
            self._spill()

    def add(self, entry: Entry) -> None:
        message = entry.message if isinstance(entry, Request) else entry
        definition = message.definition
        order = plan_order(message)
        if self._last is not None and order <= self._last:  # a tie: sorted exactly later
            self.in_order = False
        self._last = order
        index = len(self._flags)
        digest = hash(message.key)
        if digest in self._key_hashes:
            self._repeated.add(digest)
        else:
            self._key_hashes.add(digest)
        self._hashes.append(digest)
        self._definition_of.append(self._number_definition(definition))
        if isinstance(entry, Request):
            self.request_count += 1
            self._flags.append(0 if entry.parent_key is None else _REPLY)
        else:
            self._flags.append(_SKIPPED)
            self._skipped[index] = entry
        if self._held is not None:
            self._held.append(entry)
            if len(self._held) > self._spill_after:
                self._spill()
        else:
            self._write(entry)

    def _spill(self) -> None:
        held, self._held = self._held or [], None
        # Unnamed (O_TMPFILE where there is one): closed with the store or the process.
        try:
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                prefix="commbox-yaml-", buffering=_WRITE_BUFFER
            )
        except OSError as exc:
            raise _spill_failed(exc) from None
        weakref.finalize(self, _close, self._file)  # the store's life is the file's
        for entry in held:
            self._write(entry)

    def _write(self, entry: Entry) -> None:
        assert self._file is not None
        self._offsets.append(self._size)
        if not isinstance(entry, Request):
            return  # skipped messages stay in self._skipped
        message = entry.message
        files = tuple(self._number_attachment(a) for a in entry.files)
        definition = self._number_definition(message.definition)
        hashes = entry.field_hashes
        redacted = isinstance(hashes, FieldHashes) and hashes.redacted
        record = (
            definition,
            message.address,
            message.key,
            message.item_key,
            message.values,
            entry.stream,
            entry.data,
            files,
            entry.fingerprint,
            redacted,
            entry.sent,
            entry.parent_key,
            entry.parent_address,
        )
        data = marshal.dumps(record)
        try:
            self._file.write(data)
        except OSError as exc:
            raise _spill_failed(exc) from None
        self._size += len(data)

    def _number_definition(self, definition: Definition) -> int:
        number = self._definition_index.get(id(definition))
        if number is None:
            number = self._definition_index[id(definition)] = len(self._definitions)
            self._definitions.append(definition)
        return number

    def _number_attachment(self, attachment: Attachment) -> int:
        number = self._attachment_index.get(attachment)
        if number is None:
            number = self._attachment_index[attachment] = len(self._attachments)
            self._attachments.append(attachment)
        return number

    # -- reading ------------------------------------------------------------------------------

    @property
    def spilled(self) -> bool:
        return self._held is None

    def __len__(self) -> int:
        return len(self._flags)

    def __getitem__(self, index: int) -> Entry:
        if self._held is not None:
            return self._held[index]
        skipped = self._skipped.get(index)
        if skipped is not None:
            return skipped
        return self._read(index)

    def __iter__(self) -> Iterator[Entry]:
        for index in range(len(self._flags)):
            yield self[index]

    def is_skipped(self, index: int) -> bool:
        return bool(self._flags[index] & _SKIPPED)

    def watch(self, key: str) -> None:
        """Read this key's ledger state too (a reply's parent, which --target may leave out)."""
        self._watched.add(key)

    def is_reply(self, index: int) -> bool:
        return bool(self._flags[index] & _REPLY)

    @property
    def has_replies(self) -> bool:
        return _REPLY in self._flags  # a reply is never skipped: its flag is _REPLY alone

    def key_hash(self, index: int) -> int:
        return self._hashes[index]

    def definition(self, index: int) -> Definition:
        """The definition an entry was made from, without reading the entry back."""
        return self._definitions[self._definition_of[index]]

    def requests(self) -> Iterator[Request]:
        for index in range(len(self._flags)):
            if not self._flags[index] & _SKIPPED:
                entry = self[index]
                assert isinstance(entry, Request)
                yield entry

    def request(self, number: int) -> Request:
        """The request numbered `number` (from 0) among the requests alone."""
        if not self._skipped:
            entry = self[number]
        else:
            if len(self._request_indexes) != self.request_count:
                wanted = (i for i in range(len(self._flags)) if not self._flags[i] & _SKIPPED)
                self._request_indexes = array("q", wanted)
            entry = self[self._request_indexes[number]]
        assert isinstance(entry, Request)
        return entry

    def skipped(self) -> list[RenderedMessage]:
        return [self._skipped[i] for i in sorted(self._skipped)]

    def keys(self) -> KeyFilter:
        """The ledger keys of these messages, for reading only their keys' states."""
        return KeyFilter(self)

    def _read(self, index: int) -> Request:
        assert self._file is not None
        try:
            self._file.flush()
        except OSError as exc:
            raise _spill_failed(exc) from None
        start = self._offsets[index]
        end = self._offsets[index + 1] if index + 1 < len(self._offsets) else self._size
        offset, chunk = self._chunk
        if not offset <= start or end > offset + len(chunk):
            # Read on ahead when records are read in the order they were written (a plan
            # printed in build order): one system call for many records.
            onward = offset <= start <= offset + len(chunk)
            size = max(end - start, _READ_AHEAD) if onward else end - start
            self._chunk = offset, chunk = start, os.pread(self._file.fileno(), size, start)
        return self._request(marshal.loads(chunk[start - offset : end - offset]))

    def _request(self, record: tuple[Any, ...]) -> Request:
        number, address, key, item_key, values, stream, data, files, fingerprint, redacted, sent = (
            record[:11]
        )
        parent_key, parent_address = record[11:]
        message = RenderedMessage(self._definitions[number], address, key, item_key, values)
        attachments = tuple(self._attachments[n] for n in files)
        hashes = FieldHashes(
            stream, data, file_ids_of(attachments), self._secrets if redacted else None, parent_key
        )
        return Request(
            message,
            stream,
            data,
            attachments,
            fingerprint,
            hashes,
            sent,
            parent_key,
            parent_address,
        )

    # -- checks -------------------------------------------------------------------------------

    def duplicate_keys(self) -> Iterator[tuple[RenderedMessage, RenderedMessage]]:
        """(message, the first message with its ledger key) for each key used twice: requests
        first, then skipped messages, in build order."""
        if not self._repeated:
            return
        seen: dict[str, RenderedMessage] = {}
        requests_then_skipped = [i for i in range(len(self)) if not self.is_skipped(i)]
        requests_then_skipped += sorted(self._skipped)
        for index in requests_then_skipped:
            if self._hashes[index] not in self._repeated:
                continue
            entry = self[index]
            message = entry.message if isinstance(entry, Request) else entry
            first = seen.setdefault(message.key, message)
            if first is not message:
                yield message, first


def _spill_failed(exc: OSError) -> UserError:
    return UserError(
        f"cannot write the messages of this plan to a temporary file in "
        f"{tempfile.gettempdir()} ({exc.strerror or exc}); a plan of more than "
        f"{SPILL_AFTER:,} messages keeps them there: free space, or point TMPDIR at a "
        "directory with room"
    )


def _close(file: IO[bytes]) -> None:
    with contextlib.suppress(OSError):  # what was left to write no longer matters
        file.close()


class KeyFilter(Collection[str]):
    """`key in filter` for the keys of a store, by hash: a false match (one in 2**64) only
    keeps one more key's state when the ledger is read."""

    def __init__(self, store: BuiltMessages) -> None:
        self._store = store

    def __contains__(self, key: object) -> bool:
        store = self._store
        return isinstance(key, str) and (hash(key) in store._key_hashes or key in store._watched)

    def __len__(self) -> int:
        store = self._store
        if not store._watched:
            return len(store._key_hashes)
        return len(store._key_hashes | {hash(k) for k in store._watched})

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for entry in self._store:
            key = entry.key
            if key not in seen:
                seen.add(key)
                yield key
        yield from sorted(self._store._watched - seen)


def duplicate_key_problems(store: BuiltMessages) -> list[Problem]:
    """Two messages under one ledger key would block each other: refuse, naming both."""
    problems = []
    for message, first in store.duplicate_keys():
        definition = message.definition
        problems.append(
            Problem(
                definition.where("id") if "id" in definition.data else definition.location,
                f"ledger key '{message.key}' is also the key of {first.address} "
                f"({first.definition.location}); give one of them a different 'id'",
                "id",
                message.item_key,
            )
        )
    return problems
