"""apply on a real (pseudo-)terminal: the approval prompt and the progress bar."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from commbox_yaml.sandbox import SandboxServer
from tests.projects import write

PROJECT = {
    "commbox.yaml": "version: 1\napi: {rate_per_s: 0}\nvars: [vars/common.yaml]\n",
    "vars/common.yaml": "people: [a, b, c]\n",
    "messages/m.yaml": (
        "name: hi\nchannel: sms\nstream: 5fd0c1\nfor_each: people\n"
        "user_stream_provider_id: '972544444444'\nmessage: 'hi {{ item }}'\n"
    ),
}


def _run_on_terminal(root: Path, server: SandboxServer, answer: str, *args: str) -> tuple[int, str]:
    """Run apply ARGS with stdin, stdout and stderr on a pseudo-terminal; answer its prompt."""
    primary, secondary = pty.openpty()
    env = {
        **os.environ,
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": "t0k",
        "NO_COLOR": "1",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), "apply", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    seen = b""
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"Only 'yes' is accepted:" in seen:
                os.write(primary, answer.encode() + b"\n")
                answered = True
            if child.poll() is not None and not ready:
                break
        code = child.wait(10)
    finally:
        os.close(primary)
    return code, seen.decode(errors="replace")


def test_the_prompt_accepts_only_yes(tmp_path: Path, server: SandboxServer) -> None:
    write(tmp_path, dict(PROJECT))
    code, screen = _run_on_terminal(tmp_path, server, "y")
    assert code == 1
    assert "Send 3 messages? Only 'yes' is accepted:" in screen
    assert "apply cancelled; nothing was sent" in screen
    assert server.received == []


def test_yes_sends_with_a_progress_bar(tmp_path: Path, server: SandboxServer) -> None:
    write(tmp_path, dict(PROJECT))
    code, screen = _run_on_terminal(tmp_path, server, "yes")
    assert code == 0, screen
    assert len(server.accepted) == 3
    assert "[" + "#" * 30 + "] 3/3" in screen
    assert "ETA" in screen
    assert "Apply complete: 3 sent, 0 failed, 0 unknown." in screen
