"""NO_COLOR as no-color.org defines it: present and not an empty string turns colour off."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.output import Console
from tests.projects import SMS, project


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as the console checks it."""

    def isatty(self) -> bool:
        return True


def _on_terminal(root: Path, no_color: str | None) -> str:
    """`plan` with its output on a pseudo-terminal; what the terminal received."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color is not None:
        env["NO_COLOR"] = no_color
    primary, secondary = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), "plan"],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    seen = b""
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
            elif child.poll() is not None:
                break
        assert child.wait(10) == 0, seen
    finally:
        os.close(primary)
    return seen.decode(errors="replace")


@pytest.mark.parametrize(
    ("no_color", "coloured"), [(None, True), ("", True), ("1", False), ("0", False)]
)
def test_no_color_on_a_terminal(tmp_path: Path, no_color: str | None, coloured: bool) -> None:
    project(tmp_path, SMS)
    screen = _on_terminal(tmp_path, no_color)
    assert "Plan: 1 to send" in screen
    assert ("\x1b[32;1m+\x1b[0m note" in screen) is coloured
    assert ("\x1b[" in screen) is coloured


@pytest.mark.parametrize(
    ("no_color", "coloured"), [(None, True), ("", True), ("yes", False), (" ", False)]
)
def test_the_console_reads_no_color(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, coloured: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    out = _Terminal()
    console = Console(stdout=out)
    assert console.color is coloured
    console.out(console.style("+", "green"))
    assert ("\x1b[32m" in out.getvalue()) is coloured


def test_the_no_color_option_wins_over_an_empty_no_color(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    project(tmp_path, SMS)
    for argv, coloured in ((["plan"], True), (["--no-color", "plan"], False)):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stdout", terminal)
        assert main(["-C", str(tmp_path), *argv]) == 0
        assert "Plan: 1 to send" in terminal.getvalue()
        assert ("\x1b[" in terminal.getvalue()) is coloured
