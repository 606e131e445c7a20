"""Secrets (the API token, `sensitive:` values) never show in output and nothing in the ledger
or a plan file depends on them (SPEC sections 4 and 5)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import shutil
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commbox_yaml.cli import main
from commbox_yaml.compile import canonical_json, fingerprint_of
from commbox_yaml.output import Console
from commbox_yaml.redact import REDACTED, Redactor, secret_forms
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.leaks import LeakGuard, leak_report
from tests.projects import build_project, project
from tests.sending import events

TOKEN = "tok-71c0e5b9a2d84f36"
FIXTURES = Path(__file__).parent / "fixtures"
PIN = "4821"
ACCOUNT = "ACCT-99-SECRET-7f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d"  # 58 characters

COMMBOX = """\
version: 1
api: {{rate_per_s: 0, max_attempts: 1, concurrency: 1}}
streams:
  sms: 5fd0c1
vars: [vars/common.yaml]
sensitive: [{sensitive}]
"""
SMS = """\
name: note
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: "Your PIN is {{ pin }}"
"""


def make(
    root: Path,
    messages: str = SMS,
    variables: str = f"pin: '{PIN}'\n",
    sensitive: str = "pin",
    extra: str = "",
) -> Path:
    return project(root, messages, variables, commbox=COMMBOX.format(sensitive=sensitive) + extra)


def run(root: Path, *args: str) -> int:
    return main(["-C", str(root), *args])


# -- fingerprints and field hashes do not depend on secrets ---------------------------------


@pytest.mark.parametrize("environ", [{}, {"COMMBOX_API_TOKEN": TOKEN}])
def test_fingerprints_without_secrets_are_as_before(environ: dict[str, str]) -> None:
    """Recorded before placeholders were introduced: every ledger written then stays `=`."""
    recorded = json.loads((FIXTURES / "no-secrets.fingerprints.json").read_text())
    result = build_project(FIXTURES / "no-secrets", environ=environ)
    assert not result.problems
    now = {r.key: {"fingerprint": r.fingerprint, "fields": r.field_hashes} for r in result.requests}
    assert now == recorded


def _candidates_matching(ledger_hash: str, text: str) -> list[str]:
    """Every 4-digit PIN whose field hash equals the ledger's (the brute force that worked)."""
    return [
        f"{n:04d}"
        for n in range(10_000)
        if hashlib.sha256(canonical_json(text.format(f"{n:04d}"))).hexdigest()[:16] == ledger_hash
    ]


def test_a_pin_cannot_be_recovered_from_the_ledger_by_trying_every_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path)
    assert run(tmp_path, "apply", "--sandbox", "--auto-approve") == 0
    stored = (tmp_path / ".commbox/sandbox-ledger.jsonl").read_text()
    ledger = [json.loads(line) for line in stored.splitlines()]
    pending = next(e for e in ledger if e["event"] == "pending")
    assert _candidates_matching(pending["fields"]["Message"], "Your PIN is {}") == []
    # (the same search finds the PIN in an unsalted hash of the text itself)
    unsalted = hashlib.sha256(canonical_json(f"Your PIN is {PIN}")).hexdigest()[:16]
    assert _candidates_matching(unsalted, "Your PIN is {}") == [PIN]
    # the whole-message fingerprint: the request rebuilt with each candidate never matches
    request = build_project(tmp_path).requests[0]
    data = dict(request.data)
    matches = []
    for n in range(10_000):
        data["Message"] = f"Your PIN is {n:04d}"
        if fingerprint_of(request.stream, data, [])[0] == pending["fingerprint"]:
            matches.append(n)
    assert matches == []
    # what is stored is the hash of the placeholder, whatever the PIN
    placeholder = f"Your PIN is {REDACTED}"
    expected = hashlib.sha256(canonical_json(placeholder)).hexdigest()[:16]
    assert pending["fields"]["Message"] == expected


