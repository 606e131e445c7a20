"""The pace every worker keeps: `rate_per_s`, and the pauses a server asks for."""

from __future__ import annotations

import collections
import math
import threading
import time


class Pace:
    """When the next request may start: `rate_per_s` and any server-asked pause, for all workers.

    Two steps: `wait_turn` before a key is claimed reserves a slot (so that a claim is made
    shortly before its request, never long before), and `gate` right before the request
    leaves keeps the requests themselves on the `1 / rate_per_s` schedule, whatever the claim's
    durable write took: no second sees more than `rate_per_s` of them.
    """

    def __init__(self, rate_per_s: float) -> None:
        self._lock = threading.Lock()
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._gate_lock = threading.Lock()
        self._due = 0.0
        # when the last requests left, as many as one second may hold
        self._recent: collections.deque[float] = collections.deque(
            maxlen=max(1, math.floor(rate_per_s))
        )

    def wait_turn(self, stop: threading.Event) -> bool:
        """Block until this worker may send; False when apply is stopping."""
        if not self._interval and not self._paused_until:  # no rate, no pause yet: no wait
            return not stop.is_set()
        while True:
            with self._lock:
                now = time.monotonic()
                if now >= self._paused_until:
                    slot = max(now, self._next)
                    self._next = slot + self._interval
                    delay, reserved = slot - now, True
                else:
                    delay, reserved = self._paused_until - now, False
            if delay > 0 and stop.wait(delay):
                return False
            if stop.is_set():
                return False
            if reserved and time.monotonic() >= self._paused_until:
                return True

    def gate(self) -> None:
        """Block until this request may leave: on the `1 / rate_per_s` schedule (a request
        that left a little late lets the next ones make up at most two intervals), and never
        a request more than `rate_per_s` within one second. The wait is short (a slot was
        reserved before the claim), and a claimed request always goes."""
        if not self._interval:
            return
        while True:
            with self._gate_lock:
                now = time.monotonic()
                self._due = max(self._due, now - 2 * self._interval)
                wait = self._due - now
                if len(self._recent) == self._recent.maxlen:
                    wait = max(wait, self._recent[0] + 1.0 - now)
                if wait <= 0:
                    self._recent.append(now)
                    self._due += self._interval
                    return
            time.sleep(wait)

    def paused(self) -> bool:
        """Whether a server-asked pause holds every worker now."""
        return time.monotonic() < self._paused_until  # one float read: no lock needed

    def pause(self, seconds: float) -> None:
        """A 429 or 503 slows every worker, not only the one that saw it."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
