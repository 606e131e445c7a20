"""Ledger keys: at most 512 characters on either backend, refused by validation at the `id`
or `key` that made them, before any ledger or server is touched."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.ledgers import TOKEN
from tests.pg import ROLE_PASSWORD, PgServer
from tests.projects import write
from tests.sending import apply, delivered, events, ledger_path

MESSAGE = """\
name: note
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
id: "{{ long_id }}"
message: hello
---
name: fan
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
for_each: "{{ people }}"
key: "{{ item }}"
message: "hi {{ item }}"
"""


def _project(root: Path, long_id: str, person: str = "ann", ledger: str = "") -> Path:
    commbox = "version: 1\nstreams: {sms: 5fd0c1}\nvars: [vars/common.yaml]\n"
    if ledger:
        commbox += f"ledger: {{{ledger}}}\n"
    variables = {"long_id": long_id, "people": [person, "bob"]}
    return write(
        root,
        {
            "commbox.yaml": commbox,
            "messages/main.yaml": MESSAGE,
            "vars/common.yaml": json.dumps(variables, ensure_ascii=False) + "\n",
        },
    )


def _wide(count: int) -> str:
    """Characters of 4 bytes in UTF-8, random so that nothing compresses them."""
    chooser = random.Random(count)
    return "".join(chr(chooser.randrange(0x1F300, 0x1F5FF)) for _ in range(count))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    monkeypatch.delenv("COMMBOX_LEDGER_URL", raising=False)


def test_validate_refuses_a_long_id_at_the_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, "r" * 3000)
    assert main(["-C", str(root), "validate"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "error: messages/main.yaml:5:5: id: makes a ledger key of 3000 characters "
        f"({'r' * 40!r}...); a key is at most 512 characters: make the id or the item's "
        "key shorter"
    )
    assert err[1] == "validate: 1 error in 1 file"


def test_validate_refuses_a_long_item_key_at_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, "note", person="p" * 600)
    assert main(["-C", str(root), "validate"]) == 1
    (error, summary) = capsys.readouterr().err.splitlines()
    assert error.startswith(f"error: messages/main.yaml:13:6: [{'p' * 60}...]: key: makes a ")
    assert "ledger key of 605 characters" in error
    assert summary == "validate: 1 error in 1 file"


@pytest.mark.usefixtures("env")
def test_apply_on_a_file_ledger_sends_nothing_for_a_long_key(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, "x" * 513)
    assert apply(root) == 1
    assert "a key is at most 512 characters" in capsys.readouterr().err
    assert server.received == []
    assert events(root) == []


@pytest.mark.usefixtures("env")
def test_512_characters_is_the_limit_on_both_backends(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The longest key allowed is stored on a file and in PostgreSQL, even at 4 bytes a
    character (2,048 bytes: under the btree index's 2,704)."""
    longest = _wide(512)
    on_file = _project(tmp_path / "file", longest)
    database = postgres.new_database()
    on_pg = _project(
        tmp_path / "pg", longest, ledger=f"url: '{postgres.url(database)}', namespace: team"
    )
    for root in (on_file, on_pg):
        assert apply(root) == 0, capsys.readouterr().err
        capsys.readouterr()
        assert main(["-C", str(root), "ledger", "show", longest, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "sent"
    assert delivered(server)["hello"] == 2
    assert any(event["key"] == longest for event in events(on_file))
    for root in (on_file, on_pg):
        too_long = _project(root, _wide(513))
        assert apply(too_long) == 1
        assert "makes a ledger key of 513 characters" in capsys.readouterr().err
    assert delivered(server)["hello"] == 2


@pytest.mark.usefixtures("env")
def test_an_import_with_a_long_key_is_refused_whole(
    tmp_path: Path, postgres: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    database = postgres.new_database()
    root = _project(tmp_path, "note", ledger=f"url: '{postgres.url(database)}', namespace: team")
    source = tmp_path / "old-ledger.jsonl"
    at, fingerprint = "2026-01-01T00:00:00.000000Z", "sha256:" + "0" * 64
    lines = [
        {"v": 1, "at": at, "event": event, "key": key, "fingerprint": fingerprint, **extra}
        for key in ("short", "k" * 3000)
        for event, extra in (("pending", {}), ("sent", {"status": 200, "object_id": 7}))
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["-C", str(root), "ledger", "import", str(source)]) == 1
    err = capsys.readouterr().err
    assert "holds a key of 3000 characters" in err
    assert "nothing was imported" in err
    assert "internal error" not in err
    assert main(["-C", str(root), "ledger", "export"]) == 1  # still no namespace at all
    assert "no ledger" in capsys.readouterr().err
    assert not ledger_path(root).exists()


def test_a_key_with_a_control_character_is_refused_at_its_id_or_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key is printed at the start of lines and kept in the ledger: no CR, LF or the like."""
    root = _project(tmp_path, "n-1.0\r::warning::x", person="a\rb")
    assert main(["-C", str(root), "validate"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "error: messages/main.yaml:5:5: id: renders to 'n-1.0\\r::warning::x'; a ledger key "
        "must not hold line breaks or other control characters",
        "error: messages/main.yaml:13:6: key: item 0 has the key 'a\\rb'; a key must be "
        "non-empty text without '[', ']', line breaks or other control characters",
        "validate: 2 errors in 1 file",
    ]