@pytest.mark.parametrize(
    ("message", "values"),
    [
        # inside a longer string, and a sensitive integer sent as a number
        ('raw: {Pin: "{{ pin }}", Note: "pin={{ pin }};"}', ("1234", "5678")),
        # a PIN with a leading zero, sent as the number it reads as
        ('raw: {Pin: "{{ pin | int }}"}', ("'0417'", "'0932'")),
        # nested mappings and lists
        ('content: {meta: {list: ["x{{ pin }}y", {deep: "{{ pin }}"}]}}', ("'ab12cd'", "'zz98yy'")),
        # the forms templates commonly give a value
        (
            'message: "{{ pin | upper }} {{ pin | lower }} {{ pin | urlencode }} {{ pin | e }}"',
            ("'Pa&s s/wörd'", "'Other/V@lue x'"),
        ),
    ],
)
def test_a_sensitive_value_never_changes_a_fingerprint(
    tmp_path: Path, message: str, values: tuple[str, str]
) -> None:
    messages = SMS.replace('message: "Your PIN is {{ pin }}"', 'message: "m"')
    if not message.startswith("message"):
        messages += message + "\n"
    else:
        messages = messages.replace('message: "m"', message)
    results = []
    for index, value in enumerate(values):
        root = make(tmp_path / str(index), messages, f"pin: {value}\n")
        result = build_project(root)
        assert not result.problems, result.problems
        results.append(result.requests[0])
    first, second = results
    assert first.sent_data != second.sent_data  # the requests differ ...
    assert first.fingerprint == second.fingerprint  # ... what the ledger holds does not
    assert first.field_hashes == second.field_hashes


