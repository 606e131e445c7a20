"""Connections that know when a request left, and the deadline that ends a reply.

urllib3 alone cannot tell a request that never left from one whose reply was lost (a TLS
handshake that times out and a reply that times out are both a `ReadTimeoutError`), so the
pools' connection class (urllib3's `ConnectionCls` extension point) notes when the first byte
of a request is handed to the socket, and which socket it is.

Sockets keep urllib3's timeouts (connect, and each read); the watchdog shuts down the socket of
a request whose whole reply runs past `timeout_s`, whatever its framing, so a server that
trickles bytes cannot hold a worker (or a SIGTERM) forever.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Attempt:
    """One request's progress, shared by the calling thread and the watchdog."""

    def __init__(self, deadline: float, timeout_s: float) -> None:
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.connecting = False
        self.left = False  # a byte of the request was handed to the socket
        self.expired = False
        self.ended = False  # its connection is going back to the pool: hands off
        self.sock: Any = None  # the socket the request went out on, as its connection made it
        self.connection: _Tracking | None = None
        self.lock = threading.Lock()

    def end(self) -> None:
        """No shutdown after this: the connection may serve the next request."""
        with self.lock:
            self.ended = True


_current = threading.local()
_AWAITING = threading.Lock()  # a connection's `awaiting` is checked and changed under it


def _attempt() -> Attempt | None:
    return getattr(_current, "attempt", None)


def track(attempt: Attempt | None) -> None:
    """`attempt` is the request this thread makes now (None: none)."""
    _current.attempt = attempt


class _Tracking:
    """Mixed into urllib3's connection classes (the pools' `ConnectionCls`, urllib3's public
    extension point): notes the socket each connection makes, and when the first byte of a
    request leaves on it. Sockets keep urllib3's timeouts; the watchdog bounds the whole
    reply.

    A connection goes back into service only once its last reply was judged whole and in step
    (`Client._request`): urllib3 returns a connection to its pool as soon as a reply's body is
    read, and until then `is_connected` says no, so the pool closes it instead of handing it
    to the next request, which would read whatever else it holds (a stray reply).
    """

    sock: Any
    made_sock: Any = None  # the socket as connect() left it: the watchdog's to shut down
    awaiting: Attempt | None = None  # the attempt whose reply is not judged yet

    def connect(self) -> None:
        attempt = _attempt()
        if attempt is not None:
            attempt.connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            if attempt is not None:
                attempt.connecting = False
        # http.client hands the socket to a reply that ends the connection and sets
        # `self.sock` to None: the watchdog must still find it then.
        self.made_sock = self.sock

    def send(self, data: Any) -> None:
        attempt = _attempt()
        if attempt is not None and not attempt.connecting:  # not a proxy's CONNECT
            if self.sock is None:
                self.connect()
            with _AWAITING:
                self.awaiting = attempt
            with attempt.lock:
                attempt.connection = self
                attempt.sock = self.made_sock
                attempt.left = True
                # The connect deadline is spent; the reply gets its own, from the last byte.
                attempt.deadline = time.monotonic() + attempt.timeout_s
        super().send(data)  # type: ignore[misc]

    @property
    def is_connected(self) -> bool:
        if self.awaiting is not None:
            return False
        return bool(super().is_connected)  # type: ignore[misc]

    def in_step(self, attempt: Attempt) -> None:
        """`attempt`'s reply was whole and in step: the connection may serve the next one."""
        with _AWAITING:  # never clear a later request's mark
            if self.awaiting is attempt:
                self.awaiting = None


class TrackedHTTPConnection(_Tracking, HTTPConnection):
    pass


class TrackedHTTPSConnection(_Tracking, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = TrackedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class Watchdog:
    """Shuts down the socket of any request still running at its deadline.

    urllib3's read timeout is per `recv`: a server that trickles a byte a second never trips
    it. Requests come and go without a lock (a dict's set and pop are atomic): the watchdog
    looks over the few running ones every TICK_S, so a deadline is kept to within TICK_S.
    """

    TICK_S = 0.05

    def __init__(self) -> None:
        self._active: dict[int, Attempt] = {}
        self._ids = itertools.count()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def add(self, attempt: Attempt) -> int:
        number = next(self._ids)
        self._active[number] = attempt
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="commbox-deadlines", daemon=True
                    )
                    self._thread.start()
        return number

    def discard(self, number: int) -> None:
        self._active.pop(number, None)

    def close(self) -> None:
        self._closed.set()

    def _run(self) -> None:
        while not self._closed.wait(self.TICK_S):
            now = time.monotonic()
            for attempt in list(self._active.values()):
                if attempt.deadline <= now and not attempt.expired:
                    self._expire(attempt)

    @staticmethod
    def _expire(attempt: Attempt) -> None:
        with attempt.lock:
            if attempt.ended:
                return
            attempt.expired = True
            if attempt.sock is not None:
                with contextlib.suppress(OSError):
                    attempt.sock.shutdown(socket.SHUT_RDWR)
