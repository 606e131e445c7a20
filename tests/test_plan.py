"""plan: actions against the ledger, the reports, plan files and their staleness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import Ledger
from commbox_yaml.report.markdown import LIMIT
from tests.projects import SMS, build_project, project

TWO = (
    SMS
    + "---\n"
    + SMS.replace("name: note", "name: other").replace("message: hello", "message: bye")
    + "---\n"
    + SMS.replace("name: note", "name: quiet")
    + "when: false\n"
)


def _record_sent(root: Path, address: str, object_id: int, **overrides: object) -> None:
    request = next(r for r in build_project(root).requests if r.address == address)
    ledger = Ledger(root / ".commbox" / "ledger.jsonl", ".commbox/ledger.jsonl")
    with ledger.locked():
        ledger.append(
            {
                "event": "pending",
                "key": request.key,
                "fingerprint": request.fingerprint,
                "fields": dict(request.field_hashes),
                **overrides,
            }
        )
        ledger.append({"event": "sent", "key": request.key, "object_id": object_id})


def _plan_json(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    assert main(["-C", str(root), "plan", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_actions_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, TWO)
    plan = _plan_json(tmp_path, capsys)
    assert plan["summary"] == {
        "send": 2,
        "unchanged": 0,
        "changed": 0,
        "unknown": 0,
        "wait": 0,
        "skipped": 1,
    }
    _record_sent(tmp_path, "note", 11)
    _record_sent(tmp_path, "other", 12)
    plan = _plan_json(tmp_path, capsys)
    assert [m["action"] for m in plan["messages"]] == ["unchanged", "unchanged", "skipped"]
    assert plan["messages"][0]["ledger"]["object_id"] == 11

    messages = tmp_path / "messages" / "main.yaml"
    messages.write_text(messages.read_text().replace("message: bye", "message: farewell"))
    plan = _plan_json(tmp_path, capsys)
    other = plan["messages"][1]
    assert (other["action"], other["changed_fields"]) == ("changed", ["Message"])
    assert main(["-C", str(tmp_path), "plan"]) == 0
    out = capsys.readouterr().out
    assert "  ~ other" in out
    assert "changed  Message" in out
    assert 'new Message "farewell"' in out  # the new value, not only the field's name
    assert "held: not sent again unless --replace other" in out
    assert main(["-C", str(tmp_path), "plan", "--format", "markdown"]) == 0
    assert '| new Message | "farewell" |' in capsys.readouterr().out
    assert "Plan: 0 to send, 1 unchanged, 1 changed (held), 0 unknown, 1 skipped." in out
    plan = _plan_json(tmp_path, capsys, "--replace", "other")
    assert plan["messages"][1]["action"] == "send"
    assert plan["messages"][1]["replace"] is True


def test_unknown_is_held(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, SMS)
    request = build_project(tmp_path).requests[0]
    ledger = Ledger(tmp_path / ".commbox" / "ledger.jsonl", "l")
    with ledger.locked():
        ledger.append({"event": "pending", "key": "note", "fingerprint": request.fingerprint})
    assert main(["-C", str(tmp_path), "plan", "--detailed-exitcode"]) == 0
    out = capsys.readouterr().out
    assert "  ? note" in out
    assert "no outcome recorded (interrupted)" in out
    assert main(["-C", str(tmp_path), "plan", "--detailed-exitcode", "--replace", "note"]) == 2


def test_detailed_exitcode_and_unknown_replace_key(tmp_path: Path, capsys) -> None:
    project(tmp_path, SMS)
    assert main(["-C", str(tmp_path), "plan", "--detailed-exitcode"]) == 2
    assert main(["-C", str(tmp_path), "plan", "--replace", "nope"]) == 1
    assert "--replace 'nope' names no message key" in capsys.readouterr().err


def test_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, TWO)
    plan = _plan_json(tmp_path, capsys, "--target", "other")
    assert [m["address"] for m in plan["messages"]] == ["other"]


def test_markdown_stays_under_the_comment_limit(tmp_path: Path, capsys) -> None:
    many = SMS.replace("message: hello", "message: '{{ item }} {{ filler }}'") + "for_each: items\n"
    items = ", ".join(f"'{n:05d}'" for n in range(2000))
    project(tmp_path, many, f"items: [{items}]\nfiller: '{'x' * 300}'\n")
    assert main(["-C", str(tmp_path), "plan", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert len(out) < LIMIT
    assert out.startswith("### commbox-yaml plan\n\n**Plan: 2000 to send")
    shown = out.count("#### `+`")
    assert 0 < shown < 2000
    assert f"_{2000 - shown} more messages not shown" in out


def test_a_plan_file_is_written_a_message_per_line_and_moved_into_place(
    tmp_path: Path,
) -> None:
    """A plan of 100,000 messages is never held whole: the file is written a message at a
    time to a temporary file that then replaces it."""
    project(tmp_path, SMS)
    (tmp_path / "release.plan").write_text("an older plan")
    assert main(["-C", str(tmp_path), "plan", "-out", "release.plan"]) == 0
    lines = (tmp_path / "release.plan").read_text().splitlines()
    assert len(lines) == 3
    data = json.loads("\n".join(lines))
    assert list(data) == [
        "format_version", "kind", "created_at", "destination", "ledger", "targets", "replace",
        "messages",
    ]  # fmt: skip
    assert lines[0].endswith('"messages": [')
    assert json.loads(lines[1]) == data["messages"][0]
    assert data["messages"][0]["key"] == "note"
    assert lines[2] == "]}"
    assert sorted(p.name for p in tmp_path.iterdir() if "plan" in p.name) == ["release.plan"]


def test_plan_file_holds_no_content_and_goes_stale(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COMMBOX_API_TOKEN", "tok-secret-123")
    project(tmp_path, SMS.replace("message: hello", "message: 'pin {{ pin }}'"), "pin: '4711'\n")
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "sensitive: [pin]\n")
    assert main(["-C", str(tmp_path), "plan", "-out", "release.plan"]) == 0
    saved = (tmp_path / "release.plan").read_text()
    assert "4711" not in saved
    data = json.loads(saved)
    assert data["format_version"] == "1"
    assert [m["key"] for m in data["messages"]] == ["note"]
    # the message changed: the fingerprint differs, so the plan is refused (a change of the
    # sensitive pin alone would not be one: test_secrets.py)
    message = tmp_path / "messages" / "main.yaml"
    message.write_text(message.read_text().replace("'pin {{", "'PIN {{"))
    assert main(["-C", str(tmp_path), "apply", "release.plan"]) == 1
    err = capsys.readouterr().err
    assert "the plan release.plan is stale, nothing was sent" in err
    assert "note: the message changed since the plan was made" in err
    assert "tok-secret-123" not in err
    assert not (tmp_path / ".commbox" / "ledger.jsonl").read_text()
