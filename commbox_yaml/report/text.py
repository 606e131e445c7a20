"""The plan for people at a terminal, as SPEC's example shows it."""

from __future__ import annotations

from itertools import islice

from commbox_yaml.output import Console
from commbox_yaml.plan import Action, DefinitionCounts, Plan, PlannedMessage
from commbox_yaml.report.against import text_section
from commbox_yaml.report.describe import (
    ACTIONABLE,
    changed_rows,
    compact,
    counts_text,
    fields,
    parent_text,
    stream_label,
    summary_line,
    wait_text,
)

_COLOURS = {
    Action.SEND: "green",
    Action.CHANGED: "yellow",
    Action.UNKNOWN: "red",
    Action.WAIT: "cyan",
    Action.UNCHANGED: "dim",
    Action.SKIPPED: "dim",
}
SHOWN_UNCHANGED = 3


def show_plan(console: Console, plan: Plan, detail: bool = False) -> None:
    """The plan: every message (quiet ones folded), or past COMPACT_AFTER messages without
    `detail`, a line per definition and the messages that need a person's look."""
    ledger = plan.ledger
    entries = f"{ledger.entries} entries" if ledger.exists else "not created yet"
    total = len(plan.messages)
    console.out(
        f"commbox-yaml plan: {total} message{'s' if total != 1 else ''} from {plan.files} "
        f"file{'s' if plan.files != 1 else ''}, ledger {plan.ledger_display} ({entries})"
    )
    console.out()
    if compact(plan, detail):
        _show_compact(console, plan)
    else:
        _show_every(console, plan)
    if total:
        console.out()
    changed = text_section(plan, console.redactor)
    if changed:
        console.out_lines("\n".join(changed))
        console.out()
    console.out(console.style(summary_line(plan), "bold"))
    if plan.destination:
        console.out(f"Plan digest: {plan.digest}")


def _show_every(console: Console, plan: Plan) -> None:
    for action in ACTIONABLE:
        for message in plan.messages.only(action):
            _show_actionable(console, message)
    for action in (Action.UNCHANGED, Action.SKIPPED):
        for message in islice(plan.messages.only(action), SHOWN_UNCHANGED):
            _show_quiet(console, message)
        count = plan.messages.count(action)
        if count > SHOWN_UNCHANGED:
            console.out(f"  ... {count - SHOWN_UNCHANGED} more {action.value}")


def _show_compact(console: Console, plan: Plan) -> None:
    """A fan-out's plan a person can read: its definitions, then what needs their look."""
    groups = plan.messages.by_definition()
    widths = (
        min(max(len(g.definition.name) for g in groups), 38),
        max(len(g.definition.channel) for g in groups),
        len(str(max(g.total for g in groups))),
    )
    for group in groups:
        console.out(_definition_line(console, group, widths))
    look = plan.messages.for_a_look()
    if look:
        console.out()
        for message in look:
            _show_actionable(console, message)
    console.out()
    console.out(
        f"  Compact: {len(plan.messages)} messages, a line per definition; "
        "--detail lists every message."
    )


def _definition_line(
    console: Console, group: DefinitionCounts, widths: tuple[int, int, int]
) -> str:
    """`  fan  sms  59 messages: 56 to send, 1 changed (held)`, in columns."""
    definition, (name, channel, total) = group.definition, widths
    noun = "messages:" if group.total != 1 else "message: "
    counts = ", ".join(
        console.style(text, _COLOURS[action]) for action, text in counts_text(group.counts)
    )
    return (
        f"  {definition.name:<{name}}  {definition.channel:<{channel}}  "
        f"{group.total:>{total}} {noun} {counts}"
    )


def _head(console: Console, message: PlannedMessage, tail: str = "") -> str:
    symbol = console.style(message.action.symbol, _COLOURS[message.action], "bold")
    return f"  {symbol} {message.address:<38} {stream_label(message)}{tail}"


def _show_actionable(console: Console, message: PlannedMessage) -> None:
    console.out(_head(console, message))
    request = message.request
    assert request is not None
    rows = fields(request, console.redactor)
    if message.action is Action.CHANGED:
        rows = changed_rows(message, console.redactor)
    elif message.action is Action.UNKNOWN:
        state = message.state
        reason = state.description or (
            f"HTTP {state.last_status}"
            if state.last_status
            else "no outcome recorded (interrupted)"
        )
        rows = [("key", message.key), ("last try", f"{(state.last_at or '')[:16]} UTC: {reason}")]
    parent = parent_text(message)
    if parent is not None:
        rows.insert(1, ("reply to", parent))
    for label, text in rows:
        console.out(f"      {label:<8} {text}")
    if message.action is Action.WAIT:
        console.out(f"      {wait_text(message)}")
    elif message.replace:
        console.out("      replacing: sent again because of --replace")
    elif message.action is Action.CHANGED:
        console.out(f"      held: not sent again unless --replace {message.key}")
    elif message.action is Action.UNKNOWN:
        console.out(
            "      held: it may have reached CommBox; 'commbox-yaml reconcile' reads it back "
            f"(or check there, then --replace {message.key} to send it anyway)"
        )


def _show_quiet(console: Console, message: PlannedMessage) -> None:
    if message.action is Action.SKIPPED:
        console.out(_head(console, message, " (skipped: 'when' is false)"))
        return
    state = message.state
    console.out(
        _head(console, message, f" (sent {(state.sent_at or '')[:10]} as {state.object_id})")
    )
