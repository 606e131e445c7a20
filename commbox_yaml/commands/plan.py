"""plan: what apply would do, against the ledger; never touches the network."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from commbox_yaml.commands._help import PROJECT_ENV, USAGE_ERROR, epilog
from commbox_yaml.commands.remote import destination
from commbox_yaml.context import Context
from commbox_yaml.errors import ValidationFailed
from commbox_yaml.ledger import LedgerStore
from commbox_yaml.plan import Plan, make_plan
from commbox_yaml.planfile import save_plan
from commbox_yaml.report import REPORTERS
from commbox_yaml.report.describe import COMPACT_AFTER


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="only this message (NAME or NAME[KEY]); repeatable",
    )
    parser.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="KEY",
        help="send this held message (changed or unknown) again; a quoted glob matches "
        "several keys; repeatable",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="against the local sandbox and its own ledger (.commbox/sandbox-ledger.jsonl)",
    )


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "plan",
        parents=parents,
        help="show what apply would send (no network)",
        description="Show what apply would do for every message, against the send ledger:\n"
        "+ send, = unchanged, ~ changed (held), ? unknown (held), > a reply waiting for its\n"
        "parent (reply_to), blank: skipped by 'when'.\n"
        "No network, no token. A KEY of --replace may be a quoted glob: * any run of\n"
        "characters, ? one character; [ and ] are literal ('release-2.0[*]').",
        epilog=epilog(
            [
                "commbox-yaml plan",
                "commbox-yaml plan --var-file vars/prod.yaml -out release.plan",
                "commbox-yaml plan --format markdown > plan.md",
                "commbox-yaml plan --detail",
                "commbox-yaml plan --target release-email --replace 'release-2.0[*]'",
                "commbox-yaml plan --detailed-exitcode",
            ],
            [*PROJECT_ENV, "COMMBOX_LEDGER_URL", "COMMBOX_BASE_URL", "NO_COLOR"],
            [
                ("0", "planned (with --detailed-exitcode: nothing to send)"),
                USAGE_ERROR,
                ("2", "with --detailed-exitcode only: the plan would send something"),
            ],
        ),
    )
    add_selection_options(parser)
    parser.add_argument(
        "-out",
        "--out",
        dest="out",
        metavar="FILE",
        help="save the plan for 'apply FILE' (keys and fingerprints, no content)",
    )
    parser.add_argument(
        "--against",
        metavar="REF",
        help="also render the project as of git REF (a branch, tag or commit) and show, for "
        "each message whose request differs, the old and new text of every changed field",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the plan as JSON")
    output.add_argument(
        "--format",
        choices=["text", "json", "markdown"],
        default=None,
        help="text (default), json, or markdown for a pull-request comment",
    )
    add_detail_option(parser)
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plan would send something (0: nothing to send)",
    )


def add_detail_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detail",
        action="store_true",
        help=f"list every message; a plan of more than {COMPACT_AFTER} shows a line per "
        "definition and the held messages",
    )


def compute_plan(
    ctx: Context, args: argparse.Namespace, ledger: LedgerStore, object_ids: bool = False
) -> Plan:
    """The plan against the ledger; `object_ids`: with every object id the ledger names (an
    apply's stray-reply rule needs them)."""
    result = ctx.build(args.target)
    if result.problems:
        raise ValidationFailed(result.problems)
    # Only this plan's keys are kept, however long the ledger.
    view = ledger.read(result.messages.keys(), object_ids)
    for warning in view.warnings:
        ctx.console.err(f"warning: {warning}")
    return make_plan(result, view, ledger.display, args.replace, args.target)


def run(ctx: Context, args: argparse.Namespace) -> int:
    plan = compute_plan(ctx, args, ctx.ledger(args.sandbox))
    plan = dataclasses.replace(plan, destination=destination(ctx, args.sandbox))
    if args.against:
        from commbox_yaml.preview.against import requests_at

        against = requests_at(args.against, ctx.project(), ctx.var_files, ctx.var_assignments)
        plan = dataclasses.replace(plan, against=against)
    if args.out:
        save_plan(plan, ctx.path(args.out), plan.destination, args.out)
    REPORTERS["json" if args.json else args.format or "text"](ctx.console, plan, args.detail)
    if args.out and not args.json and args.format in (None, "text"):
        ctx.console.out()
        ctx.console.out(
            f"Saved the plan to {args.out}: 'commbox-yaml apply {args.out}' "
            "sends exactly these messages."
        )
    if args.detailed_exitcode and plan.send_count:
        return 2
    return 0
