"""The send phase apply and its test sends share: the workers, the progress, the signals."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType

from commbox_yaml.client import Client
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import LedgerStore
from commbox_yaml.output import Console
from commbox_yaml.plan import PlannedMessage
from commbox_yaml.report.progress import Progress
from commbox_yaml.send import Outcome, Sender, SendResult

EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def send_planned(
    ctx: Context,
    client: Client,
    ledger: LedgerStore,
    object_ids: Mapping[str, str],
    sends: Sequence[PlannedMessage],
    quiet: bool,
    following: Sequence[PlannedMessage] = (),
) -> tuple[list[SendResult], str | None, int | None]:
    """Send `sends` (then `following`, each right after its parent), showing progress.

    Returns the results, why the whole apply stopped (already said on stderr), and the exit
    code a SIGINT/SIGTERM asks for, if one came: the sends in flight finish and are recorded."""
    stop = threading.Event()
    caught: list[int] = []
    sender = Sender(
        ctx.project().api,
        client,
        ledger,
        ctx.console.redactor,
        uuid.uuid4().hex[:12],
        stop,
        object_ids,
    )
    progress = Progress(ctx.console, len(sends) + len(following), quiet=quiet)
    with signals_stop(stop, caught):
        try:
            results = sender.send_all(sends, progress.update, following)
        finally:
            progress.close()
    if sender.refused:
        ctx.console.err(f"error: {sender.refused}; apply stopped, nothing more was sent")
    by_signal = EXIT_BY_SIGNAL.get(signal.Signals(caught[0]), 1) if caught else None
    return results, sender.refused, by_signal


@contextlib.contextmanager
def signals_stop(stop: threading.Event, caught: list[int]) -> Iterator[None]:
    """SIGINT/SIGTERM: start nothing new, let requests in flight finish and be recorded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in EXIT_BY_SIGNAL}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def confirm(console: Console, count: int, as_json: bool, noun: str, otherwise: str) -> None:
    """Ask on a terminal before sending `count` of `noun`; elsewhere, say what approves it."""
    what = f"{count} {noun}{'s' if count != 1 else ''}"
    if as_json or not sys.stdin.isatty():
        raise UserError(f"apply would send {what} and needs approval: pass {otherwise}")
    console.stdout.write(f"\nSend {what}? Only 'yes' is accepted: ")
    console.stdout.flush()
    if sys.stdin.readline().strip() != "yes":
        raise UserError("apply cancelled; nothing was sent")


def tally(results: Sequence[SendResult], refused: str | None) -> tuple[dict[Outcome, int], bool]:
    """How many results of each outcome, and whether the run failed (exit 1)."""
    counts = {o: sum(1 for r in results if r.outcome is o) for o in Outcome}
    failed = counts[Outcome.FAILED] + counts[Outcome.UNKNOWN] > 0 or refused is not None
    return counts, failed


def summary_line(what: str, counts: dict[Outcome, int]) -> str:
    """`Apply complete: 3 sent, 0 failed, 0 unknown.`; `stopped`, with the count not sent,
    when a signal or a refusal stopped it; and the keys another apply took, the replies held."""
    parts = [
        f"{counts[Outcome.SENT]} sent",
        f"{counts[Outcome.FAILED]} failed",
        f"{counts[Outcome.UNKNOWN]} unknown",
    ]
    if counts[Outcome.NOT_SENT]:
        parts.append(f"{counts[Outcome.NOT_SENT]} not sent")
    if counts[Outcome.TAKEN]:
        parts.append(f"{counts[Outcome.TAKEN]} taken by another apply")
    if counts[Outcome.HELD]:
        parts.append(f"{counts[Outcome.HELD]} held (their parent was not sent)")
    state = "stopped" if counts[Outcome.NOT_SENT] else "complete"
    return f"{what} {state}: {', '.join(parts)}."
