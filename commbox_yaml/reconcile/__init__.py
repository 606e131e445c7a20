"""Reading CommBox back for sends whose outcome is unknown (SPEC section 8). No printing.

unknown key -> its send's time window (ledger) -> the stream's objects over that window, every
page -> match (customer, type, text) -> one ledger event: `reconciled` with `result: sent` and
the object id, or `result: absent`. Anything short of proof leaves the key held (`?`).

CommBox has no idempotency key and no client reference, so the rules lean one way:
- an object is this send's only when customer, type and text all agree, it was created while
  the send was in flight (widened by a margin: the server's clock is not ours), and no other
  key claims it (an object id is recorded for one key at most);
- "absent" needs a complete listing (pages 0 and 1, since where pages start is not
  documented, then on until an empty page, since a short page proves nothing; no object moving
  between pages), no object at all for the customer and type that another key does not
  account for (CommBox may store a text altered, e.g. as HTML: a different text is a reason to
  hold, never proof of absence), and a send older than `api.reconcile_after_s` (a new object
  may take a moment to be listed).
Keys whose windows overlap share one listing, so a batch of unknowns costs a few pages.

The rooms: cases.py (which keys, each send's window, what matches), listing.py (reading
CommBox back), decide.py (one cluster's findings), reconciler.py (the run and the ledger).
"""

from __future__ import annotations

from commbox_yaml.keys import key_glob
from commbox_yaml.reconcile.cases import (
    CLOCK_SKEW_S,
    Case,
    Finding,
    Result,
    Window,
    needs_reconcile,
    select_keys,
)
from commbox_yaml.reconcile.listing import ReadRefused
from commbox_yaml.reconcile.reconciler import Reconciler

__all__ = [
    "CLOCK_SKEW_S",
    "Case",
    "Finding",
    "ReadRefused",
    "Reconciler",
    "Result",
    "Window",
    "key_glob",
    "needs_reconcile",
    "select_keys",
]
