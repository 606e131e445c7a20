"""Group commit for the file ledger: lines queued while one write is on its way to disk go
to disk together in the next.

A caller that needs its line on disk (a claim) writes it itself, with every line queued before
it, when no write is running: no other thread is woken. While a write runs, the lines that
callers bring are queued, and a writer thread writes them all as soon as the running write is
done, again and again while callers wait: one sync after another, with no gap for a waiting
caller to wake up and take its turn. A finished write wakes only the callers whose lines it
held, each on a latch of its own (a shared condition woke every waiter for every write, which
at 32 senders cost more than the syncs). A line nobody waits for (a reply's outcome) is queued
and goes to disk with the next write anyway: the sender waits for it before it reports it.

Where the system has O_DSYNC the file is opened with it: a write returns once its data and the
file's new size are on disk (what fdatasync promises, and all an append needs to be read back
after a crash). That is one system call where a write and an fsync were two, and each costs a
wait for the GIL while many senders run. Without O_DSYNC each write is followed by an fsync.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

_DELETED = "(deleted)"  # the filename of the OSError for a ledger deleted under the writer


class AppendFailed(Exception):
    """A line could not be put on disk (nor any line after the first failed write)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class Appender:
    """Appends lines to one open file, in the order they were queued."""

    def __init__(self, fd: int, size: int, synced: bool) -> None:
        self._fd = fd
        self._synced = synced  # opened with O_DSYNC: each write returns once it is on disk
        self._size = size  # the file's size after the last write: a failed write is cut back
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer thread waits here
        self._queued: list[bytes] = []
        self._waiting: list[tuple[int, Any]] = []  # (ticket, latch) of callers waiting
        self._last = 0  # tickets handed out
        self._durable = 0  # every line up to this ticket is on disk
        self._busy = False  # a write is running (the writer's or a caller's)
        self._broken: OSError | None = None  # a write failed: nothing more is written
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="commbox-ledger", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> int:
        """Queue a line; its ticket, for `wait`. It goes to disk with the next write."""
        with self._lock:
            return self._queue(data)

    def append(self, data: bytes) -> None:
        """Queue a line and return once it is on disk."""
        with self._lock:
            ticket = self._queue(data)
            latch = self._turn(ticket)
        self._done_with(latch, ticket)

    def wait(self, ticket: int) -> None:
        """Return once the line of `ticket` is on disk."""
        if self._durable >= ticket:
            return
        with self._lock:
            if self._durable >= ticket:
                return
            if self._broken is not None:
                raise AppendFailed(self._broken)
            latch = self._turn(ticket)
        self._done_with(latch, ticket)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            self._closing = True
            self._work.notify()
        self._thread.join()

    def _queue(self, data: bytes) -> int:
        if self._broken is not None:  # a torn write must not be followed by more lines
            raise AppendFailed(self._broken)
        if self._closing:
            raise RuntimeError("the ledger is not open for writing")
        self._queued.append(data)
        self._last += 1
        return self._last

    def _turn(self, ticket: int) -> Any:
        """Under the lock: a latch to wait on while a write runs; None when this caller is to
        write the queue itself (and now is the one writing)."""
        if self._busy:
            latch = _latch()
            self._waiting.append((ticket, latch))
            return latch
        self._busy = True
        return None

    def _done_with(self, latch: Any, ticket: int) -> None:
        if latch is None:
            self._write_queue()
        else:
            latch.acquire()  # released once a write held `ticket`, or failed
        if self._durable < ticket:
            assert self._broken is not None
            raise AppendFailed(self._broken)

    def _write_queue(self) -> None:
        """Write what is queued (this thread set _busy); wake those it covered."""
        with self._lock:
            batch, self._queued, last = self._queued, [], self._last
        error = self._flush(b"".join(batch))
        with self._lock:
            if error is None:
                self._durable = last
                done = [w for w in self._waiting if w[0] <= last]
                self._waiting = [w for w in self._waiting if w[0] > last]
            else:  # every line of the write fails, and every line queued after it
                self._broken = error
                done, self._waiting, self._queued = self._waiting, [], []
            self._busy = False
            if self._closing or (self._queued and self._waiting):
                self._work.notify()  # callers wait for lines queued meanwhile: the writer's turn
        for _, latch in done:
            latch.release()

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._busy or not (self._queued and (self._waiting or self._closing)):
                    if self._closing and not self._busy and not self._queued:
                        return
                    self._work.wait()
                self._busy = True
            self._write_queue()

    def _flush(self, data: bytes) -> OSError | None:
        try:
            _write_all(self._fd, data)
            if not self._synced:
                os.fsync(self._fd)
        except OSError as exc:
            _truncate(self._fd, self._size)  # leave no torn line behind, where it can be cut
            return exc
        self._size += len(data)
        if os.fstat(self._fd).st_nlink == 0:
            # Deleted under us: what follows would be recorded nowhere. Stop.
            return OSError(errno.ENOENT, "deleted while apply was running", _DELETED)
        return None


def deleted(error: OSError) -> bool:
    """Whether the ledger file was deleted while it was being written."""
    return error.errno == errno.ENOENT and error.filename == _DELETED


def _latch() -> Any:
    latch = threading.Lock()
    latch.acquire()
    return latch


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _truncate(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:  # the next apply cuts the torn line
        pass
