"""reconcile: read CommBox back for sends held as unknown, and settle them in the ledger."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from commbox_yaml.commands._help import PROJECT_ENV, epilog
from commbox_yaml.commands.remote import api_token, destination, remote_client
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError, ValidationFailed
from commbox_yaml.ledger import LedgerStore
from commbox_yaml.output import Console
from commbox_yaml.readback import Reader
from commbox_yaml.reconcile import Finding, ReadRefused, Reconciler, Result, select_keys

_LABELS = {
    Result.SENT: ("sent", "green"),
    Result.ABSENT: ("absent", "yellow"),
    Result.HELD: ("?", "red"),
    Result.NOTHING: ("-", "dim"),
}


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "reconcile",
        parents=parents,
        help="read CommBox back for sends held as unknown",
        description="For each key held as unknown ('?'), or each KEY given, look for its object "
        "in CommBox around the time it was sent: found once, it is recorded as sent with that "
        "object id; provably absent, the next apply sends it once; anything else stays held.",
        epilog=epilog(
            [
                "commbox-yaml reconcile",
                "commbox-yaml reconcile 'release-2.0[*]' --json",
                "commbox-yaml apply --reconcile --auto-approve",
            ],
            [
                "COMMBOX_API_TOKEN",
                "COMMBOX_BASE_URL",
                "COMMBOX_LEDGER_URL",
                "HTTPS_PROXY",
                "SSL_CERT_FILE",
                *PROJECT_ENV,
                "NO_COLOR",
            ],
            [
                ("0", "it ran, whatever it found (keys still held say why)"),
                ("1", "an error: no token, the token refused, a key or glob matching nothing, "),
                ("", "or a usage error"),
            ],
        ),
    )
    parser.add_argument(
        "keys",
        nargs="*",
        metavar="KEY",
        help="ledger keys, or quoted globs ('release-2.0[*]': * and ? match, [ ] are literal); "
        "default: every key held as unknown",
    )
    parser.add_argument("--json", action="store_true", help="print one result per key as JSON")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="against the local sandbox and its own ledger (.commbox/sandbox-ledger.jsonl)",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    ledger = ctx.ledger(args.sandbox)
    console = ctx.console
    show = None if args.json else TextReport(console, console.out)
    if ledger.exists():
        token = api_token(ctx, args.sandbox)
        with ledger.locked():
            for warning in ledger.warnings:
                console.err(f"warning: {warning}")
            findings = reconcile_keys(ctx, ledger, args.keys, token, args.sandbox, show)
    else:
        _no_ledger(ctx, ledger, args)  # never created here: it would satisfy must_exist
        findings = []
        if show:
            show.start([])
    if args.json:
        console.json_with_list(
            {"format_version": "1", "summary": _counts(findings)},
            "results",
            (f.as_dict() for f in findings),
        )
    return 0


def _no_ledger(ctx: Context, ledger: LedgerStore, args: argparse.Namespace) -> None:
    """A first run has no ledger and nothing to reconcile; anything else about it is an error."""
    if ctx.project().ledger_must_exist and not args.sandbox:
        raise UserError(
            f"the ledger {ledger.display} is missing and ledger.must_exist is true. Restore it "
            "(CI cache or artifact), or run 'commbox-yaml ledger init' for a first run"
        )
    if args.keys:
        raise UserError(f"no ledger at {ledger.display}, so no key {args.keys[0]!r} to reconcile")


def reconcile_first(
    ctx: Context, args: argparse.Namespace, ledger: LedgerStore, token: str
) -> None:
    """`apply --reconcile`: settle every held key before planning, under apply's lock."""
    console = ctx.console
    show = TextReport(console, console.err if args.json else console.out)
    reconcile_keys(ctx, ledger, (), token, args.sandbox, show)
    if not args.json:
        console.out()


def reconcile_keys(
    ctx: Context,
    ledger: LedgerStore,
    patterns: Sequence[str],
    token: str,
    sandbox: bool,
    show: TextReport | None,
) -> list[Finding]:
    """Reconcile the keys `patterns` select (all held ones when empty); the lock is held."""
    view = ledger.read(object_ids=True)
    keys = select_keys(view, patterns)
    if show:
        show.start(keys)
    if not keys:
        return []
    result = ctx.build()
    if result.problems:
        raise ValidationFailed(result.problems)
    wanted = set(keys)  # only these are held: a fan-out of 100,000 is read, not kept
    requests = {r.key: r for r in result.requests if r.key in wanted}
    api = ctx.project().api
    target = destination(ctx, sandbox)
    findings: list[Finding] = []
    with remote_client(ctx, sandbox, target, token) as client:
        reader = Reader(client)
        reconciler = Reconciler(api, reader, ledger, uuid.uuid4().hex[:12])

        def found(finding: Finding) -> None:
            findings.append(finding)
            if show:
                show.found(finding)

        try:
            reconciler.run(keys, view, requests, found)
        except ReadRefused as exc:
            raise UserError(
                f"{exc}: reconcile stopped; {len(findings)} of {len(keys)} keys were done. "
                f"Check the API key in {api.token_env}"
            ) from None
    if show:
        show.end()
    return findings


class TextReport:
    """Text output: a header, one line per key as it is settled, and a summary."""

    def __init__(self, console: Console, write: Callable[[str], None]) -> None:
        self.console = console
        self.write = write
        self.findings: list[Finding] = []

    def start(self, keys: Sequence[str]) -> None:
        if not keys:
            self.write("Nothing to reconcile: no key is held as unknown.")
        else:
            self.write(f"commbox-yaml reconcile: {len(keys)} key{'s' if len(keys) != 1 else ''}")

    def found(self, finding: Finding) -> None:
        self.findings.append(finding)
        label, colour = _LABELS[finding.result]
        self.write(f"  {self.console.style(f'{label:<6}', colour, 'bold')} {finding.key}")
        self.write(f"         {_explain(finding)}")

    def end(self) -> None:
        counts = _counts(self.findings)
        line = (
            f"Reconcile: {counts['sent']} sent, {counts['absent']} absent (sent by the next "
            f"apply), {counts['unknown']} still unknown."
        )
        self.write(self.console.style(line, "bold"))


def _explain(finding: Finding) -> str:
    if finding.result is Result.ABSENT:
        return f"{finding.reason}: the next apply sends it once"
    if finding.result is Result.HELD:
        return f"held: {finding.reason}"
    return finding.reason


def _counts(findings: Sequence[Finding]) -> dict[str, int]:
    return {r.value: sum(1 for f in findings if f.result is r) for r in Result}
