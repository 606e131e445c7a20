"""The decision for one cluster of cases read from one listing: sent, absent, or held.

A key is sent when exactly one unclaimed object matches it, no other key matches that object,
and reading the object by id confirms it. It is absent only when the listing is complete, no
unclaimed object for its customer and type is left (a different text is a reason to hold,
never proof of absence), and the send is older than `api.reconcile_after_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from commbox_yaml.readback import Item
from commbox_yaml.reconcile.cases import Case, Finding, Result
from commbox_yaml.reconcile.listing import Listing

# Reads the matched object back by id: why it does not confirm the match, or None.
Confirm = Callable[[str, Case], str | None]


def decide(
    cases: Sequence[Case],
    listing: Listing,
    claimed: dict[str, str],
    now: float,
    confirm: Confirm,
    reconcile_after_s: float,
) -> Iterable[Finding]:
    """One finding per case; each match is yielded as soon as it is confirmed, and claimed."""
    if listing.failure is not None:
        for case in cases:
            yield held(case, listing.failure)
        return
    found: dict[str, str] = {}  # key -> its one match, not yet confirmed
    for case in cases:
        exact = [i for i in listing.items if case.matches(i) and i.object_id not in claimed]
        if len(exact) == 1 and exact[0].object_id is not None:
            found[case.key] = exact[0].object_id
    matched = list(found.values())
    failures: dict[str, str] = {}
    for case in cases:  # each match is yielded (and recorded) as soon as it is confirmed
        object_id = found.get(case.key)
        if object_id is None:
            continue
        if matched.count(object_id) > 1:
            others = sorted(k for k, oid in found.items() if oid == object_id)
            failures[case.key] = f"object {object_id} matches several keys: {', '.join(others)}"
            continue
        problem = confirm(object_id, case)
        if problem is not None:
            failures[case.key] = problem
            continue
        claimed[object_id] = case.key
        yield Finding(
            case.key,
            Result.SENT,
            f"found in CommBox as object {object_id}",
            _object_id(object_id),
            case.request.address,
        )
    for case in cases:
        if case.key in failures:
            yield held(case, failures[case.key])
        elif case.key not in found:
            yield _absent_or_held(case, listing, claimed, now, reconcile_after_s)


def _absent_or_held(
    case: Case, listing: Listing, claimed: dict[str, str], now: float, reconcile_after_s: float
) -> Finding:
    mine = [i for i in listing.items if case.concerns(i) and i.object_id not in claimed]
    exact = [i for i in mine if case.matches(i)]
    if len(exact) > 1:
        return held(case, f"{len(exact)} objects match: {_ids(exact)}")
    if exact and exact[0].object_id is None:
        return held(case, "the matching object has no CommBox object id (a positive integer)")
    if exact:
        return held(
            case,
            f"object {exact[0].object_id} matches, and so did one another key claimed in "
            "this run; run reconcile again to settle it",
        )
    if mine:
        return held(
            case,
            f"{len(mine)} object(s) for this customer and type that do not match it exactly "
            f"({_ids(mine)}): CommBox may have stored the message altered; check by hand",
        )
    age = now - case.settled
    if age < reconcile_after_s:
        return held(
            case,
            f"too recent to conclude it is absent ({age:.0f} s old; api.reconcile_after_s "
            f"is {reconcile_after_s:g})",
        )
    return Finding(
        case.key,
        Result.ABSENT,
        f"not in CommBox: no object for this customer and type among the "
        f"{len(listing.items)} listed ({listing.pages} page(s)) around the send",
        address=case.request.address,
    )


def held(case: Case, reason: str) -> Finding:
    return Finding(case.key, Result.HELD, reason, address=case.request.address)


def _ids(items: Sequence[Item]) -> str:
    shown = [i.object_id or "(no id)" for i in items[:5]]
    return ", ".join(shown) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _object_id(text: str) -> int:
    return int(text)  # Item.of keeps only ids that are CommBox's: digits
