"""apply: send what the plan says, once, recording every send in the ledger."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from commbox_yaml.client import Client
from commbox_yaml.commands._help import PROJECT_ENV, SEND_ENV, epilog
from commbox_yaml.commands.plan import add_detail_option, add_selection_options, compute_plan
from commbox_yaml.commands.reconcile import reconcile_first
from commbox_yaml.commands.remote import api_token, destination, remote_client
from commbox_yaml.commands.sending import confirm, send_planned, summary_line, tally
from commbox_yaml.commands.testsend import check_options as check_test_options
from commbox_yaml.commands.testsend import run_test_sends
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import LedgerStore
from commbox_yaml.plan import Plan, PlannedMessage
from commbox_yaml.planfile import (
    SavedPlan,
    check_destination,
    check_digest,
    load_plan,
    stale_reasons,
)
from commbox_yaml.report import REPORTERS
from commbox_yaml.send import Outcome, SendResult
from commbox_yaml.testsend import parse_recipients


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "apply",
        parents=parents,
        help="send the planned messages, once",
        description="Plan, show the plan, ask, and send; or send exactly a saved plan file.\n"
        "Each send is recorded in the ledger, so nothing is sent twice. Without a terminal,\n"
        "apply needs --auto-approve or a plan file. --sandbox rehearses against a local\n"
        "CommBox stand-in with a ledger of its own: no account, no token.",
        epilog=epilog(
            [
                "commbox-yaml apply --sandbox --auto-approve",
                "commbox-yaml apply release.plan",
                "commbox-yaml apply --auto-approve --replace 'release-2.0[*]'",
                "commbox-yaml apply --test-to me@example.com --test-to '+972 54-444-4444'",
            ],
            [*SEND_ENV, *PROJECT_ENV, "NO_COLOR"],
            [
                ("0", "every send of this run was sent (or there was nothing to send)"),
                ("1", "an error, a send of this run failed or ended unknown, or a usage error;"),
                ("", "messages held from earlier runs (~, ?) do not count"),
                ("130", "stopped by SIGINT (143: SIGTERM): the sends in flight are recorded"),
            ],
        ),
    )
    parser.add_argument(
        "planfile",
        nargs="?",
        metavar="PLANFILE",
        help="a plan saved by 'plan -out FILE': sent as planned, no prompt",
    )
    add_selection_options(parser)
    parser.add_argument("--auto-approve", action="store_true", help="do not ask before sending")
    parser.add_argument(
        "--allow-bulk", action="store_true", help="allow more sends than limits.max_sends"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_detail_option(parser)
    parser.add_argument(
        "--expect-digest",
        metavar="DIGEST",
        help="with PLANFILE: send nothing unless the plan file's digest is DIGEST (the one "
        "'plan' printed, and a reviewer approved)",
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="first read CommBox back for keys held as unknown (see 'reconcile')",
    )
    parser.add_argument(
        "--test-to",
        action="append",
        default=[],
        metavar="RECIPIENT",
        help="send every targeted message to this email address or phone number instead of "
        "its recipients, under test: keys (real keys untouched); repeatable",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    project = ctx.project()
    recipients = None
    if args.test_to:
        check_test_options(args)
        recipients = parse_recipients(args.test_to)
    if args.planfile and (args.target or args.replace):
        raise UserError(
            "a plan file already fixes --target and --replace; make a new plan to change them"
        )
    if args.expect_digest and not args.planfile:
        raise UserError(
            "--expect-digest checks a plan file: 'commbox-yaml plan -out FILE', then "
            "'commbox-yaml apply FILE --expect-digest sha256:...'"
        )
    # A URL that does not parse, or would send the token astray, stops everything up front.
    target = destination(ctx, args.sandbox)
    ledger = ctx.ledger(args.sandbox)
    saved = load_plan(ctx.path(args.planfile), args.planfile) if args.planfile else None
    if saved is not None:  # refused whole, before the ledger is touched
        check_destination(saved, args.planfile, target, ledger.display)
        check_digest(saved, args.planfile, args.expect_digest)
    if project.ledger_must_exist and not args.sandbox and not ledger.exists():
        raise UserError(
            f"the ledger {ledger.display} is missing and ledger.must_exist is true: nothing was "
            "sent. Restore it (CI cache or artifact), or run 'commbox-yaml ledger init' for a "
            "first run"
        )
    token = api_token(ctx, args.sandbox)
    if recipients is not None:
        return run_test_sends(ctx, args, recipients, ledger, target, token)
    with ledger.locked():
        for warning in ledger.warnings:
            ctx.console.err(f"warning: {warning}")
        if args.reconcile:
            reconcile_first(ctx, args, ledger, token)
        plan = (
            compute_plan(ctx, args, ledger, True)
            if saved is None
            else _replan(ctx, args, ledger, saved)
        )
        plan = dataclasses.replace(plan, destination=target)  # for the digest it shows
        saved = None  # a plan file's messages (one dict each) are not held while sending
        if not args.json:
            REPORTERS["text"](ctx.console, plan, args.detail)
        sends = plan.sends
        if not sends:
            return _finish(ctx, args, plan, [], None)
        count = len(sends) + len(plan.following)  # with the replies that go after a parent
        if count > project.max_sends and not args.allow_bulk:
            raise UserError(
                f"this apply would send {count} messages, over limits.max_sends "
                f"({project.max_sends}); nothing was sent. Pass --allow-bulk if that is intended"
            )
        if not args.planfile and not args.auto_approve:
            confirm(
                ctx.console,
                count,
                args.json,
                "message",
                "--auto-approve, or apply a saved plan file",
            )
        with remote_client(ctx, args.sandbox, target, token) as client:
            return _send(ctx, args, plan, sends, ledger, client)


def _replan(ctx: Context, args: argparse.Namespace, ledger: LedgerStore, saved: SavedPlan) -> Plan:
    """The plan a plan file approved, made again now; refused whole when anything changed."""
    args.target, args.replace = list(saved.targets), list(saved.replace)
    plan = compute_plan(ctx, args, ledger, True)
    reasons = stale_reasons(saved, plan)
    if reasons:
        listed = "; ".join(reasons[:3]) + (
            f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
        )
        raise UserError(
            f"the plan {args.planfile} is stale, nothing was sent: "
            f"{listed}. Run 'commbox-yaml plan' again"
        )
    return plan


def _send(
    ctx: Context,
    args: argparse.Namespace,
    plan: Plan,
    sends: Sequence[PlannedMessage],
    ledger: Any,
    client: Client,
) -> int:
    following = plan.following  # replies (`>`) that go right after their parent
    results, refused, by_signal = send_planned(
        ctx, client, ledger, plan.ledger.object_ids, sends, args.json, following
    )
    code = _finish(ctx, args, plan, results, refused)
    return code if by_signal is None else by_signal


def _finish(
    ctx: Context,
    args: argparse.Namespace,
    plan: Plan,
    results: list[SendResult],
    refused: str | None,
) -> int:
    counts, failed = tally(results, refused)
    if args.json:
        ctx.console.json_with_list(
            {
                "format_version": "1",
                "summary": {o.value: n for o, n in counts.items()},
                "plan": plan.summary(),
            },
            "results",
            (r.as_dict() for r in results),
            {"error": refused},
        )
        return 1 if failed else 0
    if not results:
        ctx.console.out()
        ctx.console.out(_nothing_to_send(plan))
        return 0
    line = summary_line("Apply", counts)
    ctx.console.out(ctx.console.style(line, "bold", "red" if failed else "green"))
    if counts[Outcome.UNKNOWN]:
        ctx.console.out(
            "Unknown outcomes may have reached CommBox: they are held ('?'). 'commbox-yaml "
            "reconcile' reads CommBox back to settle them (or check by hand, --replace KEY)."
        )
    return 1 if failed else 0


def _nothing_to_send(plan: Plan) -> str:
    """'No changes' only when nothing is held: a held message is a change nobody sent."""
    summary = plan.summary()
    held = [
        f"{summary[action]} {action}"
        for action in ("changed", "unknown", "wait")
        if summary.get(action)
    ]
    if not held:
        return "No changes: nothing to send."
    return f"Nothing to send: {', '.join(held)} held (see the plan above)."
