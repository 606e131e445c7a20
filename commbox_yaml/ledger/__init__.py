"""The send ledger: send events per key, folded into each key's state, behind one interface.

Every send writes `pending` before its request (a claim: it may be refused when another
apply took the key since this one planned) and one outcome after it (`sent`, `failed`,
`unknown`; `retry` when the server said it did not take the request and it will be tried
again). A key whose last event is `pending` is treated as unknown, never as unsent.
The ledger holds keys, fingerprints, per-field hashes, object ids, statuses and times; never
message bodies or recipients' data.

Two backends keep the same events: a JSON Lines file (`file.py`, one runner at a time) and
PostgreSQL (`postgres.py`, shared by concurrent runners; imported only when configured). The
model they share (states, the fold, the interface) is `model.py`; this module only names it.
"""

from commbox_yaml.ledger.file import FileLedger
from commbox_yaml.ledger.model import (
    EMPTY_DIGEST,
    FORMAT,
    OUTCOMES,
    STEPS,
    WRITE_FIXES,
    KeyFold,
    KeyState,
    KeyStatus,
    LedgerStore,
    LedgerView,
    LedgerWriteError,
    check_new_keys,
    fold,
    keys_of,
    now,
    object_id_text,
    refused_write,
    stamp,
    write_failure,
)

Ledger = FileLedger  # the default backend

__all__ = [
    "EMPTY_DIGEST",
    "FORMAT",
    "OUTCOMES",
    "STEPS",
    "WRITE_FIXES",
    "FileLedger",
    "KeyFold",
    "KeyState",
    "KeyStatus",
    "Ledger",
    "LedgerStore",
    "LedgerView",
    "LedgerWriteError",
    "check_new_keys",
    "fold",
    "keys_of",
    "now",
    "object_id_text",
    "refused_write",
    "stamp",
    "write_failure",
]
