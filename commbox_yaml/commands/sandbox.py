"""sandbox: serve a local CommBox stand-in in the foreground, to rehearse a pipeline against."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from commbox_yaml.commands._help import epilog
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.sandbox import SandboxServer
from commbox_yaml.sandbox.reads import PAGE_SIZE_MAX

DEFAULT_PORT = 4010  # the usual port of API mock servers (Prism), unlikely to clash with apps


SANDBOX_TOKEN_ENV = "COMMBOX_SANDBOX_TOKEN"


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "sandbox",
        parents=parents,
        help="serve a local CommBox stand-in for rehearsals and tests",
        description="Serve CommBox's Create Object endpoint on 127.0.0.1: checks the Bearer\n"
        "token and the body's shape, answers as CommBox does, prints each message it\n"
        "receives, serves the objects back on the read endpoints (for reconcile), and can\n"
        "inject latency, 429s and 5xx. Point COMMBOX_BASE_URL at it.\n"
        "Ctrl-C stops it.",
        epilog=epilog(
            [
                "commbox-yaml sandbox --port 4010 --throttle-every 5",
                "COMMBOX_BASE_URL=http://127.0.0.1:4010 COMMBOX_API_TOKEN=x "
                "commbox-yaml apply --auto-approve",
            ],
            ["COMMBOX_SANDBOX_TOKEN"],
            [
                ("0", "stopped by Ctrl-C or SIGTERM"),
                ("1", "cannot listen on the port, or a usage error"),
            ],
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--token",
        help="accept only this Bearer token (default: $COMMBOX_SANDBOX_TOKEN, else any "
        "non-empty one); prefer the environment variable: arguments show in 'ps'",
    )
    _fault_options(parser)
    _read_options(parser)


# (option, what its N does): each is 0 (off) by default, and --help lists them in this order
_EVERY_NTH = (
    ("--latency-ms", "wait N ms before each answer"),
    ("--throttle-every", "answer every Nth request 429 Too Many Requests"),
    ("--fail-every", "answer every Nth request 5xx"),
    ("--drop-every", "read every Nth request, then close the connection without a reply"),
    (
        "--store-then-fail-every",
        "store every Nth message, then answer 500 (a send only reconcile can settle)",
    ),
)


def _fault_options(parser: argparse.ArgumentParser) -> None:
    """What the sandbox does wrong on purpose: latency, throttling, failures, drops."""
    for option, does in _EVERY_NTH:
        parser.add_argument(option, type=_count, default=0, metavar="N", help=does)
    parser.add_argument(
        "--retry-after",
        type=_count,
        default=1,
        metavar="S",
        help="the Retry-After seconds sent with the 429s of --throttle-every (default 1)",
    )
    parser.add_argument(
        "--fail-status",
        type=_server_error,
        default=500,
        metavar="CODE",
        help="the status the failures of --fail-every get (default 500)",
    )


def _read_options(parser: argparse.ArgumentParser) -> None:
    """How the sandbox serves reads: refused, and how its listing pages."""
    parser.add_argument(
        "--refuse-reads",
        action="store_true",
        help="answer every read (GET of objects) 401, as CommBox answers an API key without "
        "the right to read",
    )
    parser.add_argument(
        "--first-page",
        type=_first_page,
        default=1,
        metavar="0|1",
        help="the number of the listing's first page (default 1; page 0 is then answered as "
        "page 1): CommBox does not document it",
    )
    parser.add_argument(
        "--page-cap",
        type=_page_cap,
        default=PAGE_SIZE_MAX,
        metavar="N",
        help=f"list at most N objects a page, whatever pageSize asks (default {PAGE_SIZE_MAX})",
    )
    parser.add_argument(
        "--whatsapp-invalid",
        action="append",
        default=[],
        metavar="PHONE",
        help="answer a v2 WhatsApp template to PHONE 206 'Provider returned failure' (not a "
        "WhatsApp user); repeatable",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    server = SandboxServer(
        port=args.port,
        token=args.token or os.environ.get(SANDBOX_TOKEN_ENV) or None,
        latency_ms=args.latency_ms,
        throttle_every=args.throttle_every,
        throttle_retry_after=args.retry_after,
        fail_every=args.fail_every,
        fail_status=args.fail_status,
        drop_every=args.drop_every,
        store_then_fail_every=args.store_then_fail_every,
        refuse_reads=args.refuse_reads,
        first_page=args.first_page,
        page_cap=args.page_cap,
        whatsapp_invalid=tuple(args.whatsapp_invalid),
        output=ctx.console.stdout,
        record_requests=False,  # it prints each one; the objects stay, for the reads
    )
    stopped = threading.Event()
    with _stop_on_sigterm(stopped.set):
        try:
            _start(server, args.port)
            _announce(ctx, server, args)
            _serve_until(stopped)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a foreground server ends: not an error
        finally:
            server.stop()
    ctx.console.out("sandbox stopped.")
    return 0


def _start(server: SandboxServer, port: int) -> None:
    try:
        server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} is already in use: pick another with --port (0 picks a free one)"
            ) from exc
        raise UserError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc


def _announce(ctx: Context, server: SandboxServer, args: argparse.Namespace) -> None:
    # The token itself is never printed: it may be a real one.
    token = (
        f"the one given with --token or {SANDBOX_TOKEN_ENV}"
        if server.token_required
        else "any non-empty"
    )
    out = ctx.console.out
    out(f"CommBox sandbox listening on {server.url} (token: {token})")
    out(f"  export COMMBOX_BASE_URL={server.url}")
    faults = _faults(args)
    if faults:
        out(f"  faults: {', '.join(faults)}")
    out("  Ctrl-C stops it.")
    ctx.console.stdout.flush()  # a script reading the URL from a pipe must see it now


def _faults(args: argparse.Namespace) -> list[str]:
    faults = []
    if args.latency_ms:
        faults.append(f"{args.latency_ms} ms latency")
    if args.throttle_every:
        faults.append(f"429 {_every(args.throttle_every)} (Retry-After: {args.retry_after})")
    if args.fail_every:
        faults.append(f"{args.fail_status} {_every(args.fail_every)}")
    if args.drop_every:
        faults.append(f"connection dropped {_every(args.drop_every)}")
    if args.store_then_fail_every:
        faults.append(f"stored then 500 {_every(args.store_then_fail_every)}")
    if args.refuse_reads:
        faults.append("reads refused (401)")
    if args.first_page != 1:
        faults.append(f"pages counted from {args.first_page}")
    if args.page_cap != PAGE_SIZE_MAX:
        faults.append(f"at most {args.page_cap} objects a page")
    if args.whatsapp_invalid:
        listed = ", ".join(args.whatsapp_invalid)
        faults.append(f"v2 WhatsApp templates to {listed} answered 206 (not a WhatsApp user)")
    return faults


def _every(number: int) -> str:
    if number == 1:
        return "every request"
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"every {number}{suffix} request"


def _serve_until(stopped: threading.Event) -> None:
    # A short wait in a loop keeps the main thread responsive to signals on every platform.
    while not stopped.wait(0.2):
        pass


@contextmanager
def _stop_on_sigterm(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM (a service manager, `kill`) ends the server as cleanly as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value} is not {what}")
    return value


def _port(text: str) -> int:
    return _integer(text, 0, 65535, "a port (0-65535)")


def _count(text: str) -> int:
    return _integer(text, 0, 10**9, "zero or more")


def _server_error(text: str) -> int:
    return _integer(text, 500, 599, "a 5xx status")


def _first_page(text: str) -> int:
    return _integer(text, 0, 1, "0 or 1")


def _page_cap(text: str) -> int:
    return _integer(text, 1, PAGE_SIZE_MAX, f"from 1 to {PAGE_SIZE_MAX}")
