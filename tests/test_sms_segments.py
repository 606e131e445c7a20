"""SMS segments: GSM-7 and UCS-2 at their boundaries, and where plans show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.segments import GSM7, GSM7_BASIC, GSM7_EXTENSION, UCS2, encoding_of, sms_size
from tests.projects import project

EXTENSION = "^{}\\[~]|€"


def test_the_gsm_alphabet_is_the_standard_one() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points less the escape
    assert set(EXTENSION) < GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert "\x1b" not in GSM7_BASIC


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", GSM7, 1),
        ("a", GSM7, 1),
        ("a" * 160, GSM7, 1),
        ("a" * 161, GSM7, 2),
        ("a" * 306, GSM7, 2),
        ("a" * 307, GSM7, 3),
        ("a" * 459, GSM7, 3),
        ("a" * 460, GSM7, 4),
        # an extension character takes two septets
        ("a" * 158 + "€", GSM7, 1),
        ("a" * 159 + "€", GSM7, 2),
        ("{" * 80, GSM7, 1),
        ("{" * 81, GSM7, 2),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM7, 1),
        # an escape pair never straddles two segments: 152 + 2 does not fit in 153
        ("a" * 152 + "€" + "a" * 10, GSM7, 2),
        ("a" * 152 + "€" + "a" * 152, GSM7, 3),  # 306 septets, but the pair moves on
        ("a" * 151 + "€" + "a" * 153, GSM7, 2),
        # anything outside GSM-7 makes the whole text UCS-2
        ("a" * 69 + "ש", UCS2, 1),
        ("a" * 70 + "ש", UCS2, 2),
        ("ש" * 70, UCS2, 1),
        ("ש" * 71, UCS2, 2),
        ("ש" * 134, UCS2, 2),
        ("ש" * 135, UCS2, 3),
        ("ç", UCS2, 1),  # the lower case c cedilla is not in the GSM alphabet
        ("`", UCS2, 1),
        # an emoji is two UTF-16 code units, and is never split
        ("😀" * 35, UCS2, 1),
        ("😀" + "a" * 69, UCS2, 2),
        ("a" * 66 + "😀" + "a" * 10, UCS2, 2),
        ("a" * 66 + "😀" + "a" * 66, UCS2, 3),
        ("a" * 65 + "😀" + "a" * 67, UCS2, 2),
    ],
)
def test_segments_at_the_boundaries(text: str, encoding: str, segments: int) -> None:
    size = sms_size(text)
    assert (size.encoding, size.segments) == (encoding, segments)
    assert size.describe() == {"encoding": encoding, "segments": segments}


def test_units_count_septets_and_utf16_code_units() -> None:
    assert sms_size("a€").units == 3
    assert sms_size("א😀").units == 3
    assert encoding_of(EXTENSION) == GSM7


HEBREW = "שלום " * 20  # 100 characters: two UCS-2 segments, one if it were GSM-7
SMS_MESSAGES = f"""\
name: note
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: "{HEBREW}"
---
name: short
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: "{"x" * 161}"
---
name: mail
channel: email
stream: email
user_stream_provider_id: ops@acme.example
subject: hi
to: [ops@acme.example]
message: "{HEBREW}"
"""


def test_plan_json_carries_the_sms_encoding_and_segments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS_MESSAGES)
    assert main(["-C", str(tmp_path), "plan", "--json"]) == 0
    messages = {m["address"]: m for m in json.loads(capsys.readouterr().out)["messages"]}
    assert messages["note"]["sms"] == {"encoding": "UCS-2", "segments": 2}
    assert messages["short"]["sms"] == {"encoding": "GSM-7", "segments": 2}
    assert "sms" not in messages["mail"]
    assert main(["-C", str(tmp_path), "render", "note", "--json"]) == 0
    (rendered,) = json.loads(capsys.readouterr().out)["messages"]
    assert rendered["sms"] == {"encoding": "UCS-2", "segments": 2}


def test_the_human_plan_shows_segments_and_their_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS_MESSAGES)
    assert main(["-C", str(tmp_path), "plan"]) == 0
    out = capsys.readouterr().out
    assert "segments 2 (UCS-2, 100 UTF-16 units)" in out
    assert "segments 2 (GSM-7, 161 septets)" in out
    summary, digest = out.rstrip().splitlines()[-2:]  # the plan ends with its digest
    assert summary == (
        "Plan: 3 to send, 0 unchanged, 0 changed (held), 0 unknown; 4 SMS segments to send."
    )
    assert digest.startswith("Plan digest: sha256:")
    assert main(["-C", str(tmp_path), "render", "note"]) == 0
    assert "# SMS segments: 2 (UCS-2, 100 UTF-16 units)" in capsys.readouterr().out


def test_the_markdown_plan_shows_segments_and_their_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS_MESSAGES)
    assert main(["-C", str(tmp_path), "plan", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| segments | 2 (UCS-2, 100 UTF-16 units) |" in out
    assert "; 4 SMS segments to send.**" in out


def test_no_segment_total_without_an_sms_to_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS_MESSAGES.split("---\n")[2])
    assert main(["-C", str(tmp_path), "plan"]) == 0
    assert "SMS segment" not in capsys.readouterr().out
