"""ledger list | show KEY | forget KEY | init: read and edit the send ledger."""

from __future__ import annotations

import argparse
from typing import Any

from commbox_yaml.context import Context
from commbox_yaml.errors import UserError


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "ledger",
        parents=parents,
        help="read and edit the send ledger",
        description="List, show, forget keys of, or create the send ledger.",
    )
    parser.add_argument("action", choices=["list", "show", "forget", "init"])
    parser.add_argument("key", nargs="?", metavar="KEY", help="a ledger key (for show, forget)")
    parser.add_argument("--sandbox", action="store_true", help="the sandbox's ledger")
    parser.add_argument("--json", action="store_true", help="print as JSON (list, show)")


def run(ctx: Context, args: argparse.Namespace) -> int:
    ledger = ctx.ledger(args.sandbox)
    console = ctx.console
    if args.action in ("show", "forget") and not args.key:
        raise UserError(f"ledger {args.action} needs a KEY; 'commbox-yaml ledger list' shows them")
    if args.action == "init":
        created = ledger.create()
        console.out(f"{'Created' if created else 'Already exists:'} {ledger.display}")
        return 0
    if args.action == "forget":
        if not ledger.path.exists():  # never create one here: it would satisfy must_exist
            raise UserError(f"no ledger at {ledger.display}; there is nothing to forget")
        with ledger.locked():
            state = ledger.read().states.get(args.key)
            if state is None:
                raise UserError(f"the ledger has no key {args.key!r}")
            ledger.append({"event": "forget", "key": args.key})
        console.out(f"Forgot {args.key}: the next plan treats it as never sent.")
        return 0
    view = ledger.read()
    for warning in view.warnings:
        console.err(f"warning: {warning}")
    if not view.exists:
        raise UserError(
            f"no ledger at {ledger.display} yet; 'commbox-yaml ledger init' creates one"
        )
    if args.action == "show":
        state = view.states.get(args.key)
        if state is None:
            raise UserError(f"the ledger has no key {args.key!r}")
        rows = {
            "key": state.key, "status": state.status.value, "object_id": state.object_id,
            "sent_at": state.sent_at, "fingerprint": state.sent_fingerprint or state.fingerprint,
            "last_event_at": state.last_at, "last_status": state.last_status,
            "description": state.description, "events": state.events,
            "reconciled_at": state.reconciled_at,
            "fields": sorted(state.sent_fields or state.fields),
        }  # fmt: skip
        if args.json:
            console.json(rows)
        else:
            for label, value in rows.items():
                if value not in (None, [], ""):
                    shown = ", ".join(value) if isinstance(value, list) else value
                    console.out(f"{label:<14} {shown}")
        return 0
    states = sorted(view.states.values(), key=lambda s: s.key)
    if args.json:
        console.json(
            [
                {
                    "key": s.key,
                    "status": s.status.value,
                    "object_id": s.object_id,
                    "sent_at": s.sent_at,
                    "last_at": s.last_at,
                }
                for s in states
            ]
        )
        return 0
    console.out(f"{ledger.display}: {view.entries} entries, {len(states)} keys")
    for s in states:
        when = (s.sent_at or s.last_at or "")[:16].replace("T", " ")
        object_id = "" if s.object_id is None else f"object {s.object_id}"
        console.out(f"  {s.status.value:<8} {s.key:<40} {when:<17} {object_id}".rstrip())
    return 0
