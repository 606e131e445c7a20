"""An error about a value that came from a var file also names the var file's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import write

COMMBOX = "version: 1\nstreams:\n  wa: '5fd0c1'\nvars: [vars/customers.yaml]\n"
CUSTOMERS = """\
customers:
  - id: acme
    phone: "+972 54-444-4444"
    lang: en
  - id: globex
    phone: "call me"
    lang: en-US
"""
MESSAGE = """\
name: notice
channel: whatsapp
stream: wa
for_each: "{{ customers }}"
key: "{{ item.id }}"
user_stream_provider_id: "{{ item.phone }}"
to: ["{{ item.phone }}", "972522222222"]
template: {name: Text Template, language: "{{ item.lang }}"}
message: hi
"""


def _errors(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["-C", str(root), *args, "validate"]) == 1
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def _project(root: Path, message: str = MESSAGE, customers: str = CUSTOMERS) -> Path:
    return write(
        root,
        {"commbox.yaml": COMMBOX, "vars/customers.yaml": customers, "messages/x.yaml": message},
    )


def test_bad_values_from_a_var_file_name_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _errors(_project(tmp_path), capsys) == [
        "error: messages/x.yaml:6:26: [globex]: user_stream_provider_id: 'call me' is not a "
        "phone number: it has letters (from vars/customers.yaml:6:12)",
        "error: messages/x.yaml:7:6: [globex]: to[0]: 'call me' is not a phone number: "
        "it has letters (from vars/customers.yaml:6:12)",
        "error: messages/x.yaml:8:43: [globex]: template.language: 'en-US' is not a WhatsApp "
        "template language code; did you mean 'en_US'? (from vars/customers.yaml:7:11)",
    ]


def test_a_duplicate_key_names_the_item_in_the_var_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customers = CUSTOMERS.replace("call me", "972522222222").replace("en-US", "en")
    customers += "  - id: acme\n    phone: '972533333333'\n    lang: he\n"
    (line,) = _errors(_project(tmp_path, customers=customers), capsys)
    assert line == (
        "error: messages/x.yaml:5:6: key: items 0 and 2 both have the key 'acme'; keys must be "
        "unique (from vars/customers.yaml:8:9)"
    )


def test_a_duplicate_scalar_item_points_at_the_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = (
        MESSAGE.replace('"{{ customers }}"', "regions")
        .replace('key: "{{ item.id }}"\n', "")
        .replace("{{ item.phone }}", "972544444444")
        .replace("{{ item.lang }}", "en")
    )
    root = _project(tmp_path, message, "regions: [eu, us, eu]\ncustomers: []\n")
    (line,) = _errors(root, capsys)
    assert line.endswith("items 0 and 2 both have the key 'eu'; keys must be unique "
                         "(from vars/customers.yaml:1:19)")  # fmt: skip


def test_a_value_written_in_the_message_has_no_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 'call me' is also in the var file, but this one is written in the message itself.
    message = MESSAGE.replace('"{{ item.phone }}", "972522222222"', '"call me"')
    lines = _errors(_project(tmp_path, message), capsys)
    (line,) = [line for line in lines if " to[0]: " in line]
    assert line == (  # the same text in both items, folded
        "error: messages/x.yaml:7:6: [acme]: to[0]: 'call me' is not a phone number: "
        "it has letters (and 1 more item)"
    )


def test_a_value_from_the_command_line_has_no_file_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = MESSAGE.replace("{{ item.phone }}", "{{ phone }}")
    root = _project(tmp_path, message, CUSTOMERS.replace("en-US", "en") + "phone: abc\n")
    lines = _errors(root, capsys, "--var", "phone=call me")
    assert lines
    assert all("call me" in line and "(from " not in line for line in lines)
    lines = _errors(root, capsys)  # without --var the var file's own value is the culprit
    assert all("(from vars/customers.yaml:8:8)" in line for line in lines)
