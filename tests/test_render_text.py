"""render --text: the message as its recipient reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from commbox_yaml.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "release-notice"


def _render(capsys: pytest.CaptureFixture[str], address: str) -> str:
    assert main(["-C", str(EXAMPLE), "render", address, "--text"]) == 0
    return capsys.readouterr().out


def test_an_email_shows_subject_recipients_attachments_and_body(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _render(capsys, "release-email")
    assert out.startswith("# release-email  (email)\nSubject: Acme Ledger 1.4.0 is out\n")
    assert "\nCc: support@acme.example, Dana Shapiro <cto@acme.example>\n" in out
    assert "\nAttachments: release-notes-1.4.0.pdf, Release notes 1.4.0 (web)\n\nHello,\n" in out
    assert '"data"' not in out  # not the request


def test_an_sms_shows_its_segments_and_redacts_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    out = _render(capsys, "oncall-sms")
    assert "To: 972544444444, 972522222222\nSegments: 1 (GSM-7, 130 septets)\n\n" in out
    assert "Release bridge PIN (sensitive)." in out


def test_a_whatsapp_message_shows_template_language_and_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _render(capsys, "customer-whatsapp[tzafon-logistics]")
    assert "Template: release_announcement\nLanguage: he\n" in out
    assert "Parameters: {{1}} = Yael Cohen, {{2}} = Acme Ledger," in out


def test_text_and_json_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(EXAMPLE), "render", "oncall-sms", "--text", "--json"]) != 0
    assert "not allowed with argument" in capsys.readouterr().err
