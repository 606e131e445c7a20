"""The shared ledger in PostgreSQL: one row per key, claimed right before its request.

Concurrent applies from separate checkouts share one namespace. Each key is claimed in a short
transaction that locks its row, checks that nobody changed the key since this apply planned
(its event count) and that no live apply holds it, then writes `pending`; the database itself
enforces once per key, no global lock is needed.

A claim names the apply's session. The session is alive while any connection of that apply
holds a shared advisory lock on the session's id; when the apply dies, its connections go,
the lock with them, and its open claims are what they look like: a `pending` with no outcome,
held as unknown, exactly like a dangling `pending` in the file ledger. No timers.

Every event is stored as the exact JSON line the file ledger would hold, so digests (plan
files), export and import agree across backends. psycopg connections are not shared between
threads: each sending thread gets its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from commbox_yaml.errors import UserError
from commbox_yaml.ledger.model import (
    LedgerView,
    check_new_keys,
    fold,
    refused_write,
    stamp,
)
from commbox_yaml.ledger.pg_schema import LOCK_CLASS, migrate, schema_version
from commbox_yaml.ledger.url import LedgerUrl, MalformedUrl, parse

CONNECT_TIMEOUT_S = 10


class PostgresLedger:
    """One namespace of a ledger database."""

    def __init__(self, url: str, namespace: str, display: str) -> None:
        self.url = url
        try:  # the driver gets the parts, never the URL: libpq quotes a URL in its errors
            self._parts = parse(url)
        except MalformedUrl as exc:
            raise UserError(exc.explain("the ledger URL")) from None
        self._params: dict[str, Any] = self._parts.params()
        self.namespace = namespace
        self.display = display
        self.warnings: list[str] = []
        self._session: int | None = None
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._connections_lock = threading.Lock()
        self._broken: str | None = None

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            params = {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": "commbox-yaml",
                **self._params,
            }
            return psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            reason = connect_failure(exc, self._parts)
            raise Unreachable(
                f"cannot connect to the ledger database {self.display}: {reason}; "
                "check ledger.url (or COMMBOX_LEDGER_URL) and the password (in "
                "COMMBOX_LEDGER_URL, PGPASSWORD or ~/.pgpass; it is not shown)",
                reason,
            ) from None

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any] | None]:
        """A short connection for reading; None when the tables were never created."""
        with self._connect() as conn:
            try:
                if schema_version(conn) == 0:
                    yield None
                    return
                yield conn
            except psycopg.Error as exc:
                raise self._refused(exc) from None

    def _worker(self) -> psycopg.Connection[Any]:
        """This thread's connection, in the apply's session."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            if self._session is not None:  # keeps the session alive while this thread works
                conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (LOCK_CLASS, self._session))
            with self._connections_lock:
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _refused(self, exc: psycopg.Error) -> UserError:
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return UserError(
                f"the ledger database {self.display} refused: {_first_line(exc)}; the README "
                "lists the privileges commbox-yaml needs"
            )
        return UserError(f"the ledger database {self.display} failed: {_first_line(exc)}")

    # -- reading ----------------------------------------------------------------------------

    def exists(self) -> bool:
        with self._reading() as conn:
            if conn is None:
                return False
            row = conn.execute(
                "SELECT 1 FROM commbox_namespaces WHERE name = %s", (self.namespace,)
            ).fetchone()
            return row is not None

    def read(self, keys: Collection[str] | None = None, object_ids: bool = False) -> LedgerView:
        with self._reading() as conn:
            if conn is None:
                return LedgerView(self.display, False, 0, {})
            exists = conn.execute(
                "SELECT 1 FROM commbox_namespaces WHERE name = %s", (self.namespace,)
            ).fetchone()
            lines = [row[0] for row in conn.execute(_EVENTS, (self.namespace,))]
        ids: dict[str, str] | None = {} if object_ids else None
        states = fold(((json.loads(line), line) for line in lines), keys, ids)
        return LedgerView(self.display, exists is not None, len(lines), states, (), ids or {})

    def lines(self) -> Iterator[str]:
        with self._reading() as conn:
            if conn is None:
                return iter(())
            return iter([row[0] for row in conn.execute(_EVENTS, (self.namespace,))])

    # -- writing ----------------------------------------------------------------------------

    def create(self) -> bool:
        with self._connect() as conn:
            try:
                migrate(conn)
                row = conn.execute(
                    "INSERT INTO commbox_namespaces (name) VALUES (%s) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    (self.namespace,),
                ).fetchone()
            except psycopg.Error as exc:
                raise self._refused(exc) from None
        return row is not None

    @contextmanager
    def locked(self) -> Iterator[PostgresLedger]:
        """An apply's session: its id names its claims; its connections keep it alive."""
        conn = self._connect()
        try:
            try:
                migrate(conn)
                self._session = _start_session(conn, self.namespace)
            except psycopg.Error as exc:
                raise self._refused(exc) from None
            with self._connections_lock:
                self._connections.append(conn)
            self._broken = None
            yield self
        finally:
            self._end_session(conn)

    def _end_session(self, conn: psycopg.Connection[Any]) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(psycopg.Error):  # a lost connection took the session along
                conn.execute("DELETE FROM commbox_sessions WHERE id = %s", (session,))
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for each in connections:
            each.close()
        conn.close()
        self._local = threading.local()

    def append(self, event: dict[str, Any]) -> None:
        line = _line(event)
        ends_claim = event.get("event") not in ("pending", "retry")  # a retry keeps its claim
        self._transaction(
            event, lambda conn: _append(conn, self.namespace, event, line, ends_claim)
        )

    def claim(self, event: dict[str, Any], planned_events: int | None) -> bool:
        line = _line(event)
        session = self._session
        assert session is not None, "claim outside an apply's session"
        return self._transaction(
            event, lambda conn: _claim(conn, self.namespace, event, line, planned_events, session)
        )

    def _transaction(self, event: dict[str, Any], work: Any) -> bool:
        """Run `work` in one transaction on this thread's connection; a lost database stops."""
        if self._broken is not None:
            raise refused_write(self.display, self._broken, _RETRY, event)
        try:
            conn = self._worker()
            with conn.transaction():
                return bool(work(conn))
        except Unreachable as exc:
            self._broken = exc.reason
        except psycopg.Error as exc:
            self._broken = _first_line(exc)
        # Nothing more is written through this ledger: the apply stops.
        raise refused_write(self.display, self._broken, _RETRY, event)

    def import_lines(self, lines: list[str]) -> int:
        conn = self._worker()
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT 1 FROM commbox_namespaces WHERE name = %s FOR UPDATE",
                    (self.namespace,),
                )
                check_new_keys(self.read_in(conn), lines, self.display)
                _insert_all(conn, self.namespace, lines)
        except psycopg.errors.UniqueViolation:
            raise UserError(
                f"{self.display}: another apply added one of the file's keys meanwhile; nothing "
                "was imported. Run the import again"
            ) from None
        except psycopg.Error as exc:
            raise self._refused(exc) from None
        return len(lines)

    def read_in(self, conn: psycopg.Connection[Any]) -> LedgerView:
        lines = [row[0] for row in conn.execute(_EVENTS, (self.namespace,))]
        return LedgerView(self.display, True, len(lines), fold((json.loads(x), x) for x in lines))


