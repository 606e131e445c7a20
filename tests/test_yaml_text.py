"""YAML never changes text silently (SPEC section 2, Templating): a value of a var file that
YAML reads as other text (`1.10` as 1.1, `NO` as false) is an error at its own file:line:col
when a template writes it as text or sends it as it is; `--var` values are text as typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.projects import build_project, project

SMS = """\
name: note
channel: sms
stream: sms
id: "release-{{ version }}"
user_stream_provider_id: "972544444444"
message: "Acme Ledger {{ version }} is going out"
"""


def run(root: Path, *args: str) -> int:
    return main(["-C", str(root), *args])


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("1.10", "1.1"),
        ("NO", "False"),
        ("yes", "True"),
        ("off", "False"),
        ("1_000", "1000"),
        ("010", "8"),
        ("0x1F", "31"),
        ("1:20", "80"),
        ("~", "None"),
        ("null", "None"),
        (".5", "0.5"),
        ("1.50", "1.5"),
        ("+7", "7"),
    ],
)
def test_a_value_yaml_reads_as_other_text_is_an_error_where_it_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str, read: str
) -> None:
    project(tmp_path, SMS, f"product: Acme\nversion: {written}\n")
    assert run(tmp_path, "validate", "--strict") == 1
    assert run(tmp_path, "plan") == 1
    assert run(tmp_path, "render", "note") == 1
    lines = errors(capsys)
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"error: vars/common.yaml:2:10: version: {written} is read by YAML")
    assert f"would show '{read}', not '{written}'; quote it: '{written}'" in lines[0]
    assert "(messages/main.yaml:4:5)" in lines[0]  # where it was used: the ledger key
    assert not (tmp_path / ".commbox").exists()


def test_the_message_text_is_checked_too_and_quoting_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS.replace('id: "release-{{ version }}"\n', ""), "version: 1.10\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert line == (
        "error: vars/common.yaml:1:10: version: 1.10 is read by YAML as 1.1, so message "
        "(messages/main.yaml:5:10) would show '1.1', not '1.10'; quote it: '1.10'"
    )
    (tmp_path / "vars/common.yaml").write_text("version: '1.10'\n")
    request = build_project(tmp_path).requests[0]
    assert request.data["Message"] == "Acme Ledger 1.10 is going out"


@pytest.mark.parametrize(
    ("written", "shown"),
    [("42", "42"), ("1.5", "1.5"), ("true", "True"), ("0o17", "0o17"), ("1e3", "1e3")],
)
def test_values_that_read_back_as_written_are_fine(
    tmp_path: Path, written: str, shown: str
) -> None:
    """`true` is written 'True' (case aside, the same); YAML reads `0o17` and `1e3` as text."""
    project(tmp_path, SMS, f"version: {written}\n")
    result = build_project(tmp_path)
    assert result.problems == []
    assert result.requests[0].key == f"release-{shown}"


def test_a_value_used_as_a_number_or_a_condition_is_fine(tmp_path: Path) -> None:
    message = SMS.replace('id: "release-{{ version }}"\n', "") + (
        'when: "not paused"\n'
        "raw:\n"
        '  Next: "{{ count + 1 }}"\n'
        '  Big: "{{ count > 999 }}"\n'
        "  Flag: \"{{ 'on' if paused is false else 'off' }}\"\n"
        '  Empty: "{{ nothing }}"\n'
        '  Huge: "{{ huge }}"\n'
    )
    message = message.replace("{{ version }}", "{{ '%.2f' | format(version | float) }}")
    variables = "version: 1.10\ncount: 1_000\npaused: NO\nnothing: ~\nhuge: 1.0e+16\n"
    project(tmp_path, message, variables)
    result = build_project(tmp_path)
    assert result.problems == []
    data = result.requests[0].data
    assert (data["Next"], data["Big"], data["Flag"], data["Empty"]) == (1001, True, "on", None)
    assert data["Huge"] == 1e16
    assert data["Message"] == "Acme Ledger 1.10 is going out"


@pytest.mark.parametrize(
    ("template", "written", "shown"),
    [
        ('"{{ count }}"', "1_000", "1000"),
        ('"{{ [version] }}"', "1.10", "1.1"),
        ("\"{{ {'on': paused} }}\"", "yes", "true"),
        ('"v={{ version | tojson }}"', "1.10", "1.1"),
    ],
)
def test_a_value_sent_as_it_is_counts_as_written_text(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    template: str,
    written: str,
    shown: str,
) -> None:
    message = (
        SMS.replace('id: "release-{{ version }}"\n', "").replace("{{ version }}", "now")
        + f"raw:\n  Extra: {template}\n"
    )
    name = {"1_000": "count", "1.10": "version", "yes": "paused"}[written]
    project(tmp_path, message, f"{name}: {written}\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert line.startswith(f"error: vars/common.yaml:1:{len(name) + 3}: {name}: {written} is")
    assert "(messages/main.yaml:7:10)" in line
    assert f"quote it: '{written}'" in line
    assert shown in line


def test_a_nested_value_and_a_for_each_item_are_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = SMS.replace('id: "release-{{ version }}"', 'for_each: releases\nkey: "{{ item.v }}"')
    project(tmp_path, message, "version: '2'\nreleases:\n  - {v: '1.9'}\n  - {v: 1.10}\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert line.startswith("error: vars/common.yaml:4:9: releases[1].v: 1.10 is read by YAML")
    message = SMS.replace('id: "release-{{ version }}"', "for_each: versions")
    project(tmp_path, message, "version: '2'\nversions: ['1.9', 2.10]\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert line.startswith("error: vars/common.yaml:2:19: versions[1]: 2.10 is read by YAML")
    assert "for_each (messages/main.yaml:4:11)" in line


def test_cli_and_env_values_are_text_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS, "version: '1.0'\n")
    assert run(tmp_path, "--var", "version=1.10", "render", "note", "--json") == 0
    monkeypatch.setenv("COMMBOX_VAR_version", "010")  # short: the leak guard skips it
    assert run(tmp_path, "render", "note", "--json") == 0
    out = capsys.readouterr().out
    first, end = json.JSONDecoder().raw_decode(out)
    second, _ = json.JSONDecoder().raw_decode(out[end:].lstrip())
    assert first["messages"][0]["key"] == "release-1.10"
    assert second["messages"][0]["key"] == "release-010"


def test_a_literal_in_raw_or_content_that_yaml_reads_otherwise_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = SMS.replace("{{ version }}", "2") + "raw:\n  V: 1.10\n  N: ~\n  E: 1.0e+3\n"
    project(tmp_path, message, "{}\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert line == (
        "error: messages/main.yaml:8:6: raw.V: 1.10 is read by YAML as 1.1; quote it: "
        "'1.10' (or write 1.1 if that is meant)"
    )


def test_a_literal_in_a_text_field_names_what_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = SMS.replace('"Acme Ledger {{ version }} is going out"', "NO")
    project(tmp_path, message.replace("{{ version }}", "2"), "{}\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert "messages/main.yaml:6:10: message: NO (read by YAML as False)" in line


def test_apply_sends_the_text_as_written_once_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS, "version: 1.10\n")
    monkeypatch.setenv("COMMBOX_API_TOKEN", "tok-2b8e5d7c1a9f4e03")
    with SandboxServer() as server:
        monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
        assert run(tmp_path, "apply", "--auto-approve") == 1
        assert server.accepted == []
        (tmp_path / "vars/common.yaml").write_text("version: '1.10'\n")
        assert run(tmp_path, "apply", "--auto-approve") == 0
        (received,) = server.accepted
    assert (received.data or {})["Message"] == "Acme Ledger 1.10 is going out"
    assert "release-1.10" in (tmp_path / ".commbox/ledger.jsonl").read_text()
    capsys.readouterr()


def test_a_sensitive_value_yaml_reads_otherwise_is_located_without_being_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leak_guard: Any
) -> None:
    """`pin: 0417` is octal 271 to YAML: the error says where, and never the value."""
    leak_guard.register("0417", "271")
    message = SMS.replace("{{ version }}", "2").replace("going out", "out, PIN {{ pin }}")
    project(tmp_path, message, "pin: 0417\n")
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "sensitive: [pin]\n")
    assert run(tmp_path, "validate") == 1
    (line,) = errors(capsys)
    assert line == (
        "error: vars/common.yaml:1:6: pin: this sensitive value is read by YAML as other than "
        "its text, so message (messages/main.yaml:6:10) would not carry it as written; quote it"
    )
