"""A plan of more than 50 messages is compact: a line per definition, the held ones in full."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import Ledger
from commbox_yaml.report.markdown import LIMIT
from tests.projects import SMS, build_project, project

FAN = """\
name: fan
channel: sms
stream: sms
for_each: items
key: "{{ item }}"
user_stream_provider_id: "972544444444"
message: "hello {{ item }}"
"""


def _fan(root: Path, count: int) -> Path:
    """`count - 1` messages of one fan-out and one of a plain definition."""
    items = ", ".join(f"'i{n:02d}'" for n in range(count - 1))
    return project(root, FAN + "---\n" + SMS, f"items: [{items}]\n")


def _held(root: Path) -> None:
    """fan[i05] sent as it is now, fan[i07] sent with other words, fan[i09] of unknown outcome."""
    requests = {r.address: r for r in build_project(root).requests}
    ledger = Ledger(root / ".commbox" / "ledger.jsonl", ".commbox/ledger.jsonl")
    with ledger.locked():
        for address, fingerprint, fields in (
            ("fan[i05]", None, None),
            ("fan[i07]", "sha256:" + "0" * 64, {"Message": "0" * 16}),
            ("fan[i09]", None, None),
        ):
            request = requests[address]
            ledger.append(
                {
                    "event": "pending",
                    "key": request.key,
                    "fingerprint": fingerprint or request.fingerprint,
                    "fields": {**dict(request.field_hashes), **(fields or {})},
                }
            )
            if address != "fan[i09]":
                ledger.append({"event": "sent", "key": request.key, "object_id": 500})


def _out(root: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(["-C", str(root), "--no-color", *argv]) == 0
    return capsys.readouterr().out


def test_sixty_messages_show_a_line_per_definition_and_the_held_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _held(_fan(tmp_path, 60))
    out = _out(tmp_path, capsys, "plan")
    lines = out.splitlines()
    assert lines[2:4] == [
        "  fan   sms  59 messages: 56 to send, 1 unchanged, 1 changed (held), 1 unknown (held)",
        "  note  sms   1 message:  1 to send",
    ]
    assert "  ~ fan[i07]" in out
    assert 'new Message "hello i07"' in out
    assert "held: not sent again unless --replace fan[i07]" in out
    assert "  ? fan[i09]" in out
    assert "+ fan[" not in out
    assert "= fan[i05]" not in out
    assert "--detail lists every message" in out
    assert "\nPlan: 57 to send, 1 unchanged, 1 changed (held), 1 unknown; 57 SMS" in out
    assert len(lines) < 25


def test_detail_lists_every_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _held(_fan(tmp_path, 60))
    out = _out(tmp_path, capsys, "plan", "--detail")
    assert out.count("\n  + fan[") == 56
    assert "  + note" in out
    assert "  ~ fan[i07]" in out
    assert "  ? fan[i09]" in out
    assert "  = fan[i05]" in out
    assert "Compact" not in out


def test_fifty_messages_stay_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fan(tmp_path, 50)
    out = _out(tmp_path, capsys, "plan")
    assert out.count("\n  + fan[") == 49
    assert "  + note" in out
    assert "Compact" not in out
    markdown = _out(tmp_path, capsys, "plan", "--format", "markdown")
    assert markdown.count("#### `+`") == 50
    assert "| definition |" not in markdown
    assert "All 50 messages" not in markdown


def test_markdown_is_compact_with_every_message_inside_details(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _held(_fan(tmp_path, 60))
    out = _out(tmp_path, capsys, "plan", "--format", "markdown")
    assert "| fan | sms | 59 | 56 | 1 | 1 | 1 | 0 |" in out
    assert "| note | sms | 1 | 1 | 0 | 0 | 0 | 0 |" in out
    details = out.index("<details><summary>All 60 messages</summary>")
    outside, inside = out[:details], out[details:]
    assert "#### `~` fan[i07]" in outside
    assert "#### `?` fan[i09]" in outside
    assert "#### `+`" not in outside
    assert inside.count("#### `+`") == 57
    assert "#### `~` fan[i07]" in inside
    assert "fan[i05] (sent" in inside
    assert inside.rstrip().endswith("</details>")
    full = _out(tmp_path, capsys, "plan", "--format", "markdown", "--detail")
    assert "All 60 messages" not in full
    assert "| definition |" not in full
    assert full.count("#### `+`") == 57


def test_compact_markdown_stays_under_the_comment_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = FAN.replace('message: "hello {{ item }}"', "message: \"{{ item }} {{ 'x' * 300 }}\"")
    items = ", ".join(f"'i{n:04d}'" for n in range(1500))
    project(tmp_path, long, f"items: [{items}]\n")
    out = _out(tmp_path, capsys, "plan", "--format", "markdown")
    assert len(out) < LIMIT
    assert "| fan | sms | 1500 | 1500 |" in out
    shown = out.count("#### `+`")
    assert 0 < shown < 1500
    assert f"_{1500 - shown} more messages not shown" in out
    assert out.index("</details>") < out.index("more messages not shown")


def test_json_is_the_same_compact_or_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _held(_fan(tmp_path, 60))
    plain = _out(tmp_path, capsys, "plan", "--json")
    assert _out(tmp_path, capsys, "plan", "--json", "--detail") == plain
    assert _out(tmp_path, capsys, "plan", "--format", "json") == plain
    messages = json.loads(plain)["messages"]
    assert len(messages) == 60
    assert {m["action"] for m in messages} == {"send", "unchanged", "changed", "unknown"}


def test_apply_shows_the_compact_plan_and_detail_the_full_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMMBOX_API_TOKEN", raising=False)
    _fan(tmp_path, 60)
    out = _out(tmp_path, capsys, "apply", "--sandbox", "--auto-approve")
    assert "  fan   sms  59 messages: 59 to send" in out
    assert "  + fan[" not in out
    assert "Apply complete: 60 sent" in out
    (tmp_path / "messages" / "main.yaml").write_text(
        FAN.replace("hello", "hi") + "---\n" + SMS, encoding="utf-8"
    )
    out = _out(tmp_path, capsys, "apply", "--sandbox", "--auto-approve", "--detail")
    assert out.count("\n  ~ fan[") == 59
    assert "  = note" in out
