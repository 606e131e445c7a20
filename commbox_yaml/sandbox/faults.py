"""Which fault the next request to the Create Object endpoint meets: scripted, then periodic."""

from __future__ import annotations

import threading

from commbox_yaml.sandbox.wire import NO_FAULT, Fault


class FaultSchedule:
    """Scripted faults first, one per request, in order; then the periodic rules.

    The periodic rules count the requests to the endpoint (1-based): when several apply to one
    request, drop wins over store-then-fail, that over fail, fail over throttle. The settings
    are plain attributes, so a test may change them between runs.
    """

    def __init__(
        self,
        *,
        throttle_every: int = 0,
        throttle_retry_after: int | str | None = 1,
        fail_every: int = 0,
        fail_status: int = 500,
        drop_every: int = 0,
        store_then_fail_every: int = 0,
    ) -> None:
        self.throttle_every = throttle_every
        self.throttle_retry_after = throttle_retry_after
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.drop_every = drop_every
        self.store_then_fail_every = store_then_fail_every
        self._lock = threading.Lock()
        self._script: list[Fault] = []
        self._requests = 0

    def script(self, faults: tuple[Fault, ...]) -> None:
        with self._lock:
            self._script.extend(faults)

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def next(self) -> Fault:
        """The fault for one more request (counted here), or NO_FAULT."""
        with self._lock:
            self._requests += 1
            if self._script:
                return self._script.pop(0)
            number = self._requests
        if _every(self.drop_every, number):
            return Fault(drop=True)
        if _every(self.store_then_fail_every, number):
            return Fault(status=500, store=True)
        if _every(self.fail_every, number):
            return Fault(status=self.fail_status)
        if _every(self.throttle_every, number):
            return Fault(status=429, retry_after=self.throttle_retry_after)
        return NO_FAULT


def _every(period: int, number: int) -> bool:
    return period > 0 and number % period == 0
