"""apply --test-to: send every targeted message to test recipients, under `test:` keys."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from commbox_yaml.commands.remote import remote_client
from commbox_yaml.commands.sending import confirm, send_planned, summary_line, tally
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError, ValidationFailed
from commbox_yaml.ledger import LedgerStore
from commbox_yaml.output import Console
from commbox_yaml.plan import make_plan
from commbox_yaml.send import Outcome, SendResult
from commbox_yaml.testsend import Recipients, RedirectPlan, key_for_test, make_test_plan


def check_options(args: argparse.Namespace) -> None:
    """--test-to sends the current messages as they are, to test recipients only: what
    approves, re-sends or settles real sends does not go with it."""
    for given, option in (
        (args.planfile, "a plan file"),
        (args.replace, "--replace"),
        (args.reconcile, "--reconcile"),
    ):
        if given:
            raise UserError(
                f"--test-to cannot be used with {option}: a test send covers every targeted "
                "message whatever its real action and never touches a real key; run it on "
                "its own ('commbox-yaml apply --test-to RECIPIENT [--target ADDRESS]')"
            )


def run_test_sends(
    ctx: Context,
    args: argparse.Namespace,
    recipients: Recipients,
    ledger: LedgerStore,
    target: str,
    token: str,
) -> int:
    project = ctx.project()
    with ledger.locked():
        for warning in ledger.warnings:
            ctx.console.err(f"warning: {warning}")
        result = ctx.build(args.target)
        if result.problems:
            raise ValidationFailed(result.problems)
        real = list(result.messages.keys())
        view = ledger.read([*real, *(key_for_test(k) for k in real)], True)
        for warning in view.warnings:
            ctx.console.err(f"warning: {warning}")
        plan = make_plan(result, view, ledger.display, (), args.target)
        tests = make_test_plan(result, plan, view, recipients)
        if not args.json:
            _show(ctx.console, tests, ledger.display)
        if not tests.sends:
            return _finish(ctx, args, tests, [], None)
        count = len(tests.sends)
        if count > project.max_sends and not args.allow_bulk:
            raise UserError(
                f"this apply would send {count} test messages, over limits.max_sends "
                f"({project.max_sends}); nothing was sent. Pass --allow-bulk if that is intended"
            )
        if not args.auto_approve:
            confirm(ctx.console, count, args.json, "test message", "--auto-approve")
        with remote_client(ctx, args.sandbox, target, token) as client:
            results, refused, by_signal = send_planned(
                ctx, client, ledger, view.object_ids, tests.planned, args.json
            )
        code = _finish(ctx, args, tests, results, refused)
        return code if by_signal is None else by_signal


def _show(console: Console, tests: RedirectPlan, ledger: str) -> None:
    sending = len({s.address for s in tests.sends})
    total = len({s.address for s in tests.sends} | {s.address for s in tests.skipped})
    requests = f" ({len(tests.sends)} requests)" if len(tests.sends) != sending else ""
    console.out(
        f"commbox-yaml apply --test-to: {sending} of {total} message"
        f"{'s' if total != 1 else ''} to test-send{requests} to "
        f"{', '.join(tests.recipients.all)}, "
        f"ledger {ledger} (test: keys)"
    )
    console.out()
    addresses = [s.address for s in tests.sends] + [s.address for s in tests.skipped]
    width = max(map(len, addresses), default=0) + 2
    for send in tests.sends:
        mark = console.style("t", "green", "bold")
        to = ", ".join(send.recipients)
        console.out(f"  {mark} {send.address:<{width}} {send.channel} -> {to}")
    for skip in tests.skipped:
        console.out(f"    {skip.address:<{width}} skipped: {skip.reason}")
    console.out()
    console.out(
        console.style(
            f"Test sends: {len(tests.sends)} to send, {len(tests.skipped)} skipped. Real "
            "messages are not sent, and their keys are not touched.",
            "bold",
        )
    )


def _finish(
    ctx: Context,
    args: argparse.Namespace,
    tests: RedirectPlan,
    results: Sequence[SendResult],
    refused: str | None,
) -> int:
    counts, failed = tally(results, refused)
    console = ctx.console
    if args.json:
        by_key = {r.key: r for r in results}
        items = []
        for send in tests.sends:
            item = send.as_dict()
            found = by_key.get(send.key)
            item.update(_result(found) if found else {"outcome": None})
            items.append(item)
        console.json_with_list(
            {
                "format_version": "1",
                "test_to": list(tests.recipients.all),
                "summary": {o.value: n for o, n in counts.items()},
                "tests": tests.summary(),
                "skipped": [s.as_dict() for s in tests.skipped],
            },
            "results",
            items,
            {"error": refused},
        )
        return 1 if failed else 0
    if not results:
        console.out()
        console.out("Nothing to test-send: no targeted message has a matching --test-to.")
        return 0
    line = summary_line("Test sends", counts)
    console.out(console.style(line, "bold", "red" if failed else "green"))
    if counts[Outcome.UNKNOWN]:
        console.out(
            "An unknown test send may have reached the test recipient: look there. It blocks "
            "nothing: the next test send goes out again."
        )
    return 1 if failed else 0


def _result(result: SendResult) -> dict[str, object]:
    found = result.as_dict()
    return {k: found[k] for k in ("outcome", "object_id", "status", "description", "attempts")}
