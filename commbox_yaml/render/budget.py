"""Time budgets for rendering: a template loop cannot run forever, nor can many slow ones.

One message (or one for_each's expansion) may take TEMPLATE_BUDGET_S; all the messages of one
build together may take RUN_BUDGET_S, counting only time spent rendering. Both are read at each
use, so a test can set them.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Wall-clock seconds to render one message (or to expand one for_each).
TEMPLATE_BUDGET_S = 10.0
# Wall-clock seconds to render every message of one build: 20,000 messages of the benchmark
# project render in about 3 s, so only fan-outs far past 100,000 or slow templates reach it.
RUN_BUDGET_S = 60.0


class TemplateTimeout(Exception):
    """Rendering ran past a time budget: the run's (`run`) or one message's."""

    def __init__(self, run: bool) -> None:
        super().__init__("the run's budget" if run else "one message's budget")
        self.run = run


class TimeBudget:
    """The budgets of one build, from SIGALRM.

    Jinja code is plain Python, so the signal handler's exception stops it between two
    bytecodes. Only the main thread gets signals; elsewhere (and on Windows) there is no limit.
    """

    def __init__(self) -> None:
        self.enabled = hasattr(signal, "setitimer") and (
            threading.current_thread() is threading.main_thread()
        )
        self.spent = 0.0  # seconds rendered so far in this build
        self.exhausted = False  # the run's budget is spent: nothing more is rendered
        self._run_limited = False  # the running timer ends with the run's budget
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
        """Rendering one message: stopped by TemplateTimeout when either budget runs out."""
        if not self.enabled:
            yield
            return
        remaining = RUN_BUDGET_S - self.spent
        if remaining <= 0:
            self.exhausted = True
            raise TemplateTimeout(run=True)
        self._run_limited = remaining <= TEMPLATE_BUDGET_S
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, min(TEMPLATE_BUDGET_S, remaining))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.spent += time.monotonic() - started

    def _expired(self, signum: int, frame: Any) -> None:
        if self._run_limited:
            self.exhausted = True
        raise TemplateTimeout(self._run_limited)
