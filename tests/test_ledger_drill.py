"""The drill: four separate checkouts of one 2,000-message project apply at once against one
sandbox with one shared PostgreSQL ledger; one is killed with SIGKILL mid-run; then all four
run again. Every message must have been received exactly once or be held unknown, and all four
checkouts must plan the same.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commbox_yaml.ledger import KeyStatus
from commbox_yaml.ledger.postgres import PostgresLedger
from commbox_yaml.sandbox import SandboxServer
from tests.ledgers import TOKEN, key, make, text
from tests.pg import ROLE_PASSWORD, PgServer
from tests.sending import delivered, wait_until

COUNT, COPIES, CONCURRENCY = 2000, 4, 8
KILL_AFTER = 400  # requests the sandbox has seen when one copy is killed


def _start(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """A CLI process whose output goes to files: a 2,000-message plan would fill a pipe."""
    out = (root / "apply.out").open("w")
    err = (root / "apply.err").open("w")
    with out, err:
        return subprocess.Popen(
            [sys.executable, "-m", "commbox_yaml", "-C", str(root), *args],
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )


def _finish(process: subprocess.Popen[str], root: Path) -> tuple[int, str, str]:
    process.wait(timeout=120)
    return process.returncode, (root / "apply.out").read_text(), (root / "apply.err").read_text()


def _summary(out: str) -> str:
    lines = [
        line
        for line in out.splitlines()
        if line.startswith(("Apply ", "No changes", "Nothing to send"))
    ]
    return lines[-1] if lines else "(no summary)"


def _taken(summary: str) -> int:
    found = re.search(r"(\d+) taken by another apply", summary)
    return int(found.group(1)) if found else 0


@pytest.mark.slow
def test_four_checkouts_one_killed_then_all_again(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    database = postgres.new_database()
    ledger = f"url: '{postgres.url(database)}', namespace: drill"
    copies = [make(tmp_path / f"checkout-{n}", COUNT, CONCURRENCY, ledger) for n in range(COPIES)]
    env = {
        **os.environ,
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": TOKEN,
        "PGPASSWORD": ROLE_PASSWORD,
    }
    server.latency_ms = 2  # requests stay in flight long enough to be cut by the kill
    started = time.monotonic()
    first = [_start(root, env, "apply", "--auto-approve") for root in copies]
    wait_until(lambda: len(server.received) >= KILL_AFTER, timeout=60)
    first[0].kill()
    results = [_finish(p, root) for p, root in zip(first, copies, strict=True)]
    assert results[0][0] == -9
    for code, _, err in results[1:]:
        assert code == 0, err
    first_wave = time.monotonic() - started
    received_first = len(server.received)

    again = [_start(root, env, "apply", "--auto-approve") for root in copies]
    results_again = [_finish(p, root) for p, root in zip(again, copies, strict=True)]
    for code, _, err in results_again:
        assert code == 0, err
    plans = [
        subprocess.run(
            [sys.executable, "-m", "commbox_yaml", "-C", str(root), "plan", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        for root in copies
    ]
    elapsed = time.monotonic() - started

    counts = delivered(server)
    states = (
        PostgresLedger(postgres.url(database, password=ROLE_PASSWORD), "drill", "drill")
        .read()
        .states
    )
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    received = sum(1 for n in range(COUNT) if counts[text(n)] == 1)
    unknown = [n for n in range(COUNT) if states[key(n)].status is KeyStatus.UNKNOWN]
    held_not_received = [n for n in unknown if not counts[text(n)]]
    assert duplicates == 0
    assert len(counts) == received  # nothing received that is not one of the messages
    assert received + len(held_not_received) == COUNT
    for n in range(COUNT):
        status = states[key(n)].status
        assert status is KeyStatus.SENT or (status is KeyStatus.UNKNOWN and n in unknown)
    assert len(unknown) <= CONCURRENCY  # only the killed copy's claims in flight
    summaries = [json.loads(p.stdout)["summary"] for p in plans]
    assert all(s == summaries[0] for s in summaries)
    assert summaries[0]["unknown"] == len(unknown)
    assert summaries[0]["unchanged"] == COUNT - len(unknown)
    with capsys.disabled():
        print(
            f"\ndrill: {COUNT} messages, {COPIES} checkouts x concurrency {CONCURRENCY}, "
            f"copy 0 killed after {KILL_AFTER} requests; first wave {first_wave:.1f} s "
            f"({received_first} received), all done {elapsed:.1f} s; received once {received}, "
            f"unknown {len(unknown)} (of which received {len(unknown) - len(held_not_received)}"
            f"), duplicates {duplicates}; taken by another apply, per copy, first wave "
            f"{[_taken(_summary(out)) for _, out, _ in results[1:]]}, "
            f"second {[_taken(_summary(out)) for _, out, _ in results_again]}; "
            f"plan summary {summaries[0]}"
        )
