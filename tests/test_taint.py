"""Taint: whatever a template makes of a sensitive variable shows as `(sensitive)` in every
output, while the literal text around it stays readable; only the request sent carries the
value (SPEC section 2, Templating). Every test here also runs under the suite-wide leak guard
(tests/leaks.py), which knows the secret's transformed forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from commbox_yaml.build import Build
from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.projects import build_project, write

TOKEN = "tok-5b1e93c07a2f4d68"
SECRET = 'sk_live_51HxQ2bC3vT8mLr"Wq9Zk\\Fd7NpQ/aa+bb_Zx91'
SECRETS = [SECRET]

COMMBOX = """\
version: 1
api: {rate_per_s: 0, max_attempts: 1, concurrency: 1}
streams:
  sms: 5fd0c1
  email: b9910a75a46c492c9cf46a910cdba0012
vars: [vars/common.yaml]
env: [DEPLOY_KEY]
sensitive: [api_key, DEPLOY_KEY]
"""
SMS = """\
name: note
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: "Key: {T} (end)"
"""
EMAIL = """\
name: mail
channel: email
stream: email
user_stream_provider_id: ops@example.org
subject: Keys
to: ["{T}@"]
message: hello
"""

# Each expression, and what the request that is sent carries in its place.
TRANSFORMS = [
    ("api_key | urlencode", None),
    ("api_key[10:40]", SECRET[10:40]),
    ("api_key | reverse", SECRET[::-1]),
    ("api_key[::-1] | upper", SECRET[::-1].upper()),
    ("api_key | replace('_', '-')", SECRET.replace("_", "-")),
    ("api_key | wordwrap(12)", None),
    ("api_key.upper()", SECRET.upper()),
    ("api_key.split('_') | join('+')", "+".join(SECRET.split("_"))),
    ("api_key | title", None),
    ("api_key | truncate(30)", None),
    ("api_key | center(80)", SECRET.center(80)),
    ("'%s!' % api_key", SECRET + "!"),
    ("'{}?'.format(api_key)", SECRET + "?"),
    ("'<%s>' | format(api_key)", f"<{SECRET}>"),
    ("[api_key] | join('/')", SECRET),
    ("[api_key] | first | lower", SECRET.lower()),
    ("api_key | list | join('.')", ".".join(SECRET)),
    ("api_key | tojson", None),
    ("api_key | e", None),
    ("api_key + '-z'", SECRET + "-z"),
    ("api_key * 2", SECRET * 2),
    ("api_key | batch(5) | map('join') | join(',')", None),
    ("api_key | slice(3) | map('join') | join(',')", None),
    ("api_key | string | indent(4)", None),
    ("api_key[api_key | length - 12:]", SECRET[-12:]),
    ("env.DEPLOY_KEY[5:] | reverse", "DEPLOY-9c4e7a1f-77d2-4b0e"[5:][::-1]),
]
DEPLOY_KEY = "DEPLOY-9c4e7a1f-77d2-4b0e"


def make(root: Path, messages: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOY_KEY", DEPLOY_KEY)
    return write(
        root,
        {
            "commbox.yaml": COMMBOX,
            "messages/main.yaml": messages,
            "vars/common.yaml": f"api_key: {json.dumps(SECRET)}\nversion: '2.0'\n",
        },
    )


def run(root: Path, *args: str) -> int:
    return main(["-C", str(root), *args])


def built(root: Path) -> Build:
    return build_project(root, environ={"DEPLOY_KEY": DEPLOY_KEY})


def sms(expression: str) -> str:
    return SMS.replace("{T}", "{{ " + expression.replace('"', '\\"') + " }}")


@pytest.mark.parametrize(("expression", "sent"), TRANSFORMS)
def test_what_a_template_makes_of_a_secret_shows_as_sensitive_everywhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    expression: str,
    sent: str | None,
) -> None:
    root = make(tmp_path, sms(expression), monkeypatch)
    for args in (
        ("render", "note"),
        ("render", "note", "--json"),
        ("render", "note", "--text"),
        ("plan",),
        ("plan", "--detail"),
        ("plan", "--json"),
        ("plan", "--format", "markdown"),
        ("plan", "-out", "saved.plan"),
        ("validate",),
    ):
        assert run(root, *args) in (0, 2), args
    out = capsys.readouterr().out
    assert "Key: (sensitive) (end)" in out  # the literal text around it stays readable
    request = built(root).requests[0]
    assert request.data["Message"] == "Key: (sensitive) (end)"
    if sent is not None:  # the request sent carries what the template made of the value
        assert request.sent_data["Message"] == f"Key: {sent} (end)"
        assert request.body == {"data": request.sent_data}


@pytest.mark.parametrize(("expression", "sent"), TRANSFORMS)
def test_a_validation_error_quotes_the_shown_value_not_the_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    expression: str,
    sent: str | None,
) -> None:
    root = make(tmp_path, EMAIL.replace("{T}", "{{ " + expression + " }}"), monkeypatch)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # annotations too
    assert run(root, "validate") == 1
    assert run(root, "validate", "--json") == 1
    assert run(root, "plan") == 1
    out, err = capsys.readouterr()
    assert "messages/main.yaml:6:6: to[0]: '(sensitive)@' is not an email address" in err
    assert "'(sensitive)@'" in out  # --json and the annotation


def test_apply_sends_the_real_value_and_shows_only_the_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = (
        sms("api_key | reverse") + "raw: {Note: \"{{ api_key[0:20] | replace('_', '=') }}\"}\n"
    )
    root = make(tmp_path, message, monkeypatch)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    with SandboxServer() as server:
        monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
        assert run(root, "plan", "-out", "release.plan") == 0
        assert run(root, "apply", "release.plan") == 0
        assert run(root, "apply", "--auto-approve", "--json") == 0  # nothing left: all `=`
        received = server.accepted
    out = capsys.readouterr().out
    assert 'message  "Key: (sensitive) (end)"' in out  # apply's own plan
    assert len(received) == 1
    data = received[0].data or {}
    assert data["Message"] == f"Key: {SECRET[::-1]} (end)"
    assert data["Note"] == SECRET[0:20].replace("_", "=")
    assert '"unchanged": 1' in out
    ledger = (root / ".commbox" / "ledger.jsonl").read_text()
    assert "note" in ledger


def test_a_secret_that_decides_a_branch_or_a_length_shows_the_whole_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`if`, `length`, a loop and `in` cannot give a placeholder back: the value they are
    part of shows as (sensitive) whole, and what is sent is rendered with the real value."""
    message = (
        SMS.replace(
            "Key: {T} (end)", "{% if api_key | length > 40 %}long{% else %}short{% endif %}"
        )
        + 'raw:\n  Count: "{{ api_key | length }}"\n'
        + '  Loop: "{% for c in api_key %}{{ c }}{% endfor %}"\n'
        + "  Has: \"{{ 'x' if 'Zx91' in api_key else 'y' }}\"\n"
        + "  Inside: \"{{ 'no' if api_key in 'abc' else 'yes' }}\"\n"
    )
    root = make(tmp_path, message, monkeypatch)
    assert run(root, "render", "note", "--json") == 0
    shown = json.loads(capsys.readouterr().out)["messages"][0]["request"]["body"]["data"]
    assert shown["Message"] == "(sensitive)"
    assert {shown[k] for k in ("Count", "Loop", "Has", "Inside")} == {"(sensitive)"}
    sent = built(root).requests[0].sent_data
    assert sent["Message"] == "long"
    assert sent["Count"] == len(SECRET)
    assert sent["Loop"] == SECRET
    assert (sent["Has"], sent["Inside"]) == ("x", "yes")


