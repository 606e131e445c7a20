"""Plan files (`plan -out FILE`, `apply FILE`): what a reviewer approves, saved without
content, and the checks that it is applied only as it was planned, where it was planned for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commbox_yaml.errors import UserError
from commbox_yaml.files import unreadable, write_whole
from commbox_yaml.keys import natural_key
from commbox_yaml.ledger import now
from commbox_yaml.output import write_json_list
from commbox_yaml.plan import PLAN_FORMAT, PLAN_KIND, SANDBOX, Plan, PlannedMessage, plan_digest


def save_plan(plan: Plan, path: Path, destination: str, display: str = "") -> None:
    """Write what `plan -out` saves: keys, actions, fingerprints and ledger digests; no content.

    `destination` (`sandbox` or the base URL) and the ledger say where the plan may be
    applied: a rehearsal plan is never sent for real. A message per line, through a temporary
    file moved into place: a plan of 100,000 messages is never held whole.
    """
    head = {
        "format_version": PLAN_FORMAT,
        "kind": PLAN_KIND,
        "created_at": now(),
        "destination": destination,
        "ledger": plan.ledger_display,
        "targets": list(plan.targets),
        "replace": list(plan.replace),
    }
    entries = (
        {
            "address": m.address,
            "key": m.key,
            "action": m.action.value,
            "fingerprint": m.request.fingerprint if m.request else None,
            "ledger_digest": m.state.digest,
        }
        for m in plan.messages
    )
    write_whole(
        path,
        display or str(path),
        "-out",
        lambda out: write_json_list(out.write, entries, head, "messages"),
    )


@dataclass(frozen=True)
class SavedPlan:
    destination: str
    ledger: str
    targets: tuple[str, ...]
    replace: tuple[str, ...]
    messages: tuple[dict[str, Any], ...]
    digest: str  # plan_digest of what the file says: what `--expect-digest` compares


def load_plan(path: Path, display: str) -> SavedPlan:
    why = unreadable(path)
    if why is not None:
        raise UserError(f"plan file {display} {why}")
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, ValueError):
        raise UserError(f"{display} is not a commbox-yaml plan file (not JSON)") from None
    if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
        raise UserError(f"{display} is not a commbox-yaml plan file")
    if data.get("format_version") != PLAN_FORMAT:
        raise UserError(
            f"{display} has plan format {data.get('format_version')!r}; this commbox-yaml "
            f"reads format {PLAN_FORMAT}: make the plan again with this version"
        )
    messages = data.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise UserError(f"{display} is damaged: 'messages' is not a list of messages")
    destination, ledger = data.get("destination"), data.get("ledger")
    if not isinstance(destination, str) or not isinstance(ledger, str):
        raise UserError(
            f"{display} does not say where it was planned for (destination, ledger); "
            "make the plan again with this version"
        )
    replace = tuple(data.get("replace") or ())
    digest = plan_digest(
        destination,
        replace,
        ((str(m.get("key")), str(m.get("action")), m.get("fingerprint")) for m in messages),
    )
    return SavedPlan(
        destination, ledger, tuple(data.get("targets") or ()), replace, tuple(messages), digest
    )


def check_destination(saved: SavedPlan, display: str, destination: str, ledger: str) -> None:
    """A plan is applied only where it was planned for: same destination, same ledger."""
    if (saved.destination, saved.ledger) == (destination, ledger):
        return
    hint = (
        "apply it with --sandbox, or make a new plan without --sandbox"
        if saved.destination == SANDBOX
        else "make a new plan for this destination"
    )
    raise UserError(
        f"the plan {display} was made for {_where(saved.destination, saved.ledger)}, not "
        f"{_where(destination, ledger)}; nothing was sent: {hint}"
    )


def check_digest(saved: SavedPlan, display: str, expected: str | None) -> None:
    """With `--expect-digest`: the plan file is exactly the plan that was approved."""
    if expected is None or saved.digest == expected.strip():
        return
    raise UserError(
        f"the plan {display} has digest {saved.digest}, not the approved {expected.strip()}: "
        "it was changed after it was approved (or another plan was given); nothing was sent"
    )


def _where(destination: str, ledger: str) -> str:
    target = "the sandbox" if destination == SANDBOX else destination
    return f"{target} (ledger {ledger})"


def stale_reasons(saved: SavedPlan, current: Plan) -> list[str]:
    """Why a saved plan no longer holds; empty when it can be applied as it is."""
    entries = saved.messages
    positions: dict[str, list[int]] = {}  # a saved key's entries (one, in a plan file we wrote)
    for position, entry in enumerate(entries):
        positions.setdefault(str(entry.get("key")), []).append(position)
    found = bytearray(len(entries))  # 1: the entry's key is still in the project
    changed: dict[int, str] = {}  # why an entry no longer holds, by its position
    new: dict[str, str] = {}  # keys planned to send that the saved plan did not have
    # One pass over the live plan: a plan kept on disk is read back once, a message at a time.
    for live in current.messages:
        mine = positions.get(live.key)
        if mine is None:
            if live.sends or live.follows:
                new[live.key] = live.address
            continue
        for position in mine:
            found[position] = 1
            reason = _stale(live, entries[position])
            if reason:
                changed[position] = reason
    reasons: list[str] = []
    for position, entry in enumerate(entries):
        if not found[position]:
            reasons.append(f"{entry.get('address')}: no longer in the project")
        elif position in changed:
            reasons.append(changed[position])
    reasons += [f"{new[key]}: new since the plan was made" for key in sorted(new, key=natural_key)]
    return reasons


def _stale(live: PlannedMessage, entry: dict[str, Any]) -> str | None:
    """Why a saved entry no longer holds for the live message of its key, if it does not."""
    fingerprint = live.request.fingerprint if live.request else None
    if fingerprint != entry.get("fingerprint"):
        return f"{live.address}: the message changed since the plan was made"
    if live.state.digest != entry.get("ledger_digest"):
        return f"{live.address}: the ledger changed for key {live.key}"
    if live.action.value != entry.get("action"):
        return f"{live.address}: now '{live.action.value}', planned '{entry.get('action')}'"
    return None
