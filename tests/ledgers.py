"""Projects for the ledger tests: one SMS fanned out over N people, on a file or a database."""

from __future__ import annotations

from pathlib import Path

from tests.projects import fanout

TOKEN = "tok-5b7c0e9a1d2f4e68"

COMMBOX = """\
version: 1
api: {{concurrency: {concurrency}, rate_per_s: 0, timeout_s: 10}}
streams: {{sms: 5fd0c1}}
vars: [vars/common.yaml]
limits: {{max_sends: 100000}}
"""


def make(root: Path, count: int = 3, concurrency: int = 2, ledger: str = "") -> Path:
    """The project; `ledger` is the body of a `ledger:` mapping in commbox.yaml, if any."""
    commbox = COMMBOX.format(concurrency=concurrency)
    if ledger:
        commbox += f"ledger: {{{ledger}}}\n"
    return fanout(root, commbox, [f"p{n:04d}" for n in range(count)])


def key(n: int) -> str:
    return f"notice-1[p{n:04d}]"


def text(n: int) -> str:
    return f"notice 1 for p{n:04d}"