def test_a_native_value_made_of_a_secret_keeps_its_shape_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = sms("api_key[0:12]") + "raw:\n  Parts: \"{{ api_key.split('_') }}\"\n"
    root = make(tmp_path, message, monkeypatch)
    assert run(root, "render", "note", "--json") == 0
    shown = json.loads(capsys.readouterr().out)["messages"][0]["request"]["body"]["data"]
    assert shown["Parts"] == ["(sensitive)"] * len(SECRET.split("_"))
    assert built(root).requests[0].sent_data["Parts"] == SECRET.split("_")


def test_the_fingerprint_never_depends_on_what_a_template_made_of_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprints = set()
    for index, secret in enumerate((SECRET, SECRET[::-1] + "Q")):
        root = make(tmp_path / str(index), sms("api_key[3:20] | reverse"), monkeypatch)
        (root / "vars/common.yaml").write_text(f"api_key: {json.dumps(secret)}\n")
        request = built(root).requests[0]
        fingerprints.add((request.fingerprint, tuple(request.field_hashes.items())))
    assert len(fingerprints) == 1


def test_a_template_error_met_only_with_the_real_value_is_withheld(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`{}[api_key]` fails with the real value, wording it: the error says so, without it."""
    root = make(tmp_path, sms("{'a': 1}[api_key[0:20]] ~ ''"), monkeypatch)
    assert run(root, "validate") == 1
    err = capsys.readouterr().err
    assert "messages/main.yaml:5:10: message: the template fails with the real value" in err


@pytest.mark.parametrize(
    ("line", "where", "key"),
    [
        ("when: \"api_key != ''\"", "6:7", "when"),
        ("when: \"{{ env.DEPLOY_KEY == 'x' }}\"", "6:7", "when"),
        ("for_each: \"{{ api_key.split('_') }}\"", "6:11", "for_each"),
        ('for_each: [a, b]\nkey: "{{ item ~ api_key[0:3] }}"', "7:6", "key"),
        ('id: "note-{{ api_key | length }}"', "6:5", "id"),
        ("id: \"note-{{ env['DEPLOY_KEY'] | length }}\"", "6:5", "id"),
        ('reply_to: "{{ api_key }}"', "6:11", "reply_to"),
    ],
)
def test_a_secret_may_not_decide_the_plans_shape(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    line: str,
    where: str,
    key: str,
) -> None:
    root = make(tmp_path, sms("version") + line + "\n", monkeypatch)
    assert run(root, "validate") == 1
    assert run(root, "plan") == 1
    err = capsys.readouterr().err
    assert f"error: messages/main.yaml:{where}: {key}: the sensitive variable" in err
    assert not (root / ".commbox").exists()


def test_a_secret_in_an_attachment_path_or_a_stream_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = EMAIL.replace("{T}", "ops") + 'attachments: ["files/{{ api_key[0:4] }}.pdf"]\n'
    root = make(tmp_path, mail.replace("stream: email", 'stream: "{{ api_key }}"'), monkeypatch)
    assert run(root, "validate") == 1
    err = capsys.readouterr().err
    assert "messages/main.yaml:3:9: stream: the sensitive variable 'api_key'" in err
    assert "messages/main.yaml:8:14: attachments: the sensitive variable 'api_key'" in err


def test_a_message_without_secrets_is_rendered_once_and_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path, sms("version ~ '!'"), monkeypatch)
    request = built(root).requests[0]
    assert request.sent is None
    assert request.body == {"data": request.data}
    assert request.data["Message"] == "Key: 2.0! (end)"


def test_the_leak_guard_knows_a_secrets_transformed_forms() -> None:
    from tests.leaks import LeakGuard, leak_report

    guard = LeakGuard()
    guard.register(SECRET)
    for form in (SECRET[::-1], SECRET.replace("_", "-"), SECRET.upper()[:9], SECRET[9:17]):
        guard.outputs = [("output", f"... {form} ...")]
        assert leak_report(guard, [], None) is not None, form
    guard.outputs = [("output", "Key: (sensitive) (end)")]
    assert leak_report(guard, [], None) is None


def test_a_message_file_may_use_a_secret_but_not_be_named_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = SMS.replace('message: "Key: {T} (end)"', "message_file: templates/note.j2")
    root = make(tmp_path, message, monkeypatch)
    write(
        root, {"templates/note.j2": "Code {{ api_key[4:24] }}.\n{% include 'templates/tail.j2' %}"}
    )
    write(root, {"templates/tail.j2": "Bye {{ api_key | reverse }}"})
    assert run(root, "render", "note", "--json") == 0
    shown = json.loads(capsys.readouterr().out)["messages"][0]["request"]["body"]["data"]
    assert shown["Message"] == "Code (sensitive).\nBye (sensitive)"
    sent = built(root).requests[0].sent_data
    assert sent["Message"] == f"Code {SECRET[4:24]}.\nBye {SECRET[::-1]}"
    (root / "messages/main.yaml").write_text(
        message.replace("templates/note.j2", "templates/{{ api_key[0:2] }}.j2")
    )
    assert run(root, "validate") == 1
    assert "5:15: message_file: the sensitive variable 'api_key'" in capsys.readouterr().err


def test_the_fast_lookup_path_agrees_with_jinja_on_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commbox_yaml.render import lookup

    templates = ["{{ api_key }}", "a {{ api_key }} b", "{{ creds.user }}", "{{ creds }}"]
    templates += ["{{ env.DEPLOY_KEY }}", "x{{ creds.pin }}y{{ version }}"]
    raw = "".join(f"  F{i}: {json.dumps(t)}\n" for i, t in enumerate(templates))
    root = make(tmp_path, sms("api_key") + "raw:\n" + raw, monkeypatch)
    with (root / "vars/common.yaml").open("a") as handle:
        handle.write("creds: {user: ops-robot-77, pin: 48213}\n")
    (root / "commbox.yaml").write_text(COMMBOX.replace("[api_key,", "[api_key, creds,"))

    def outcome() -> Any:
        result = built(root)
        assert not result.problems, result.problems
        return [(r.data, r.sent_data, r.fingerprint, dict(r.field_hashes)) for r in result.requests]

    fast = outcome()
    data, sent = fast[0][0], fast[0][1]
    assert [data[f"F{i}"] for i in range(len(templates))] == [
        "(sensitive)",
        "a (sensitive) b",
        "(sensitive)",
        {"user": "(sensitive)", "pin": "(sensitive)"},  # the shape shows, never a value
        "(sensitive)",
        "x(sensitive)y2.0",
    ]
    assert (sent["F2"], sent["F3"], sent["F5"]) == (
        "ops-robot-77",
        {"user": "ops-robot-77", "pin": 48213},
        "x48213y2.0",
    )
    with pytest.MonkeyPatch.context() as patch:  # every template through Jinja
        patch.setattr(lookup, "parse_lookup", lambda expression: None)
        patch.setattr(lookup, "parse_text", lambda source: None)
        assert outcome() == fast
