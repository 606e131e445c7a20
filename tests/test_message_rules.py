"""CommBox's documented rules: WhatsApp template names and languages, User limits, enums."""

from __future__ import annotations

from pathlib import Path

import pytest

from commbox_yaml.channels.whatsapp import LANGUAGES
from commbox_yaml.cli import main
from commbox_yaml.enums import OBJECT_TYPE, normalize_enum
from commbox_yaml.resources import CHANNEL_NAMES, schema
from tests.projects import build_project, project

WHATSAPP = """\
name: wa
channel: whatsapp
stream: sms
user_stream_provider_id: "972544444444"
to: ["972522222222"]
template:
  name: {name}
  language: {language}
message: hi
"""


def _errors(root: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    main(["-C", str(root), "validate"])
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize(
    "name", ["Call_a_phone_num_btn", "Text Template", "release_notice", "Ünïcode – ok", "x" * 512]
)
def test_commbox_template_names_are_accepted(tmp_path: Path, name: str) -> None:
    result = build_project(project(tmp_path, WHATSAPP.format(name=f'"{name}"', language="en")))
    assert result.problems == []
    assert result.requests[0].data["Content"]["whatsapp_hsm_name"] == name


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ('""', "template.name: must not be empty"),
        ('"a\\nb"', "template.name: 'a\\nb' must be one line (it has a line break)"),
        ('"' + "x" * 513 + '"', "is too long: 513 characters, at most 512"),
    ],
)
def test_bad_template_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, error: str
) -> None:
    project(tmp_path, WHATSAPP.format(name=name, language="en"))
    (line,) = _errors(tmp_path, capsys)
    assert line.startswith("error: messages/main.yaml:7:9: ")
    assert error in line


@pytest.mark.parametrize("language", ["en", "en_US", "he", "pt_BR", "zh_TW", "fil", "ky_KG"])
def test_whatsapp_languages_are_accepted(tmp_path: Path, language: str) -> None:
    result = build_project(project(tmp_path, WHATSAPP.format(name="t", language=language)))
    assert result.problems == []


@pytest.mark.parametrize(
    ("language", "hint"),
    [
        ("en-US", "did you mean 'en_US'?"),
        ("EN", "did you mean 'en'?"),
        ("pt-br", "did you mean 'pt_BR'?"),
        ("zh_cn", "did you mean 'zh_CN'?"),
        ("xx", "(one of: af, sq, ar,"),
    ],
)
def test_unknown_languages_say_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], language: str, hint: str
) -> None:
    project(tmp_path, WHATSAPP.format(name="t", language=language))
    (line,) = _errors(tmp_path, capsys)
    assert line.startswith(
        f"error: messages/main.yaml:8:13: template.language: '{language}' is not a "
        "WhatsApp template language code"
    )
    assert hint in line


def test_the_schema_lists_every_language_once() -> None:
    language = schema("whatsapp")["properties"]["template"]["properties"]["language"]
    assert language["enum"] == list(LANGUAGES)
    assert len(set(LANGUAGES)) == len(LANGUAGES)
    assert all("-" not in code for code in LANGUAGES)


USER = """\
name: note
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: hi
user:
  {field}: "{value}"
"""


@pytest.mark.parametrize(
    ("field", "limit"), [("unique_id", 50), ("first_name", 100), ("last_name", 100)]
)
def test_user_text_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, limit: int
) -> None:
    project(tmp_path / "ok", USER.format(field=field, value="x" * limit))
    assert build_project(tmp_path / "ok").problems == []
    project(tmp_path / "long", USER.format(field=field, value="x" * (limit + 1)))
    (line,) = _errors(tmp_path / "long", capsys)
    assert line.startswith(f"error: messages/main.yaml:7:{len(field) + 5}: user.{field}: ")
    assert f"is too long: {limit + 1} characters, at most {limit}" in line


def test_user_email_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = "a" * 64 + "@" + "b" * 186 + ".com"  # 255 characters
    project(tmp_path / "ok", USER.format(field="email", value=ok))
    assert build_project(tmp_path / "ok").problems == []
    project(tmp_path / "long", USER.format(field="email", value="a" + ok))
    (line,) = _errors(tmp_path / "long", capsys)
    assert "user.email: " in line
    assert "is too long: 256 characters, at most 255" in line


@pytest.mark.parametrize(
    ("value", "number"),
    [("17", 17), ("18", 18), ("campaign_message", 17), ("Survey Message", 18)],
)
def test_campaign_and_survey_message_types(tmp_path: Path, value: str, number: int) -> None:
    written = value if value.isdigit() else f'"{value}"'
    result = build_project(
        project(tmp_path, USER.format(field="unique_id", value="1") + f"type: {written}\n")
    )
    assert result.problems == []
    assert result.requests[0].data["Type"] == number


def test_every_schema_takes_the_object_types_of_the_enum() -> None:
    assert OBJECT_TYPE["campaign_message"] == 17
    assert normalize_enum("type", "SurveyMessage") == 18
    for channel in CHANNEL_NAMES:
        members = schema(channel)["properties"]["type"]["enum"]
        assert set(OBJECT_TYPE.values()) | set(OBJECT_TYPE) == set(members), channel
