"""What apply prints in a CI log: each result with its running count, in the plan's order, and
a closing line that does not call held changes "no changes".

Real sends to the sandbox on 127.0.0.1; the CLI in-process with no terminal (as in CI).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.sending import apply
from tests.test_apply_faults import key, make, use


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    use(monkeypatch, server.url)


RESULT = re.compile(r"^\[\s*(\d+)/(\d+)\] (sent|failed|unknown)\s+(\S+)")


@pytest.mark.usefixtures("env")
def test_results_come_in_plan_order_with_a_running_count(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 8
    make(tmp_path, count=count, concurrency=4)
    # The first message is answered last: it must still be the first line.
    server.script(Fault(delay_s=0.6))
    assert apply(tmp_path) == 0
    lines = [m for m in map(RESULT.match, capsys.readouterr().out.splitlines()) if m]
    assert [m.group(4) for m in lines] == [f"notice[p{n:03d}]" for n in range(count)]
    assert [int(m.group(1)) for m in lines] == list(range(1, count + 1))
    assert {m.group(2) for m in lines} == {str(count)}


@pytest.mark.usefixtures("env")
def test_nothing_to_send_names_what_is_held(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=2)
    assert apply(tmp_path) == 0
    # One customer's message changes: held, not sent.
    notice = (tmp_path / "messages" / "notice.yaml").read_text()
    changed = notice.replace(
        'message: "notice {{ version }} for {{ item }}"',
        "message: \"{{ 'changed' if item == 'p001' else 'notice' }} {{ version }} for {{ item }}\"",
    )
    assert changed != notice
    (tmp_path / "messages" / "notice.yaml").write_text(changed)
    capsys.readouterr()
    assert apply(tmp_path) == 0
    out = capsys.readouterr().out
    assert "No changes" not in out
    assert "Nothing to send: 1 changed held" in out
    assert key(1) in out
    # Back as it was: nothing held, and then it is "no changes".
    (tmp_path / "messages" / "notice.yaml").write_text(notice)
    assert main(["-C", str(tmp_path), "apply", "--auto-approve"]) == 0
    assert "No changes: nothing to send." in capsys.readouterr().out