def test_a_sensitive_phone_number_is_redacted_as_it_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Phone numbers are sent as digits: the written form alone would not match."""
    messages = SMS.replace('"972544444444"', '"{{ phone }}"') + 'to: ["{{ phone }}"]\n'
    fingerprints = set()
    for index, phone in enumerate(("+972 54-444-4444", "00972 52 222 2222")):
        variables = f"phone: '{phone}'\npin: '{PIN}'\n"
        root = make(tmp_path / str(index), messages, variables, "pin, phone")
        request = build_project(root).requests[0]
        digits = re.sub(r"[^0-9]", "", phone).removeprefix("00")
        assert request.sent_data["UserStreamProviderId"] == digits
        fingerprints.add(request.fingerprint)
        assert run(root, "render", "note") == 0
        assert run(root, "plan") == 0
    assert len(fingerprints) == 1
    out = capsys.readouterr().out
    assert '"UserStreamProviderId": "(sensitive)"' in out
    assert "4444" not in out
    assert "2222" not in out


def test_placeholders_are_deterministic_longest_first() -> None:
    one = Redactor(["abcd", "abcdef", "cdefgh"], guard_cuts=False)
    two = Redactor(["cdefgh", "abcdef", "abcd"], guard_cuts=False)
    for text in ("abcdefgh", "xabcdx", "abcdefabcd"):
        assert one.text(text) == two.text(text)
    assert one.text("abcdefgh") == "(sensitive)gh"
    assert one.data({"k-abcd": [1, "abcd", {"n": "abcdef!"}]}) == {
        "k-(sensitive)": [1, REDACTED, {"n": "(sensitive)!"}]
    }


_TEXT = st.text(alphabet=st.sampled_from('aAb1 "\\\n%&<é/-'), max_size=6)


def _json_with(secrets: list[str]) -> st.SearchStrategy[Any]:
    """JSON-like data whose texts and numbers often hold a secret in one of its forms."""
    forms = sorted({form for secret in secrets for form in secret_forms(secret)})
    text = st.builds(lambda a, b, c: a + b + c, _TEXT, st.sampled_from(forms) | _TEXT, _TEXT)
    numbers = [int(f) for f in forms if f.isdigit() and f.isascii()]
    number = st.sampled_from(numbers) | st.integers(-500, 500) if numbers else st.integers()
    return st.recursive(
        st.none() | st.booleans() | number | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=8,
    )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_quick_check_never_misses_what_masking_would_change(data: st.DataObject) -> None:
    """fingerprint_of skips masking a request when may_occur says no secret can be in it."""
    secrets = data.draw(st.lists(_TEXT.filter(bool), min_size=1, max_size=3))
    value = data.draw(_json_with(secrets))
    redactor = Redactor(secrets, guard_cuts=False)
    if not redactor.may_occur(canonical_json(value).decode()):
        assert redactor.data(value) == value


def test_a_change_of_a_sensitive_value_alone_is_not_a_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path)
    assert run(tmp_path, "apply", "--sandbox", "--auto-approve") == 0
    assert run(tmp_path, "--var", "pin=9999", "plan", "--sandbox", "--detailed-exitcode") == 0
    out = capsys.readouterr().out
    assert "Plan: 0 to send, 1 unchanged, 0 changed (held)" in out
    # a real change still is one
    (tmp_path / "messages/main.yaml").write_text(SMS.replace("Your PIN", "The PIN"))
    assert run(tmp_path, "plan", "--sandbox", "--detailed-exitcode") == 0
    assert "changed  Message" in capsys.readouterr().out


def _normalised_ledger(root: Path) -> list[dict[str, Any]]:
    """Events in order (concurrency 1), without their times and run ids, and object ids as
    their order of appearance (the sandbox's ids never repeat across runs)."""
    normalised: list[dict[str, Any]] = []
    order: dict[Any, int] = {}
    for event in events(root):
        kept = {k: v for k, v in event.items() if k not in ("at", "run")}
        if kept.get("object_id") is not None:
            kept["object_id"] = order.setdefault(kept["object_id"], len(order))
        normalised.append(kept)
    return normalised


def _normalised_plan(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    data.pop("created_at")
    data.pop("destination")  # each apply had its own sandbox, on its own port
    return dict(data)


def test_two_applies_differing_only_in_a_sensitive_value_store_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    messages = SMS + textwrap.dedent("""\
        ---
        name: fan
        channel: sms
        stream: sms
        id: "fan-1"
        for_each: [a1, b2]
        user_stream_provider_id: "972544444444"
        message: "{{ item }}: code {{ pin }}"
        raw: {Code: "{{ pin }}"}
        """)
    roots = []
    for value in ("123456", "987654"):
        root = make(tmp_path / value, messages, f"pin: '{value}'\n")
        with SandboxServer() as server:  # each its own
            monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
            assert run(root, "plan", "-out", "release.plan") == 0
            assert run(root, "apply", "release.plan") == 0
            assert len(server.accepted) == 3
            assert all(value in str(r.data) for r in server.accepted)  # sent for real
        roots.append(root)
    first, second = roots
    assert _normalised_ledger(first) == _normalised_ledger(second)
    assert len(_normalised_ledger(first)) == 6
    assert _normalised_plan(first / "release.plan") == _normalised_plan(second / "release.plan")
    plans = []
    for root in roots:
        capsys.readouterr()
        assert run(root, "plan", "--json") == 0
        plans.append(json.loads(capsys.readouterr().out))
    assert [m["fingerprint"] for m in plans[0]["messages"]] == [
        m["fingerprint"] for m in plans[1]["messages"]
    ]


# -- keys and streams holding a sensitive value are refused ---------------------------------


@pytest.mark.parametrize(
    ("definition", "variables", "where", "what"),
    [
        ('id: "otp-{{ acct }}"', f"acct: {ACCOUNT}", "6:5", "id: the sensitive variable 'acct'"),
        (
            "for_each: accounts",
            f"accounts: [{ACCOUNT}]",
            "6:11",
            "for_each: the sensitive variable 'accounts' may not decide the 'for_each'",
        ),
        (
            'for_each: people\nkey: "{{ item.acct }}"',
            f"people: [{{acct: {ACCOUNT}}}]",
            "6:11",
            "for_each: the sensitive variable 'people'",
        ),
        ('id: "{{ acct }}"', f"acct: {ACCOUNT}", "6:5", "id: the sensitive variable 'acct'"),
        # a value that happens to be the message's name: the address is stored too
        ('id: "fixed"', "acct: note", "1:7", "name: the name contains a sensitive value"),
    ],
)
def test_a_key_holding_a_sensitive_value_is_an_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    definition: str,
    variables: str,
    where: str,
    what: str,
) -> None:
    name = variables.split(":")[0]
    make(tmp_path, SMS + definition + "\n", variables + f"\npin: '{PIN}'\n", f"pin, {name}")
    assert run(tmp_path, "validate") == 1
    assert run(tmp_path, "plan") == 1
    err = capsys.readouterr().err
    assert f"error: messages/main.yaml:{where}: " in err
    assert what in err
    assert "cannot be redacted" in err
    assert not (tmp_path / ".commbox").exists()


def test_a_stream_holding_a_sensitive_value_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = SMS.replace("stream: sms", 'stream: "{{ room }}"')
    make(tmp_path, messages, f"room: 9f3e2d1c0b9a\npin: '{PIN}'\n", "pin, room")
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    assert "error: messages/main.yaml:3:9: stream: the sensitive variable 'room' may not" in err


def test_ledger_list_redacts_keys_of_an_older_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leak_guard: LeakGuard
) -> None:
    """Keys written before they were refused: every command that reads a ledger redacts."""
    make(tmp_path, variables=f"pin: '{PIN}'\nacct: {ACCOUNT}\n", sensitive="pin, acct")
    ledger = tmp_path / ".commbox" / "ledger.jsonl"
    ledger.parent.mkdir()
    ledger.write_text(json.dumps({"event": "forget", "key": f"otp-{ACCOUNT}", "at": "x"}) + "\n")
    leak_guard.allow(ledger)  # written here as an older version would have
    assert run(tmp_path, "ledger", "list") == 0
    assert run(tmp_path, "ledger", "list", "--json") == 0
    assert "otp-(sensitive)" in capsys.readouterr().out


