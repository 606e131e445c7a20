"""render ADDRESS: the exact request(s) one message would send."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any

from commbox_yaml.commands._help import PROJECT_ENV, USAGE_ERROR, epilog
from commbox_yaml.compile import Request
from commbox_yaml.context import Context
from commbox_yaml.conversation import child_path
from commbox_yaml.errors import CommboxError, ValidationFailed
from commbox_yaml.output import Console, safe_json
from commbox_yaml.plan import parent_sent
from commbox_yaml.report.data import message_object
from commbox_yaml.report.describe import sms_of
from commbox_yaml.report.recipient import recipient_view
from commbox_yaml.segments import segments_text


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "render",
        parents=parents,
        help="print the exact request(s) for one message",
        description="Print the exact request(s) one message would send: method, path, body,\n"
        "and the multipart parts. ADDRESS is NAME, or NAME[KEY] for one for_each item\n"
        "(NAME alone: every item). No network, no token.",
        epilog=epilog(
            [
                "commbox-yaml render release-email",
                "commbox-yaml render 'customer-whatsapp[globex]' --json",
                "commbox-yaml render oncall-sms --var version=1.4.1",
            ],
            [*PROJECT_ENV, "NO_COLOR"],
            [("0", "printed"), USAGE_ERROR],
        ),
    )
    parser.add_argument("address", metavar="ADDRESS")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help='print {"messages": [...]}')
    shown.add_argument(
        "--text", action="store_true", help="print the message as its recipient reads it"
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.build([args.address])
    if result.problems:
        raise ValidationFailed(result.problems)
    parents = parent_ids(ctx, result.requests)
    if args.json:
        ctx.console.json_with_list(
            {}, "messages", (_with_path(message_object(r), r, parents) for r in result.requests)
        )
        return 0
    for index, request in enumerate(result.requests):
        if index:
            ctx.console.out()
        if args.text:
            ctx.console.out(ctx.console.style(f"# {request.address}  ({request.channel})", "bold"))
            for line in recipient_view(request):
                ctx.console.out(line)
        else:
            show_request(ctx.console, request, _path(request, parents))
    for message in result.skipped:
        ctx.console.out(f"# {message.address}: skipped ('when' is false)")
    return 0


def parent_ids(ctx: Context, requests: Iterable[Request]) -> dict[str, Any]:
    """The object id of each reply's parent that the ledger has as sent (none when the
    ledger cannot be read: the path then shows a placeholder naming the parent's key)."""
    wanted = {r.parent_key for r in requests if r.parent_key is not None}
    if not wanted:
        return {}
    try:
        view = ctx.ledger().read(wanted)
    except CommboxError:
        return {}
    states = {key: view.state(key) for key in wanted}
    return {key: state.object_id for key, state in states.items() if parent_sent(state)}


def _path(request: Request, parents: dict[str, Any]) -> str:
    if request.parent_key is not None and request.parent_key in parents:
        return child_path(request, parents[request.parent_key])
    return request.path


def _with_path(shown: dict[str, Any], request: Request, parents: dict[str, Any]) -> dict[str, Any]:
    shown["request"]["path"] = _path(request, parents)
    return shown


def show_request(console: Console, request: Request, path: str | None = None) -> None:
    console.out(
        console.style(f"# {request.address}  (key {request.key}, {request.channel})", "bold")
    )
    size = sms_of(request)
    if size is not None:
        console.out(f"# SMS segments: {segments_text(size)}")
    console.out(f"{request.method} {path or request.path}")
    if request.parent_key is not None:
        console.out(f"# a reply in the conversation of {request.parent_address}")
    console.out(f"Content-Type: {request.content_type}")
    console.out()
    if not request.multipart:
        console.out_lines(safe_json(_indented(console.redactor.data(request.shown_body))))
        return
    console.out('part "data" (the JSON text of the data object):')
    console.out_lines(safe_json(_indented(console.redactor.data(request.data))))
    for attachment in request.files:
        console.out(
            f'part "file": {attachment.name} ({attachment.mime}, {attachment.size:,} bytes, '
            f"sha256 {attachment.sha256}) from {attachment.path}"
        )


def _indented(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
