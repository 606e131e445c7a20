"""Test sends: `apply --test-to` sends each targeted message as it is, to test recipients only,
recorded under `test:` keys that never change a real key.

Real sends to the sandbox on 127.0.0.1; real projects and ledgers under tmp_path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from commbox_yaml import testsend
from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.ledgers import TOKEN as LEDGER_TOKEN
from tests.ledgers import make
from tests.pg import ROLE_PASSWORD, PgServer
from tests.projects import build_project, write
from tests.sending import apply, events, ledger_path, point_at, states
from tests.test_terminal import PROJECT, _run_on_terminal

TOKEN = "tok-5b1f0c9e7a2d4e33"
EMAIL = "qa@test.example"
PHONE = "+1 (555) 010-9999"
DIGITS = "15550109999"
# Every real recipient of the project below, as each may appear in a request.
REAL = ("acme.example", "544444444", "533333333", "522222222", "511111111")

COMMBOX = """\
version: 1
api:
  rate_per_s: 0
{limits}streams:
  email: b9910a75a46c492c9cf46a910cdba0012
  sms: 5fd0c1
  wa: 5fd0c2
  chat: 5fd0c3
vars: [vars/common.yaml]
"""

MESSAGES = """\
name: mail
channel: email
stream: email
id: "mail-{{ version }}"
user_stream_provider_id: dana@acme.example
subject: "Release {{ version }}"
to: [{address: dana@acme.example, name: Dana}]
cc: [boss@acme.example]
bcc: [audit@acme.example]
user: {first_name: Dana, email: dana@acme.example, phone1: "+972 54-444-4444"}
message: "Hello Dana, {{ version }} is out"
---
name: text
channel: sms
stream: sms
id: "text-{{ version }}"
user_stream_provider_id: "+972 54-444-4444"
to: ["+972 54-444-4444", "972533333333"]
user: {phone1: "972544444444", email: dana@acme.example}
message: "{{ version }} is going out"
---
name: wa
channel: whatsapp
stream: wa
id: "wa-{{ version }}"
user_stream_provider_id: "972522222222"
to: ["972522222222"]
template: {name: release_update, language: en, params: ["Dana", "{{ version }}"]}
message: "wa {{ version }}"
---
name: chat
channel: chat
stream: chat
id: "chat-{{ version }}"
user_stream_provider_id: "972511111111"
message: "chat {{ version }}"
---
name: never
channel: sms
stream: sms
id: "never-{{ version }}"
when: false
user_stream_provider_id: "972544444444"
message: "never"
"""
REAL_KEYS = ("mail-2.0", "text-2.0", "wa-2.0", "chat-2.0")


def _project(root: Path, limits: str = "") -> Path:
    return write(
        root,
        {
            "commbox.yaml": COMMBOX.format(limits=limits),
            "messages/all.yaml": MESSAGES,
            "vars/common.yaml": 'version: "2.0"\n',
        },
    )


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> Path:
    point_at(monkeypatch, server.url, TOKEN)
    return _project(tmp_path)


def _plan_actions(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    return {m["key"]: m["action"] for m in plan["messages"]}


def _test_send(root: Path, *args: str) -> int:
    return apply(root, "--test-to", EMAIL, "--test-to", PHONE, *args)


def test_test_sends_reach_only_the_test_recipients_and_leave_every_real_key_to_send(
    root: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _test_send(root) == 0
    out = capsys.readouterr().out
    assert "Test sends complete: 3 sent, 0 failed, 0 unknown." in out
    sent = {str(r.data["Message"]): r.data for r in server.accepted if r.data}
    assert set(sent) == {"Hello Dana, 2.0 is out", "2.0 is going out", "wa 2.0"}
    for data in sent.values():
        whole = json.dumps(data)
        assert not [real for real in REAL if real in whole], whole
    mail = sent["Hello Dana, 2.0 is out"]
    assert mail["Content"]["to"] == [{"address": EMAIL}]
    assert "cc" not in mail["Content"]
    assert "bcc" not in mail["Content"]
    assert mail["UserStreamProviderId"] == EMAIL
    assert mail["User"] == {"FirstName": "Dana", "Phone1": DIGITS, "Email": EMAIL}
    text = sent["2.0 is going out"]
    assert text["Content"]["to"] == [DIGITS]
    assert text["UserStreamProviderId"] == DIGITS
    assert text["User"] == {"Phone1": DIGITS, "Email": EMAIL}
    assert sent["wa 2.0"]["Content"]["to"] == [DIGITS]
    assert sent["wa 2.0"]["Content"]["whatsapp_hsm_name"] == "release_update"

    # Every real message is still to send: no real key was touched.
    actions = _plan_actions(root, capsys)
    assert actions == {**dict.fromkeys(REAL_KEYS, "send"), "never-2.0": "skipped"}
    recorded = states(root)
    assert set(recorded) == {"test:mail-2.0", "test:text-2.0", "test:wa-2.0"}
    assert all(s.status is KeyStatus.SENT for s in recorded.values())
    # No recipient, real or test, is in the ledger: keys, hashes and ids only.
    ledger = ledger_path(root).read_text()
    for recipient in (*REAL, EMAIL, DIGITS, "5550109999"):
        assert recipient not in ledger


def test_a_test_send_may_be_repeated_and_an_unchanged_message_is_test_sent_too(
    root: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert apply(root) == 0  # the real sends: every message is `=` now
    assert len(server.accepted) == 4
    assert set(_plan_actions(root, capsys).values()) == {"unchanged", "skipped"}
    real_before = {k: s for k, s in states(root).items() if k in REAL_KEYS}

    assert _test_send(root) == 0
    assert _test_send(root) == 0  # a test key never blocks the next test send
    assert len(server.accepted) == 4 + 3 + 3
    tests = [r.data for r in server.accepted[4:] if r.data]
    assert all(DIGITS in json.dumps(d) or EMAIL in json.dumps(d) for d in tests)

    after = states(root)
    assert {k: s for k, s in after.items() if k in REAL_KEYS} == real_before
    assert after["test:mail-2.0"].events == 4  # two tries: pending and sent, twice
    assert set(_plan_actions(root, capsys).values()) == {"unchanged", "skipped"}


def test_the_output_names_what_is_test_sent_to_whom_and_what_is_skipped_and_why(
    root: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert apply(root, "--test-to", EMAIL) == 0
    out = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert f"t mail email -> {EMAIL}" in lines
    assert "text skipped: no --test-to for sms" in lines
    assert "skipped: no --test-to for whatsapp" in out
    assert "skipped: chat has no recipient to replace" in out
    assert "skipped: 'when' is false" in out
    assert "Test sends: 1 to send, 4 skipped." in out
    assert "Test sends complete: 1 sent" in out
    assert len(server.accepted) == 1

    capsys.readouterr()
    assert apply(root, "--test-to", PHONE, "--json", "--target", "text", "--target", "chat") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_to"] == [DIGITS]
    assert result["summary"]["sent"] == 1
    (sent,) = result["results"]
    assert sent["address"] == "text"
    assert sent["key_for_test"] == "test:text-2.0"
    assert sent["to"] == [DIGITS]
    assert sent["outcome"] == "sent"
    assert result["skipped"] == [
        {"address": "chat", "key": "chat-2.0", "channel": "chat",
         "reason": "chat has no recipient to replace"},
    ]  # fmt: skip


@pytest.mark.parametrize("value", ["dana@", "not a number", "12345", "+0 54 444 4444", "a@b"])
def test_a_test_recipient_that_is_neither_an_address_nor_a_phone_number_is_refused(
    root: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert apply(root, "--test-to", value) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: --test-to {value!r} is ")
    assert server.received == []
    assert events(root) == []


@pytest.mark.parametrize(
    "extra", [["saved.plan"], ["--replace", "mail-2.0"], ["--reconcile"]],
    ids=["plan-file", "replace", "reconcile"],
)  # fmt: skip
def test_test_to_does_not_go_with_a_plan_file_replace_or_reconcile(
    root: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    assert main(["-C", str(root), "plan", "-out", "saved.plan"]) == 0
    capsys.readouterr()
    assert apply(root, "--test-to", EMAIL, *extra) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--test-to cannot be used with" in err
    assert server.received == []


def test_test_sends_need_approval_and_keep_to_max_sends(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: SandboxServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_at(monkeypatch, server.url, TOKEN)
    root = _project(tmp_path, "limits:\n  max_sends: 2\n")
    assert main(["-C", str(root), "apply", "--test-to", EMAIL]) == 1  # no terminal, no approval
    assert "needs approval: pass --auto-approve" in capsys.readouterr().err
    assert _test_send(root) == 1
    assert "3 test messages, over limits.max_sends (2)" in capsys.readouterr().err
    assert server.received == []
    assert _test_send(root, "--allow-bulk") == 0
    assert len(server.accepted) == 3


def test_an_unknown_test_send_blocks_nothing_and_reconcile_says_so(
    root: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script(Fault(status=500))
    assert apply(root, "--test-to", EMAIL) == 1
    assert "1 unknown" in capsys.readouterr().out
    assert states(root)["test:mail-2.0"].status is KeyStatus.UNKNOWN

    # Not held: the next test send goes out, and the real message is still to send.
    assert apply(root, "--test-to", EMAIL) == 0
    assert _plan_actions(root, capsys)["mail-2.0"] == "send"

    server.script(Fault(status=500))
    assert apply(root, "--test-to", EMAIL) == 1
    capsys.readouterr()
    assert main(["-C", str(root), "reconcile"]) == 0  # not among the keys held as unknown
    assert "Nothing to reconcile" in capsys.readouterr().out
    assert main(["-C", str(root), "reconcile", "test:mail-2.0", "--json"]) == 0
    (finding,) = json.loads(capsys.readouterr().out)["results"]
    assert finding["result"] == "unknown"
    assert "a test send left unknown" in finding["reason"]
    assert "blocks nothing" in finding["reason"]

    assert main(["-C", str(root), "ledger", "list"]) == 0
    listed = capsys.readouterr().out
    assert "test:mail-2.0" in listed


def test_test_sends_in_the_sandbox_use_its_own_ledger(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _test_send(root, "--sandbox") == 0
    assert "Test sends complete: 3 sent" in capsys.readouterr().out
    assert not ledger_path(root).exists()
    assert set(states(root, "sandbox-ledger.jsonl")) == {
        "test:mail-2.0", "test:text-2.0", "test:wa-2.0",
    }  # fmt: skip


def test_a_reply_and_a_real_key_named_like_a_test_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path)
    result = build_project(root)
    text = next(r.message for r in result.requests if r.key == "text-2.0")
    recipients = testsend.Recipients((EMAIL,), (DIGITS,))
    assert testsend.skip_reason(text, False, recipients) is None
    reply = dataclasses.replace(text, values={**text.values, "reply_to": "mail"})
    assert (
        testsend.skip_reason(reply, False, recipients)
        == "a reply goes to its parent's conversation"
    )
    assert (
        testsend.skip_reason(text, False, testsend.Recipients((EMAIL,))) == "no --test-to for sms"
    )
    assert testsend.key_for_test("x" * 512).startswith("test:sha256:")
    assert len(testsend.key_for_test("x" * 512)) <= 512

    # A real key never starts with `test:`: it could be taken for a test send's.
    messages = root / "messages" / "all.yaml"
    messages.write_text(messages.read_text().replace('id: "wa-', 'id: "test:wa-'))
    assert main(["-C", str(root), "validate"]) == 1
    assert "keys starting with 'test:' are kept for test sends" in capsys.readouterr().err


def test_a_message_with_sensitive_values_is_test_sent_with_them_and_shows_none(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: SandboxServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_at(monkeypatch, server.url, TOKEN)
    pin, phone = "PIN-7c41e2d9", "+972 54-444-4444"
    commbox = COMMBOX.format(limits="") + "sensitive: [pin, phone]\n"
    message = """\
    name: otp
    channel: sms
    stream: sms
    user_stream_provider_id: "{{ phone }}"
    to: ["{{ phone }}"]
    message: "Your PIN is {{ pin }}"
    """
    root = write(
        tmp_path,
        {
            "commbox.yaml": commbox,
            "messages/otp.yaml": message,
            "vars/common.yaml": f"pin: '{pin}'\nphone: '{phone}'\n",
        },
    )
    assert apply(root, "--test-to", PHONE, "--json") == 0
    out = capsys.readouterr().out
    assert json.loads(out)["summary"]["sent"] == 1
    (received,) = server.accepted
    assert received.data == {
        **(received.data or {}),
        "Message": f"Your PIN is {pin}",  # the real value goes to the test recipient
        "UserStreamProviderId": DIGITS,
        "Content": {"to": [DIGITS]},
    }
    assert pin not in out
    assert pin not in ledger_path(root).read_text()
    assert "544444444" not in json.dumps(received.data)


def test_test_sends_on_a_postgresql_ledger_repeat_and_leave_real_keys_alone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: SandboxServer,
    postgres: PgServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_at(monkeypatch, server.url, LEDGER_TOKEN)
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    monkeypatch.delenv("COMMBOX_LEDGER_URL", raising=False)
    database = postgres.new_database()
    root = make(tmp_path, count=3, ledger=f"url: '{postgres.url(database)}', namespace: team")
    assert apply(root, "--test-to", PHONE) == 0
    assert apply(root, "--test-to", PHONE) == 0  # claims a test key that has events already
    assert len(server.accepted) == 6
    assert set(_plan_actions(root, capsys).values()) == {"send"}
    assert main(["-C", str(root), "ledger", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {entry["key"] for entry in listed} == {f"test:notice-1[p{n:04d}]" for n in range(3)}
    assert {entry["status"] for entry in listed} == {"sent"}
    assert ledger_path(root).exists() is False


def test_on_a_terminal_test_sends_are_listed_then_asked_for(
    tmp_path: Path, server: SandboxServer
) -> None:
    write(tmp_path, dict(PROJECT))
    code, screen = _run_on_terminal(tmp_path, server, "no", "--test-to", PHONE)
    assert code == 1
    assert "Send 3 test messages? Only 'yes' is accepted:" in screen
    assert screen.index("hi[c]") < screen.index("Send 3 test messages?")
    assert "apply cancelled; nothing was sent" in screen
    assert server.received == []
    code, screen = _run_on_terminal(tmp_path, server, "yes", "--test-to", PHONE)
    assert code == 0, screen
    assert "Test sends complete: 3 sent, 0 failed, 0 unknown." in screen
    assert len(server.accepted) == 3
