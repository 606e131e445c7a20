"""Mistakes a new user makes with templates and for_each, each told in one line: where, what,
and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import COMMBOX_YAML, write

HEAD = "name: n\nchannel: sms\nstream: sms\nuser_stream_provider_id: '972544444444'\n"
FROM_FILE = HEAD + "message_file: templates/body.j2\n"


def validate(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of `validate` (which must fail, without a traceback)."""
    assert main(["-C", str(root), "validate"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "internal error" not in captured.err
    (line,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    return line


def make(root: Path, messages: str, variables: str = "{}\n") -> Path:
    files = {"commbox.yaml": COMMBOX_YAML, "vars/common.yaml": variables}
    return write(root, {**files, "messages/main.yaml": messages})


def test_a_message_file_symlinked_out_of_the_root_says_where_it_leads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "body.j2").write_text("hello\n")
    root = make(tmp_path / "p", FROM_FILE)
    (root / "templates").mkdir()
    (root / "templates" / "body.j2").symlink_to(outside / "body.j2")
    assert validate(root, capsys) == (
        "error: messages/main.yaml:5:15: message_file: 'templates/body.j2' resolves outside the "
        f"project root: templates/body.j2 is a symlink to {outside.resolve()}/body.j2; keep "
        "templates inside the folder of commbox.yaml: copy the file in, or point the link inside"
    )


def test_an_include_through_a_symlinked_folder_says_which_link_leads_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "footer.j2").write_text("bye\n")
    root = make(tmp_path / "p", FROM_FILE)
    (root / "templates").mkdir()
    (root / "templates" / "body.j2").write_text("hi\n{% include 'templates/shared/footer.j2' %}\n")
    (root / "templates" / "shared").symlink_to(outside, target_is_directory=True)
    assert validate(root, capsys) == (
        "error: templates/body.j2:2:1: message_file: template 'templates/shared/footer.j2' "
        f"resolves outside the project root, to {outside.resolve()}/footer.j2 (templates/shared "
        f"is a symlink to {outside.resolve()}); keep templates inside the folder of "
        "commbox.yaml: copy the file in, or point the link inside"
    )


def test_a_template_that_is_not_utf8_is_reported_at_its_first_bad_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, FROM_FILE)
    (root / "templates").mkdir()
    (root / "templates" / "body.j2").write_bytes(
        "Hello {{ 1 }}\nCaf\xe9 au lait\n".encode("latin-1")
    )
    assert validate(root, capsys) == (
        "error: templates/body.j2:2:4: message_file: template 'templates/body.j2' is not UTF-8 "
        "text (byte 0xe9 at offset 17); save it as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)"
    )


def test_an_included_template_that_is_not_utf8_is_reported_at_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, HEAD + "message: \"Hi {% include 'templates/sig.j2' %}\"\n")
    (root / "templates").mkdir()
    (root / "templates" / "sig.j2").write_bytes(b"\xff\xfeT\x00e\x00a\x00m\x00")  # UTF-16
    assert validate(root, capsys) == (
        "error: templates/sig.j2:1:1: message: template 'templates/sig.j2' is not UTF-8 text "
        "(byte 0xff at offset 0); save it as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)"
    )


def test_a_message_file_naming_a_folder_says_it_is_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, FROM_FILE.replace("templates/body.j2", "templates/"))
    (root / "templates").mkdir()
    (root / "templates" / "welcome.j2").write_text("hello\n")
    assert validate(root, capsys) == (
        "error: messages/main.yaml:5:15: message_file: 'templates/' is a folder, not a file; "
        "name a template file, such as 'templates/welcome.j2'"
    )


def test_an_id_that_renders_to_a_list_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(
        tmp_path, HEAD.replace("name: n\n", 'name: n\nid: "{{ [1,2] }}"\n') + "message: hi\n"
    )
    assert validate(root, capsys) == (
        "error: messages/main.yaml:2:5: id: renders to a list; an id must be non-empty text (or a "
        "number), as in id: 'welcome-{{ version }}'"
    )


CUSTOMERS = """\
customers:
  - id: a
    phone: '972544444444'
  - null
  - id: c
    phone: '972544444445'
"""


def test_a_null_for_each_item_is_named_with_its_place_in_the_var_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definition = HEAD.replace("'972544444444'", "'{{ item.phone }}'")
    definition += "for_each: customers\nkey: '{{ item.id }}'\nmessage: hi\n"
    root = make(tmp_path, definition, CUSTOMERS)
    assert validate(root, capsys) == (
        "error: vars/common.yaml:4:5: for_each: item 1 is empty (null) in the for_each of message "
        "'n' (messages/main.yaml:5:11); remove it from the list, or give it the values the "
        "templates read (key: '{{ item.id }}')"
    )


def test_a_null_item_of_a_list_of_names_is_named_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(
        tmp_path, HEAD + "for_each: names\nmessage: 'hi {{ item }}'\n", "names: [a, ~, c]\n"
    )
    assert validate(root, capsys) == (
        "error: vars/common.yaml:1:12: for_each: item 1 is empty (null) in the for_each of "
        "message 'n' (messages/main.yaml:5:11); remove it from the list, or give it the values "
        "the templates read"
    )


def test_a_null_value_read_by_a_template_is_called_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(
        tmp_path,
        HEAD + "for_each: people\nmessage: 'hi {{ item.name }}'\n",
        "people:\n  a: {name: Ann}\n  b:\n",
    )
    assert validate(root, capsys) == (
        "error: messages/main.yaml:6:10: [b]: message: an empty value (null) has no key 'name'; "
        "give it a value, or use | default(...) where it may be empty"
    )
