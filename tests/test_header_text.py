"""An email's subject and its recipients' display names become mail headers: a line break or
another control character in them, written or rendered, is a validation error at its place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.projects import write
from tests.sending import events

COMMBOX = (
    "version: 1\nstreams: {email: b9910a75a46c492c9cf46a910cdba0012}\nvars: [vars/common.yaml]\n"
)
NOTES = """\
name: notes
channel: email
stream: email
user_stream_provider_id: "x@example.org"
subject: "{{ title }}"
to:
  - address: ann@example.org
    name: "{{ who }}"
  - bob@example.org
message: hello
"""
HEADER_TEXT = (
    "holds a line break or another control character, which would become part of the mail's "
    "headers; remove it (a rendered value: | replace('\\n', ' '))"
)


def _project(root: Path, variables: dict[str, object], message: str = NOTES) -> Path:
    return write(
        root,
        {
            "commbox.yaml": COMMBOX,
            "messages/notes.yaml": message,
            "vars/common.yaml": json.dumps(variables) + "\n",
        },
    )


def _errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_a_rendered_subject_with_a_line_break_is_an_error_at_the_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, {"title": "Release notes\nBcc: someone@example.org", "who": "Ann"})
    for command in (["validate"], ["plan"], ["render", "notes", "--text"]):
        assert main(["-C", str(root), *command]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        errors = captured.err.splitlines()
        assert errors[0] == (
            "error: messages/notes.yaml:5:10: subject: 'Release notes\\nBcc: someone@example.org' "
            f"{HEADER_TEXT} (from vars/common.yaml:1:11)"
        )
        assert not any(line.startswith("Bcc:") for line in captured.err.splitlines())


@pytest.mark.parametrize("name", ["Ann\r\nX-Spam: no", "Ann\rX", "Ann\x00", "Ann\u2028X", "A\tB"])
def test_a_display_name_with_a_control_character_is_an_error(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, {"title": "Release notes", "who": name})
    assert main(["-C", str(root), "validate"]) == 1
    (error, summary) = _errors(capsys)
    assert error.startswith("error: messages/notes.yaml:8:11: to[0].name: ")
    assert error.endswith(f"{HEADER_TEXT} (from vars/common.yaml:1:35)")
    assert summary == "validate: 1 error in 1 file"


def test_written_values_cc_bcc_and_link_names_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = """\
    name: literal
    channel: email
    stream: email
    user_stream_provider_id: "x@example.org"
    subject: "Two\\nlines"
    to: [ann@example.org]
    cc: [{address: c@example.org, name: "C\\nD"}]
    bcc: [{address: d@example.org, name: "fine name"}, {address: e@example.org, name: "E\\vF"}]
    attachments:
      - {url: "https://files.example/a.pdf", name: "a\\r\\n.pdf"}
    message: hello
    """
    root = _project(tmp_path, {}, message)
    assert main(["-C", str(root), "validate"]) == 1
    errors = _errors(capsys)
    assert [e.split(": ", 3)[1:3] for e in errors[:-1]] == [
        ["messages/notes.yaml:5:10", "subject"],
        ["messages/notes.yaml:7:37", "cc[0].name"],
        ["messages/notes.yaml:8:83", "bcc[1].name"],
        ["messages/notes.yaml:10:48", "attachments[0].name"],
    ]
    assert all(e.endswith(HEADER_TEXT) for e in errors[:-1])
    assert errors[-1] == "validate: 4 errors in 1 file"


def test_one_for_each_item_with_a_line_break_is_named_and_nothing_is_sent(
    tmp_path: Path,
    server: SandboxServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = NOTES.replace(
        "name: notes\n", "name: notes\nfor_each: people\nkey: '{{ item.id }}'\n"
    ).replace('"{{ who }}"', '"{{ item.name }}"')
    people = [{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob\nBcc: x@example.org"}]
    root = _project(tmp_path, {"title": "Hi", "people": people}, message)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", "tok-header-text-1")
    assert main(["-C", str(root), "apply", "--auto-approve"]) == 1
    err = capsys.readouterr().err
    assert "error: messages/notes.yaml:10:11: [bob]: to[0].name: 'Bob\\nBcc: x@example.org' " in err
    assert server.received == []
    assert events(root) == []


def test_a_final_line_break_does_not_slip_past_a_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Python's `$` matches before a final line break; JSON Schema's does not."""
    message = """\
    name: "notes\\n"
    channel: email
    stream: email
    user_stream_provider_id: "x@example.org"
    subject: "Hi"
    to: ["ann@example.org\\n"]
    attachments:
      - {url: "https://files.example/a.pdf\\n", name: "a.pdf"}
    message: hello
    """
    root = _project(tmp_path, {}, message)
    assert main(["-C", str(root), "validate"]) == 1
    errors = _errors(capsys)
    assert errors[0].startswith("error: messages/notes.yaml:1:7: name: 'notes\\n' must be lower")
    assert errors[1] == (
        "error: messages/notes.yaml:6:6: to[0]: 'ann@example.org\\n' is not an email address"
    )
    assert errors[2].startswith("error: messages/notes.yaml:8:11: attachments[0].url: ")
    assert errors[3] == "validate: 3 errors in 1 file"


def test_ordinary_subjects_and_names_still_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, {"title": "Release 2.0 — notes: «new»", "who": "Zoë O'Neil"})
    assert main(["-C", str(root), "validate"]) == 0
    assert capsys.readouterr().out == "validate: 1 message from 1 file valid.\n"
