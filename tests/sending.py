"""Helpers for the tests that apply projects to the sandbox and read the ledger back."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer


def apply(root: Path, *args: str) -> int:
    """`apply --auto-approve` in-process, as a CI job runs it."""
    return main(["-C", str(root), "apply", "--auto-approve", *args])


def ledger_path(root: Path) -> Path:
    return root / ".commbox" / "ledger.jsonl"


def events(root: Path) -> list[dict[str, object]]:
    """Every ledger event, in order (none when there is no ledger)."""
    if not ledger_path(root).exists():
        return []
    return [json.loads(line) for line in ledger_path(root).read_text().splitlines()]


def delivered(server: SandboxServer) -> collections.Counter[str]:
    """How many objects the server created per Message text: the deliveries."""
    return collections.Counter(str(r.data["Message"]) for r in server.accepted if r.data)


def spawn(root: Path, url: str, token: str, *args: str) -> subprocess.Popen[str]:
    """`commbox-yaml apply ARGS` as a separate process, against the server at `url`."""
    env = {**os.environ, "COMMBOX_BASE_URL": url, "COMMBOX_API_TOKEN": token}
    return subprocess.Popen(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), "apply", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
