"""What apply shows while it sends: a bar on a terminal, a line per result otherwise.

Without a terminal (a CI log), each result is a line with its running count, in the plan's
order: a result that comes back early waits for the ones planned before it, so a log reads
like the plan it follows.
"""

from __future__ import annotations

import time

from commbox_yaml.output import Console, is_terminal
from commbox_yaml.send import Outcome, SendResult


class Progress:
    """A bar on a terminal (done/total, rate, ETA); a line per result otherwise."""

    def __init__(self, console: Console, total: int, quiet: bool = False) -> None:
        self.console = console
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.started = time.monotonic()
        self.bar = not quiet and is_terminal(console.stderr)
        self._waiting: dict[int, SendResult] = {}  # come back before one planned earlier
        self._next = 0  # the plan position of the next line to print
        self._printed = 0

    def update(self, index: int, result: SendResult) -> None:
        """The result of the `index`th planned send (results come in any order)."""
        self.done += 1
        if self.quiet:
            return
        if self.bar:
            if result.outcome is not Outcome.SENT:
                self.console.stderr.write("\r\x1b[K")
                self.console.err(_line(result))
            self._draw()
            return
        self._waiting[index] = result
        while self._next in self._waiting:
            self._print(self._waiting.pop(self._next))
            self._next += 1

    def _print(self, result: SendResult) -> None:
        self._printed += 1
        width = len(str(self.total))
        self.console.out(f"[{self._printed:>{width}}/{self.total}]{_line(result)}")

    def _draw(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else 0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        self.console.stderr.write(
            f"\r[{bar}] {self.done}/{self.total}  {rate:.1f}/s  ETA {eta:.0f}s"
        )
        self.console.stderr.flush()

    def close(self) -> None:
        if self.bar and self.done:
            self.console.stderr.write("\n")
        for index in sorted(self._waiting):  # after a stop: the rest, still in plan order
            self._print(self._waiting[index])
        self._waiting.clear()


def _line(result: SendResult) -> str:
    detail = ""
    if result.outcome is Outcome.SENT:
        detail = (
            f"as object {result.object_id}"
            if result.object_id is not None
            else "(the reply named no object id)"
        )
        if result.whatsapp_id is not None:  # a v2 WhatsApp template
            detail = f"as WhatsApp message {result.whatsapp_id}" + (
                f", object {result.object_id}" if result.object_id is not None else ""
            )
    elif result.outcome is not Outcome.NOT_SENT:
        status = f"HTTP {result.status}: " if result.status else ""
        detail = f"{status}{result.description or ''}"
    return f" {result.outcome.value:<8} {result.address}  {detail}".rstrip()
