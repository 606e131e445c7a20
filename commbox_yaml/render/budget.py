"""The time budget for rendering: a template loop cannot run forever."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Wall-clock seconds to render one message (or to expand one for_each).
TEMPLATE_BUDGET_S = 10.0


class TemplateTimeout(Exception):
    """Rendering one message ran past its time budget."""


class TimeBudget:
    """A time limit on rendering, from SIGALRM.

    Jinja code is plain Python, so the signal handler's exception stops it between two
    bytecodes. Only the main thread gets signals; elsewhere (and on Windows) there is no limit.
    """

    def __init__(self) -> None:
        self.enabled = hasattr(signal, "setitimer") and (
            threading.current_thread() is threading.main_thread()
        )
        self._previous: Any = None

    def __enter__(self) -> TimeBudget:
        if self.enabled:
            self._previous = signal.signal(signal.SIGALRM, self._expired)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Rendering one message: stopped by TemplateTimeout when the budget runs out."""
        if not self.enabled:
            yield
            return
        signal.setitimer(signal.ITIMER_REAL, TEMPLATE_BUDGET_S)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    @staticmethod
    def _expired(signum: int, frame: Any) -> None:
        raise TemplateTimeout
