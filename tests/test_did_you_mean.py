"""A misspelt ledger key or file path is answered with the nearest one that exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import COMMBOX_YAML, SMS, project

EMAIL = """\
name: release-email
channel: email
stream: email
user_stream_provider_id: ops@acme.example
subject: Release notes
to: [ops@acme.example]
message: Attached.
attachments:
  - {attachment}
"""


def _error(root: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(["-C", str(root), *argv]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_a_misspelt_var_file_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, SMS)
    err = _error(tmp_path, capsys, "validate", "--var-file", "vars/comon.yaml")
    assert "var file 'vars/comon.yaml' not found (did you mean 'vars/common.yaml'?)" in err
    err = _error(tmp_path, capsys, "plan", "--var-file", "var/common.yaml")
    assert "var file 'var/common.yaml' not found (did you mean 'vars/common.yaml'?)" in err


def test_a_path_with_nothing_near_says_where_paths_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS)
    err = _error(tmp_path, capsys, "validate", "--var-file", "deploy/settings.yaml")
    assert (
        "var file 'deploy/settings.yaml' not found (paths are relative to the project root)" in err
    )
    assert "did you mean" not in err


def test_a_misspelt_vars_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(
        tmp_path,
        SMS,
        extra={"commbox.yaml": COMMBOX_YAML.replace("vars/common.yaml", "vars/commmon.yaml")},
    )
    err = _error(tmp_path, capsys, "validate")
    assert (
        "error: commbox.yaml:5:8: var file 'vars/commmon.yaml' not found "
        "(did you mean 'vars/common.yaml'?)"
    ) in err


def test_a_misspelt_message_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = SMS.replace("message: hello", "message_file: templates/oncal.txt")
    project(tmp_path, messages, extra={"templates/oncall.txt": "On call tonight\n"})
    err = _error(tmp_path, capsys, "validate")
    assert (
        "messages/main.yaml:5:15: message_file: file 'templates/oncal.txt' not found "
        "(did you mean 'templates/oncall.txt'?)"
    ) in err


def test_a_misspelt_attachment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = EMAIL.format(attachment="files/release-note.pdf")
    project(tmp_path, messages, extra={"files/release-notes.pdf": b"%PDF-1.4\n"})
    err = _error(tmp_path, capsys, "plan")
    assert (
        "messages/main.yaml:9:5: attachments[0]: attachment 'files/release-note.pdf' not "
        "found (did you mean 'files/release-notes.pdf'?)"
    ) in err


def test_a_misspelt_ledger_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMMBOX_API_TOKEN", raising=False)
    fan = SMS.replace("name: note", "name: notice") + "for_each: people\nkey: '{{ item }}'\n"
    project(tmp_path, fan, "people: [dana, lior, noa]\n")
    assert main(["-C", str(tmp_path), "apply", "--sandbox", "--auto-approve"]) == 0
    ledger = tmp_path / ".commbox" / "sandbox-ledger.jsonl"
    before = ledger.read_bytes()
    for action in ("show", "forget"):
        err = _error(tmp_path, capsys, "ledger", action, "notice[lio]", "--sandbox")
        assert (
            "the ledger has no key 'notice[lio]' (did you mean 'notice[lior]'?); "
            "'commbox-yaml ledger list' shows every key"
        ) in err
        err = _error(tmp_path, capsys, "ledger", action, "release-2.0", "--sandbox")
        assert "did you mean" not in err
    assert ledger.read_bytes() == before  # a refused forget writes nothing
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "ledger", "show", "notice[lior]", "--sandbox", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "sent"