# -- redaction happens before text is cut or escaped ----------------------------------------


@pytest.mark.parametrize(
    ("text", "preview"),
    [
        ("{{ acct }} is your key", '"(sensitive) is your key" ('),
        # the 40-character preview used to end 26 characters into the key
        ("Your key: {{ acct }}, keep it", '"Your key: (sensitive), keep it" ('),
    ],
)
def test_a_message_preview_never_shows_the_start_of_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, preview: str
) -> None:
    messages = SMS.replace("Your PIN is {{ pin }}", text)
    make(tmp_path, messages, f"acct: {ACCOUNT}\n", "acct")
    assert run(tmp_path, "plan") == 0
    assert run(tmp_path, "plan", "--format", "markdown") == 0
    out = capsys.readouterr().out
    assert preview in out
    assert ACCOUNT[:6] not in out


def test_a_changed_field_shows_its_new_value_redacted_before_it_is_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, SMS.replace("Your PIN is {{ pin }}", "Sent to {{ acct }}"), f"acct: {ACCOUNT}\n",
         "acct")  # fmt: skip
    assert run(tmp_path, "apply", "--sandbox", "--auto-approve") == 0
    message = tmp_path / "messages/main.yaml"
    message.write_text(SMS.replace("Your PIN is {{ pin }}", "Now sent to {{ acct }} again"))
    assert run(tmp_path, "plan", "--sandbox") == 0
    assert run(tmp_path, "plan", "--sandbox", "--format", "markdown") == 0
    out = capsys.readouterr().out
    assert '"Now sent to (sensitive) again"' in out
    assert ACCOUNT[:4] not in out