class Unreachable(UserError):
    """The database could not be reached (`reason`: what libpq said)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_RETRY = "check the database"
_EVENTS = "SELECT line FROM commbox_events WHERE namespace = %s ORDER BY id"


def _line(event: dict[str, Any]) -> str:
    return json.dumps(stamp(event), ensure_ascii=False, separators=(",", ":"))


def _claim(
    conn: psycopg.Connection[Any],
    namespace: str,
    event: dict[str, Any],
    line: str,
    planned_events: int | None,
    session: int,
) -> bool:
    key = event["key"]
    if planned_events == 0:  # the common case, a key never seen: one insert claims it
        row = conn.execute(
            "INSERT INTO commbox_keys (namespace, key, events, claimed_by) VALUES (%s, %s, 1, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (namespace, key, session),
        ).fetchone()
        if row is not None:
            _insert_event(conn, namespace, key, 1, line)
            return True
    row = conn.execute(
        "SELECT events, claimed_by FROM commbox_keys WHERE namespace = %s AND key = %s FOR UPDATE",
        (namespace, key),
    ).fetchone()
    events, holder = row if row is not None else (0, None)
    if planned_events is not None:
        if events != planned_events:
            return False  # another apply claimed, sent or forgot it since this one planned
        if holder not in (None, session) and _alive(conn, holder):
            return False  # in flight in another apply (this one means to --replace it)
    if row is None:
        conn.execute(
            "INSERT INTO commbox_keys (namespace, key, events, claimed_by) VALUES (%s, %s, 1, %s)",
            (namespace, key, session),
        )
    else:
        conn.execute(
            "UPDATE commbox_keys SET events = %s, claimed_by = %s "
            "WHERE namespace = %s AND key = %s",
            (events + 1, session, namespace, key),
        )
    _insert_event(conn, namespace, key, events + 1, line)
    return True


def _append(
    conn: psycopg.Connection[Any], namespace: str, event: dict[str, Any], line: str, ends: bool
) -> bool:
    key = event["key"]
    if event.get("event") == "forget":
        _not_in_flight(conn, namespace, key)
    row = conn.execute(
        "UPDATE commbox_keys SET events = events + 1, "
        "claimed_by = CASE WHEN %s THEN NULL ELSE claimed_by END "
        "WHERE namespace = %s AND key = %s RETURNING events",
        (ends, namespace, key),
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO commbox_keys (namespace, key, events) VALUES (%s, %s, 1)",
            (namespace, key),
        )
        row = (1,)
    _insert_event(conn, namespace, key, row[0], line)
    return True


def _insert_event(
    conn: psycopg.Connection[Any], namespace: str, key: str, seq: int, line: str
) -> None:
    conn.execute(
        "INSERT INTO commbox_events (namespace, key, seq, line) VALUES (%s, %s, %s, %s)",
        (namespace, key, seq, line),
    )


def _insert_all(conn: psycopg.Connection[Any], namespace: str, lines: list[str]) -> None:
    counts: dict[str, int] = {}
    rows = []
    for line in lines:
        key = str(json.loads(line)["key"])
        counts[key] = counts.get(key, 0) + 1
        rows.append((namespace, key, counts[key], line))
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO commbox_keys (namespace, key, events) VALUES (%s, %s, %s)",
            [(namespace, key, n) for key, n in counts.items()],
        )
        cursor.executemany(
            "INSERT INTO commbox_events (namespace, key, seq, line) VALUES (%s, %s, %s, %s)",
            rows,
        )


def _not_in_flight(conn: psycopg.Connection[Any], namespace: str, key: str) -> None:
    """Forgetting a key while another apply sends it would let its outcome be lost."""
    row = conn.execute(
        "SELECT claimed_by FROM commbox_keys WHERE namespace = %s AND key = %s FOR UPDATE",
        (namespace, key),
    ).fetchone()
    if row is not None and row[0] is not None and _alive(conn, row[0]):
        session = conn.execute(
            "SELECT pid, host, started_at FROM commbox_sessions WHERE id = %s", (row[0],)
        ).fetchone()
        who = f"pid {session[0]} on {session[1]}" if session else "another process"
        raise UserError(
            f"{key} is being sent right now by an apply ({who}); forget it after that apply ends"
        )


def _alive(conn: psycopg.Connection[Any], session: int) -> bool:
    """Whether any connection of that apply is still open (it holds the session's lock)."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_CLASS, session)).fetchone()
    return not (row and row[0])


def _start_session(conn: psycopg.Connection[Any], namespace: str) -> int:
    with conn.transaction():
        conn.execute(
            "INSERT INTO commbox_namespaces (name) VALUES (%s) ON CONFLICT DO NOTHING",
            (namespace,),
        )
        row = conn.execute(
            "INSERT INTO commbox_sessions (namespace, pid, host) VALUES (%s, %s, %s) RETURNING id",
            (namespace, os.getpid(), socket.gethostname()),
        ).fetchone()
    assert row is not None
    session = int(row[0])
    conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (LOCK_CLASS, session))
    return session


def connect_failure(exc: psycopg.Error, parts: LedgerUrl) -> str:
    """Why a connection failed, worded from the URL's parts as they were read.

    The driver's own words are used only for failures not recognised here: the driver gets
    the parts, never the URL, so they cannot quote it (and output redacts the password)."""
    text = str(exc)
    host = ",".join(h or "the local socket" for h in parts.hosts) or "the local socket"
    port = ",".join(p for p in parts.ports if p) or "5432"
    user = repr(parts.user) if parts.user else "(the default user)"
    if "failed to resolve host" in text or "could not translate host name" in text:
        return f"the host {host} could not be found (DNS)"
    if "Connection refused" in text:
        return f"nothing accepts connections at {host}, port {port} (connection refused)"
    if "timeout expired" in text or "timed out" in text:
        return f"no answer from {host}, port {port} within {CONNECT_TIMEOUT_S} s"
    if "password authentication failed" in text:
        return f"password authentication failed for user {user}"
    if "no password supplied" in text:
        return f"the server wants a password for user {user}, and none was given"
    if "does not exist" in text and parts.database and "database" in text:
        return f"the database {parts.database!r} does not exist on {host}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__
