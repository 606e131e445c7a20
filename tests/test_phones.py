"""Phone numbers: written any common way, sent as CommBox's digits; anything else refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commbox_yaml.cli import main
from commbox_yaml.phones import MAX_DIGITS, _problem, is_phone, normalize_phone, phone_problem
from tests.projects import build_project, project


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("+972 54-444-4444", "972544444444"),
        ("00972544444444", "972544444444"),
        ("972544444444", "972544444444"),
        ("+972 (54) 444.4444", "972544444444"),
        ("00 972 54 444 4444", "972544444444"),
        (" +1 (555) 123-4567 ", "15551234567"),
        ("05055555555", "05055555555"),  # a national number keeps its trunk 0
        ("1234567", "1234567"),
        ("123456789012345", "123456789012345"),
    ],
)
def test_common_spellings_become_digits(written: str, sent: str) -> None:
    assert is_phone(written)
    assert normalize_phone(written) == sent


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("abc", "it has letters"),
        ("972-52-CALL-NOW", "it has letters"),
        ("+97252+2222222", "a '+' may only lead the number"),
        ("97252222+", "a '+' may only lead the number"),
        ("972#544444444", "'#' cannot be part of one"),
        ("+0972544444444", "never starts with 0"),
        ("123456", "it has 6 digits; a full number has at least 7"),
        ("00123456", "it has 6 digits"),
        ("1234567890123456", "it has 16 digits; at most 15 are allowed"),
        ("+", "it has no digits"),
        ("", "it has no digits"),
        ("٩٧٢٥٤٤٤٤٤٤٤٤", "write its digits as 0-9"),
    ],
)
def test_what_is_not_a_phone_number(written: str, reason: str) -> None:
    problem = phone_problem(written)
    assert problem is not None
    assert reason in problem


def test_phone1_may_have_twenty_digits() -> None:
    assert phone_problem("1" * 20, 20) is None
    assert phone_problem("1" * 21, 20) == "it has 21 digits; at most 20 are allowed"


MESSAGES = """\
name: wa
channel: whatsapp
stream: sms
user_stream_provider_id: "+972 54-444-4444"
to: ["00972522222222", "+972 (52) 333.4444"]
template: {name: Text Template, language: en}
message: hi
user: {phone1: "+972 54-444-4444"}
---
name: text
channel: sms
stream: sms
user_stream_provider_id: "00972544444444"
to: ["+972 52-222-2222"]
message: hi
user: {phone1: "+972 54-444-4444"}
---
name: mail
channel: email
stream: email
user_stream_provider_id: ops@acme.example
subject: hi
to: [ops@acme.example]
message: hi
user: {phone1: "+972 54-444-4444"}
---
name: chat
channel: chat
stream: sms
user_stream_provider_id: "972544444444"
message: hi
user: {phone1: "00 972 54 444 4444"}
"""


def test_every_phone_field_is_sent_as_digits(tmp_path: Path) -> None:
    result = build_project(project(tmp_path, MESSAGES))
    assert result.problems == []
    data = {r.address: r.data for r in result.requests}
    assert data["wa"]["UserStreamProviderId"] == "972544444444"
    assert data["wa"]["Content"]["to"] == ["972522222222", "972523334444"]
    assert data["text"]["UserStreamProviderId"] == "972544444444"
    assert data["text"]["Content"]["to"] == ["972522222222"]
    for name in ("wa", "text", "mail", "chat"):
        assert data[name]["User"]["Phone1"] == "972544444444", name


def test_spellings_of_one_number_are_one_fingerprint(tmp_path: Path) -> None:
    message = MESSAGES.split("---\n")[1]
    one = build_project(project(tmp_path / "a", message)).requests[0]
    other = message.replace('"00972544444444"', '"972544444444"').replace(
        '"+972 52-222-2222"', '"00972522222222"'
    )
    two = build_project(project(tmp_path / "b", other)).requests[0]
    assert one.fingerprint == two.fingerprint


@pytest.mark.parametrize(
    ("field", "value", "where", "error"),
    [
        ("to", '["+972 54 CALL ME"]', "5:6",
         "to[0]: '+972 54 CALL ME' is not a phone number: it has letters"),
        ("user_stream_provider_id", '"12345"', "4:26",
         "user_stream_provider_id: '12345' is not a phone number: it has 5 digits"),
        ("user", '{phone1: "+972+54"}', "7:16",
         "user.phone1: '+972+54' is not a phone number: a '+' may only lead"),
        ("user", '{phone1: "' + "1" * 21 + '"}', "7:16",
         "is not a phone number: it has 21 digits; at most 20 are allowed"),
    ],
)  # fmt: skip
def test_a_bad_phone_is_an_error_at_its_place(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: str,
    where: str,
    error: str,
) -> None:
    fields = {"user_stream_provider_id": '"972544444444"', "to": '["972522222222"]'}
    fields[field] = value
    message = (
        "name: note\nchannel: sms\nstream: sms\n"
        f"user_stream_provider_id: {fields['user_stream_provider_id']}\n"
        f"to: {fields['to']}\nmessage: hi\n" + (f"user: {value}\n" if field == "user" else "")
    )
    project(tmp_path, message)
    assert main(["-C", str(tmp_path), "validate"]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith(f"error: messages/main.yaml:{where}: "))
    assert error in line


def test_email_and_chat_user_ids_are_not_phone_checked(tmp_path: Path) -> None:
    # Only sms and whatsapp take a phone number as the customer's id.
    chat = "name: c\nchannel: chat\nstream: sms\nuser_stream_provider_id: visitor-17\nmessage: hi\n"
    assert build_project(project(tmp_path, chat)).problems == []


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789 +-.()\t\u00a0a#٣\n", max_size=24))
def test_the_quick_path_agrees_with_the_full_check(text: str) -> None:
    # phone_problem answers the usual shapes by one regex; _problem is the full check.
    assert (phone_problem(text) is None) == (_problem(text, MAX_DIGITS) is None)
    assert (phone_problem(text, 20) is None) == (_problem(text, 20) is None)
    if phone_problem(text) is None:
        assert normalize_phone(text).isdigit()
        assert not normalize_phone(text).startswith("00")