@pytest.mark.parametrize(
    "describe",
    [
        lambda secret: "x" * 190 + secret,  # cut at 200 characters
        lambda secret: json.dumps({"echo": secret}),  # JSON-escaped
        lambda secret: f"<b>{secret.upper()}</b>",  # upper case
    ],
)
def test_a_server_description_is_redacted_before_it_is_cut(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    describe: Any,
) -> None:
    secret = 'pa\\ss"w0rd-7Hq2'
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    make(tmp_path, variables=f"pin: {json.dumps(secret)}\n")
    server.script(Fault(status=400, description=describe(TOKEN) + " / " + describe(secret)))
    assert run(tmp_path, "apply", "--auto-approve") == 1
    assert run(tmp_path, "apply", "--auto-approve", "--json") == 0  # sent again, as JSON
    out, err = capsys.readouterr()
    stored = (tmp_path / ".commbox" / "ledger.jsonl").read_text()
    for text in (out, err, stored):
        for value in (TOKEN, secret):
            for form in (value, json.dumps(value)[1:-1], value.upper()):
                assert form[:9] not in text
    assert "(sensitiv" in stored  # the placeholder may be cut; never the secret


class _RefusingReads(http.server.BaseHTTPRequestHandler):
    """CommBox refusing every read, its description echoing the token past 190 characters."""

    def do_GET(self) -> None:
        body = json.dumps({"status": 403, "description": "x" * 190 + TOKEN}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_reading_refused_by_reconcile_never_shows_part_of_the_token(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """readback cuts the server's description at 200 characters; what is left of a secret
    before the cut's ellipsis is masked too."""
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    make(tmp_path)
    server.script(Fault(drop=True))
    assert run(tmp_path, "apply", "--auto-approve") == 1  # unknown: reconcile has work
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingReads)
    thread = threading.Thread(target=refusing.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("COMMBOX_BASE_URL", f"http://127.0.0.1:{refusing.server_port}")
        assert run(tmp_path, "reconcile") == 0
        assert run(tmp_path, "reconcile", "--json") == 0
    finally:
        refusing.shutdown()
        refusing.server_close()
        thread.join()
    out, err = capsys.readouterr()
    assert "x" * 190 + "(sensitive)..." in out
    assert TOKEN[:4] not in out + err


def test_github_annotations_are_redacted_before_they_are_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    email = "name: note\nchannel: email\nstream: sms\nuser_stream_provider_id: a@b.example\n"
    make(tmp_path, email + "subject: s\nto: ['{{ pin }}@']\nmessage: m\n", "pin: '50%off-9A7'\n")
    assert run(tmp_path, "validate") == 1
    out, err = capsys.readouterr()
    assert out.startswith("::error file=messages/main.yaml,")
    assert "(sensitive)" in out
    for text in (out, err):
        assert "50%off" not in text
        assert "50%25off" not in text


def test_markdown_cells_are_redacted_before_they_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "a|b\\c`d-7Hq2x"
    messages = SMS.replace("Your PIN is {{ pin }}", "PIN {{ pin }}")
    make(tmp_path, messages, f"pin: {json.dumps(secret)}\n")
    assert run(tmp_path, "plan", "--format", "markdown") == 0
    out = capsys.readouterr().out
    assert '| message | "PIN (sensitive)" (' in out
    assert "a\\|b" not in out


def test_a_value_cut_by_an_error_message_never_shows_the_start_of_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Schema errors show a long value cut to 57 characters and '...'."""
    secret = ACCOUNT + "-0123456789abcdef"
    email = "name: note\nchannel: email\nstream: sms\nuser_stream_provider_id: a@b.example\n"
    make(tmp_path, email + "subject: s\nto: ['{{ pin }}@']\nmessage: m\n", f"pin: {secret}\n")
    assert run(tmp_path, "validate") == 1
    assert run(tmp_path, "validate", "--json") == 1
    out, err = capsys.readouterr()
    assert "to[0]: '(sensitive)@' is not an email address" in err
    assert ACCOUNT[:4] not in out + err


def test_a_for_each_error_never_shows_the_start_of_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, SMS + "for_each: acct\n", f"acct: {ACCOUNT}\n", "acct")
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    assert "for_each: the sensitive variable 'acct' may not decide the 'for_each'" in err


@pytest.mark.parametrize(
    ("template", "form"),
    [
        ("{{ pin | upper }}", "PA&S S/WÖRD"),
        ("{{ pin | lower }}", "pa&s s/wörd"),
        ("{{ pin | urlencode }}", "Pa%26s%20s/w%C3%B6rd"),
        ("{{ pin | e }}", "Pa&amp;s s/wörd"),
        ("{{ pin | tojson }}", '"Pa\\u0026s s/w\\u00f6rd"'),
    ],
)
def test_common_transformed_forms_are_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str, form: str
) -> None:
    secret = "Pa&s s/wörd"
    make(tmp_path, SMS.replace("{{ pin }}", template), f"pin: {secret!r}\n")
    request = build_project(tmp_path).requests[0]
    assert request.sent_data["Message"] == f"Your PIN is {form}"  # the form really is sent
    assert run(tmp_path, "render", "note") == 0
    assert run(tmp_path, "render", "note", "--json") == 0
    out = capsys.readouterr().out
    assert form[1:9] not in out
    assert "(sensitive)" in out


# -- the API token --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [("", "COMMBOX_API_TOKEN"), ("api: {token_env: MY_TOKEN}\n", "MY_TOKEN")],
)
def test_env_may_not_name_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: str, name: str
) -> None:
    make(tmp_path)
    commbox = tmp_path / "commbox.yaml"
    text = commbox.read_text().replace(
        "api: {rate_per_s: 0, max_attempts: 1, concurrency: 1}\n", settings
    )
    commbox.write_text(text + f"env: [GITHUB_REF_NAME, {name}]\n")
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    line = text.count("\n") + 1
    assert f"error: commbox.yaml:{line}:24: env[1]: {name} holds the API token" in err
    assert "remove it from 'env:'" in err


def test_a_template_reading_the_token_is_told_it_never_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    make(tmp_path, SMS.replace("{{ pin }}", "{{ env.COMMBOX_API_TOKEN }}"))
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    assert "env.COMMBOX_API_TOKEN holds a secret that templates never see; remove it" in err
    assert "add COMMBOX_API_TOKEN to 'env:'" not in err


@pytest.mark.parametrize("token_env", ["COMMBOX_API_TOKEN", "MY_TOKEN"])
def test_the_token_is_redacted_in_every_command(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token_env: str,
) -> None:
    """The token reached a template through a variable (a CI secret mapped twice)."""
    monkeypatch.setenv(token_env, TOKEN)
    monkeypatch.setenv("COMMBOX_VAR_copy", TOKEN)
    make(tmp_path, SMS.replace("Your PIN is {{ pin }}", "token {{ copy }}"))
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(
        commbox.read_text() + f"api: {{token_env: {token_env}}}\n".replace("api: ", "# ")
    )
    text = commbox.read_text().replace(
        "max_attempts: 1", f"max_attempts: 1, token_env: {token_env}"
    )
    commbox.write_text(text)
    bad = "---\nname: bad\nchannel: email\nstream: sms\nuser_stream_provider_id: a@b.example\n"
    bad += "subject: s\nto: ['{{ copy }}@']\nmessage: m\n"
    main_yaml = tmp_path / "messages/main.yaml"
    main_yaml.write_text(main_yaml.read_text() + bad)
    assert run(tmp_path, "validate") == 1
    assert "'(sensitive)@' is not an email address" in capsys.readouterr().err
    main_yaml.write_text(main_yaml.read_text().split("---")[0])
    for args in (
        ["render", "note"],
        ["render", "note", "--json"],
        ["plan"],
        ["plan", "--json"],
        ["plan", "--format", "markdown"],
    ):
        assert run(tmp_path, *args) == 0
    out, err = capsys.readouterr()
    assert "token (sensitive)" in out
    assert TOKEN[:8] not in out + err


@pytest.mark.parametrize("bad", ["\n", "\r", "\t", "\x07", "\x7f", "é"])
def test_a_token_with_a_control_character_is_refused_before_sending(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad: str,
) -> None:
    token = f"tok-8e2d{bad}5c1f0a9b7e3d"
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", token)
    make(tmp_path)
    assert run(tmp_path, "apply", "--auto-approve") == 1
    out, err = capsys.readouterr()
    assert "error: the environment variable COMMBOX_API_TOKEN (api.token_env) holds a line" in err
    assert "nothing was sent" in err
    assert "Traceback" not in err
    assert "8e2d" not in out + err
    assert "5c1f" not in out + err
    assert server.received == []
    assert not events(tmp_path)


# -- sensitive: names -----------------------------------------------------------------------


def test_a_sensitive_name_that_is_not_a_variable_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, variables="bridge_pin: '739155'\n", sensitive="bridge_pn",
         messages=SMS.replace("{{ pin }}", "{{ bridge_pin }}"))  # fmt: skip
    assert run(tmp_path, "render", "note") == 1
    out, err = capsys.readouterr()
    assert "739155" not in out + err
    assert (
        "error: commbox.yaml:6:13: sensitive[0]: 'bridge_pn' is not a variable or an 'env:' "
        "name, so nothing would be redacted; did you mean 'bridge_pin'?"
    ) in err


def test_an_env_name_may_be_sensitive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRIDGE_PIN", "7391-5582")
    make(tmp_path, SMS.replace("{{ pin }}", "{{ env.BRIDGE_PIN }}"), "{}\n", "BRIDGE_PIN",
         extra="env: [BRIDGE_PIN]\n")  # fmt: skip
    assert run(tmp_path, "render", "note") == 0
    out = capsys.readouterr().out
    assert "Your PIN is (sensitive)" in out
    first, second = (build_project(tmp_path, environ={"BRIDGE_PIN": v}) for v in ("1-2", "3-4"))
    assert first.requests[0].fingerprint == second.requests[0].fingerprint


# -- short secrets --------------------------------------------------------------------------


def test_a_short_secret_is_masked_as_a_whole_word_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = SMS.replace("Your PIN is {{ pin }}", "pin {{ pin }}, room 1425, ref x42")
    make(tmp_path, messages, "pin: '42'\n")
    assert run(tmp_path, "render", "note") == 0
    out, err = capsys.readouterr()
    assert '"Message": "pin (sensitive), room 1425, ref x42"' in out
    assert "warning: a sensitive variable has a value shorter than 4 characters" in err


# -- the leak check itself ------------------------------------------------------------------


def test_the_leak_check_finds_secrets_in_output_and_files(
    tmp_path: Path, leak_guard: LeakGuard
) -> None:
    guard = LeakGuard()
    guard.register("s3cr3t-v4lue-abc")
    assert leak_report(guard, [("Captured stdout call", "all fine")], tmp_path) is None
    found = leak_report(guard, [("Captured stdout call", "x -v4lue-ab y")], tmp_path)
    assert found is not None
    assert "captured stdout call" in found
    guard.seen("captured output", "nothing", b"...-v4lue-...")
    assert leak_report(guard, [], tmp_path) is None  # 7 characters are not enough
    (tmp_path / ".commbox").mkdir()
    (tmp_path / ".commbox" / "ledger.jsonl").write_text('{"key": "cr3t-v4lue"}\n')
    found = leak_report(guard, [], tmp_path)
    assert found is not None
    assert "ledger.jsonl" in found
    shutil.rmtree(tmp_path / ".commbox")
    (tmp_path / "x.json").write_text('{"kind": "commbox-yaml plan", "k": "s3cr3t-v"}')
    assert leak_report(guard, [], tmp_path) is not None
    (tmp_path / "x.json").unlink()
    # a project's sensitive values are found on their own
    make(tmp_path / "p", variables="pin: 'found-by-itself'\n")
    (tmp_path / "out.plan").write_text("elf-by-itse" + "lf")
    leak_guard.allow(tmp_path / "out.plan")  # this test's own guard must not fail it
    found = leak_report(LeakGuard(), [], tmp_path)
    assert found is not None
    assert "out.plan" in found


pytest_plugins = ["pytester"]


def test_a_test_that_prints_a_secret_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(
        test_inner="""
        TOKEN = "inner-token-0123456789"

        def test_prints_unread():
            print("the token is " + TOKEN)

        def test_prints_read(capsys):
            print("x " + TOKEN[3:12])
            assert capsys.readouterr().out

        def test_writes_a_ledger(tmp_path):
            (tmp_path / "ledger.jsonl").write_text(TOKEN)

        def test_clean(capsys):
            print("nothing secret")

        def test_registered(leak_guard, capsys):
            leak_guard.register("my-own-secret-value")
            print("own-secret")
        """
    )
    pytester.syspathinsert(Path(__file__).parent.parent)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=4)
    result.stdout.fnmatch_lines(["*secret leak check*"])


def test_many_secrets_cost_little(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Marking a customer list sensitive (2,000 values) keeps plan quick: secrets are found
    through one trie-shaped pattern, not one alternative per secret tried at every place."""
    tokens = {f"c{n:04d}": f"cust-{n:04d}-{hashlib.sha256(str(n).encode()).hexdigest()[:12]}"
              for n in range(2000)}  # fmt: skip
    messages = "".join(
        SMS.replace("name: note", f"name: note{n}").replace(
            "{{ pin }}", f"{{{{ tokens.c{n:04d} }}}}"
        )
        + "---\n"
        for n in range(0, 2000, 20)
    )
    make(tmp_path, messages, json.dumps({"tokens": tokens}) + "\n", "tokens")
    started = time.monotonic()
    assert run(tmp_path, "plan", "--detail") == 0  # every message, each with its PIN
    assert run(tmp_path, "plan", "--format", "markdown", "--detail") == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert out.count("Your PIN is (sensitive)") == 200
    assert elapsed < 30, elapsed


@pytest.mark.parametrize(
    ("head", "items", "tail"),
    [
        ({"format_version": "1", "summary": {"sent": 2}}, [{"a": 1}, {"b": [2, 3]}], {"x": None}),
        ({}, [], None),
        ({"k": "v"}, ({"n": n} for n in range(3)), None),
    ],
)
def test_a_document_written_an_item_per_line_is_the_same_json_value(
    head: dict[str, Any], items: Any, tail: dict[str, Any] | None
) -> None:
    """Console.json_with_list and json_list (apply, plan, render, reconcile, ledger list
    --json) write what Console.json would, redacted the same, one item per line."""
    items = list(items)
    secret = "s3cret-value"
    head = {**head, "who": f"for {secret}"} if head else head
    items = [*items, {"key": secret, secret: 417}] if items else items
    redactor = Redactor([secret, "0417"], guard_cuts=False)
    whole, streamed, listed = io.StringIO(), io.StringIO(), io.StringIO()
    Console(whole, redactor=redactor).json({**head, "results": items, **(tail or {})})
    Console(streamed, redactor=redactor).json_with_list(head, "results", iter(items), tail)
    Console(listed, redactor=redactor).json_list(iter(items))
    assert json.loads(streamed.getvalue()) == json.loads(whole.getvalue())
    assert json.loads(listed.getvalue()) == json.loads(whole.getvalue())["results"]
    for text in (streamed.getvalue(), listed.getvalue()):
        assert secret not in text
        assert "417" not in text
        lines = text.splitlines()
        assert len(lines) == len(items) + 2  # the opening, an item per line, the closing
        assert [json.loads(line.rstrip(",")) for line in lines[1:-1]] == [
            redactor.data(item) for item in items
        ]
