"""Approvals bound to the plan: `plan` gives a digest of what it would do, and `apply PLANFILE
--expect-digest D` sends nothing unless the plan file is exactly that plan.

Real sends to the sandbox on 127.0.0.1; plan files written by `plan -out` and edited by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.sending import apply, events
from tests.test_apply_faults import make, use

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    use(monkeypatch, server.url)


def _plan_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.usefixtures("env")
def test_the_digest_names_what_would_be_done_and_changes_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=3)
    first = _plan_json(tmp_path, capsys)["digest"]
    assert DIGEST.fullmatch(str(first))
    assert _plan_json(tmp_path, capsys)["digest"] == first  # the same plan, the same digest
    assert _plan_json(tmp_path, capsys, "--sandbox")["digest"] != first  # another destination
    assert _plan_json(tmp_path, capsys, "--target", "notice[p001]")["digest"] != first
    assert apply(tmp_path, "--target", "notice[p000]") == 0
    assert _plan_json(tmp_path, capsys)["digest"] != first  # an action changed: = not +


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    "edit",
    [
        lambda plan: plan.update(replace=["*"]),
        lambda plan: plan["messages"][0].update(action="send"),
        lambda plan: plan["messages"][1].update(fingerprint="sha256:" + "0" * 64),
        lambda plan: plan["messages"].pop(),
    ],
    ids=["replace-everything", "unchanged-to-send", "other-fingerprint", "a-message-less"],
)
def test_a_plan_file_edited_by_hand_is_refused_whole(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], edit: object
) -> None:
    make(tmp_path, count=3)
    assert apply(tmp_path, "--target", "notice[p000]") == 0
    sent = len(server.received)
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "plan", "-out", "approved.plan"]) == 0
    approved = DIGEST.findall(capsys.readouterr().out)[-1]
    plan_file = tmp_path / "approved.plan"
    plan = json.loads(plan_file.read_text())
    edit(plan)  # type: ignore[operator]
    plan_file.write_text(json.dumps(plan))
    before = events(tmp_path)
    assert main(["-C", str(tmp_path), "apply", "approved.plan", "--expect-digest", approved]) == 1
    err = capsys.readouterr().err
    assert "not the approved" in err
    assert "nothing was sent" in err
    assert len(server.received) == sent
    assert events(tmp_path) == before


@pytest.mark.usefixtures("env")
def test_the_approved_plan_file_is_sent(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=2)
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "plan", "-out", "approved.plan"]) == 0
    out = capsys.readouterr().out
    approved = DIGEST.findall(out)[-1]
    assert f"Plan digest: {approved}" in out
    code = main(["-C", str(tmp_path), "apply", "approved.plan", "--expect-digest", approved])
    assert code == 0
    assert len(server.received) == 2


def test_expect_digest_needs_a_plan_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=1)
    assert main(["-C", str(tmp_path), "apply", "--expect-digest", "sha256:00"]) == 1
    assert "--expect-digest checks a plan file" in capsys.readouterr().err
