"""ledger list | show KEY | forget KEY | init | export | import FILE | path: read and edit the
ledger, or say where it lives."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from commbox_yaml.commands._help import USAGE_ERROR, epilog
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.hints import did_you_mean
from commbox_yaml.keys import natural_key
from commbox_yaml.ledger import LedgerStore, LedgerView, keys_of
from commbox_yaml.ledger.transfer import read_export
from commbox_yaml.output import Console, safe_json


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "ledger",
        parents=parents,
        help="read and edit the send ledger",
        description="List, show, forget keys of, create, export or import into the send ledger,\n"
        "or print where it lives ('path': the file, or the database without its password).\n"
        "'forget KEY' makes the next plan treat KEY as never sent.",
        epilog=epilog(
            [
                "commbox-yaml ledger list",
                "commbox-yaml ledger show 'release-1.4.0[acme]' --json",
                "commbox-yaml ledger init",
                "commbox-yaml ledger export > ledger-backup.jsonl",
                "commbox-yaml ledger import .commbox/ledger.jsonl",
                'git add "$(commbox-yaml ledger path)"',
            ],
            ["COMMBOX_LEDGER_URL", "PGPASSWORD", "NO_COLOR"],
            [("0", "done"), USAGE_ERROR],
        ),
    )
    parser.add_argument(
        "action", choices=["list", "show", "forget", "init", "export", "import", "path"]
    )
    parser.add_argument(
        "key",
        nargs="?",
        metavar="KEY | FILE",
        help="a ledger key (for show, forget); a ledger file to add (for import)",
    )
    parser.add_argument("--sandbox", action="store_true", help="the sandbox's ledger")
    parser.add_argument("--json", action="store_true", help="print as JSON (list, show)")


def run(ctx: Context, args: argparse.Namespace) -> int:
    console = ctx.console
    if args.action == "path":  # opens nothing: CI asks it which file to commit back
        if args.key:
            raise UserError("ledger path takes no KEY or FILE: it prints where the ledger is")
        console.out(ctx.ledger_location(args.sandbox))
        return 0
    ledger = ctx.ledger(args.sandbox)
    if args.action in ("show", "forget") and not args.key:
        raise UserError(f"ledger {args.action} needs a KEY; 'commbox-yaml ledger list' shows them")
    if args.action == "import":
        return _import(ctx, ledger, args.key)
    if args.action == "init":
        created = ledger.create()
        console.out(f"{'Created' if created else 'Already exists:'} {ledger.display}")
        return 0
    if args.action == "forget":
        return _forget(ctx, ledger, args.key)
    view = ledger.read()
    for warning in view.warnings:
        console.err(f"warning: {warning}")
    if not view.exists:
        raise UserError(
            f"no ledger at {ledger.display} yet; 'commbox-yaml ledger init' creates one"
        )
    if args.action == "export":
        for line in ledger.lines():
            console.out(safe_json(line))  # the same events; \u escapes for what a log acts on
        return 0
    if args.action == "show":
        return _show(console, view, args.key, args.json)
    return _list(console, ledger, view, args.json)


def _forget(ctx: Context, ledger: LedgerStore, key: str) -> int:
    if not ledger.exists():  # never create one here: it would satisfy must_exist
        raise UserError(f"no ledger at {ledger.display}; there is nothing to forget")
    with ledger.locked():
        known = ledger.read().states
        if key not in known:
            raise _no_key(key, known)
        ledger.append({"event": "forget", "key": key})
    ctx.console.out(f"Forgot {key}: the next plan treats it as never sent.")
    return 0


def _show(console: Console, view: LedgerView, key: str, as_json: bool) -> int:
    state = view.states.get(key)
    if state is None:
        raise _no_key(key, view.states)
    rows = {
        "key": state.key, "status": state.status.value, "object_id": state.object_id,
        "sent_at": state.sent_at, "fingerprint": state.sent_fingerprint or state.fingerprint,
        "last_event_at": state.last_at, "last_status": state.last_status,
        "description": state.description, "events": state.events,
        "reconciled_at": state.reconciled_at,
        "fields": sorted(state.sent_fields or state.fields),
    }  # fmt: skip
    if state.whatsapp_id is not None:  # a v2 WhatsApp template
        rows = {**rows, "whatsapp_id": state.whatsapp_id}
    if as_json:
        console.json(rows)
        return 0
    for label, value in rows.items():
        if value not in (None, [], ""):
            shown = ", ".join(value) if isinstance(value, list) else value
            console.out(f"{label:<14} {shown}")
    return 0


def _list(console: Console, ledger: LedgerStore, view: LedgerView, as_json: bool) -> int:
    states = sorted(view.states.values(), key=lambda s: natural_key(s.key))
    if as_json:
        console.json_list(
            {
                "key": s.key,
                "status": s.status.value,
                "object_id": s.object_id,
                "sent_at": s.sent_at,
                "last_at": s.last_at,
            }
            for s in states
        )
        return 0
    console.out(f"{ledger.display}: {view.entries} entries, {len(states)} keys")
    for s in states:
        when = (s.sent_at or s.last_at or "")[:16].replace("T", " ")
        object_id = "" if s.object_id is None else f"object {s.object_id}"
        console.out(f"  {s.status.value:<8} {s.key:<40} {when:<17} {object_id}".rstrip())
    return 0


def _import(ctx: Context, ledger: LedgerStore, file: str | None) -> int:
    """Add a file ledger's events; refused whole when the ledger holds any of its keys."""
    if not file:
        raise UserError(
            "ledger import needs a FILE: a ledger file, or what 'ledger export' printed"
        )
    lines, warnings = read_export(ctx.path(file), file)
    for warning in warnings:
        ctx.console.err(f"warning: {warning}")
    if not lines:
        raise UserError(f"{file} holds no ledger events: nothing to import")
    with ledger.locked():
        count = ledger.import_lines(lines)
    ctx.console.out(
        f"Imported {count} events ({len(keys_of(lines))} keys) from {file} into {ledger.display}"
    )
    return 0


def _no_key(key: str, keys: Iterable[str]) -> UserError:
    return UserError(
        f"the ledger has no key {key!r}{did_you_mean(key, keys)}; "
        "'commbox-yaml ledger list' shows every key"
    )
