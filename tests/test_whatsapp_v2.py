"""WhatsApp templates through CommBox's v2 endpoint (Send_Templated_Message_V2): the request,
its replies, schedules, validation, and CommBox's own examples, over real sockets."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import build_project, project
from tests.sending import apply, events, point_at, sandbox_command

HERE = Path(__file__).parent / "commbox"
DOCUMENTED = json.loads((HERE / "whatsapp-v2.requests.json").read_text())
# The three examples that name a media file uploaded beforehand (`{"id": ...}`, an id from
# /whatsapp/uploadmedia/{ENCRYPTED_STREAM_ID}) are left out: a definition gives media by link
# only, since uploading is a separate request whose id would have to be known before the plan.
UPLOADED_MEDIA = {
    "Send a template with an attachment (image) ID + Object data",
    "Send a template with an attachment (doc) ID + Object data",
    "Send a template with an attachment (video) ID + Object data",
}
# Three examples nest object_data in template_data, where every other example (13 of them) and
# the operation's description have it beside template_data: those are compared with it there.
NESTED_OBJECT_DATA = {
    "Send a Call-to-Action template with a Static URL button + Object data",
    "Send a Call-to-Action template with a Dynamic URL button + Object data",
    "Send a Quick Reply template with 3 buttons + Object data",
}
STREAM = "hNyRN_fLUy7rrOrN9jLpipA=="
PATH = "/v2/whatsapp/sendtemplatedmessage/hNyRN_fLUy7rrOrN9jLpipA%3D%3D"
COMMBOX = f"version: 1\nstreams:\n  wa: {STREAM}\n  sms: 5fd0c1\n"

FULL = """\
name: promo
channel: whatsapp
api: v2
stream: wa
to: "+972 54-444-4444"
schedule: "2030-12-24T09:00:00+02:00"
template:
  name: winter_sale
  language: en_GB
  header: {document: "https://example.com/sale.pdf", filename: sale.pdf}
  params: [Dana, "20%"]
  buttons:
    - {}
    - url: "sale?c=1"
    - quick_reply: STOP
message: The winter sale template was sent
user: {first_name: Dana, phone1: "972544444444"}
"""
FULL_BODY = {
    "data": [
        {
            "schedule": 1924326000,
            "template_data": {
                "to": "972544444444",
                "template": {
                    "name": "winter_sale",
                    "language": {"code": "en_GB"},
                    "components": [
                        {
                            "type": "header",
                            "parameters": [
                                {
                                    "type": "document",
                                    "document": {
                                        "link": "https://example.com/sale.pdf",
                                        "filename": "sale.pdf",
                                    },
                                }
                            ],
                        },
                        {
                            "type": "button",
                            "sub_type": "url",
                            "index": 1,
                            "parameters": [{"type": "text", "text": "sale?c=1"}],
                        },
                        {
                            "type": "button",
                            "sub_type": "quick_reply",
                            "index": 2,
                            "parameters": [{"type": "payload", "payload": "STOP"}],
                        },
                        {
                            "type": "body",
                            "parameters": [
                                {"type": "text", "text": "Dana"},
                                {"type": "text", "text": "20%"},
                            ],
                        },
                    ],
                },
            },
            "object_data": {
                "Type": 4,
                "StatusId": 1,
                "StreamProviderType": 7,
                "UserStreamProviderId": "972544444444",
                "UserStreamProviderType": 5,
                "Message": "The winter sale template was sent",
                "User": {"FirstName": "Dana", "Phone1": "972544444444"},
            },
        }
    ]
}

SIMPLE = """\
name: notice
channel: whatsapp
api: v2
stream: wa
to: "972544444444"
template: {{name: notice, language: en}}
{extra}"""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("'", "")).strip("-")


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("v2") / "project"
    shutil.copytree(HERE / "whatsapp-v2", root)
    result = build_project(root)
    assert result.problems == []
    return {r.address: r for r in result.requests}


def test_every_example_but_uploaded_media_is_covered(examples: dict[str, Any]) -> None:
    documented = set(DOCUMENTED["examples"])
    assert len(documented) == 27
    assert documented >= UPLOADED_MEDIA
    assert set(examples) == {_slug(name) for name in documented - UPLOADED_MEDIA}


@pytest.mark.parametrize("name", sorted(set(DOCUMENTED["examples"]) - UPLOADED_MEDIA))
def test_openapi_example_is_produced_exactly(name: str, examples: dict[str, Any]) -> None:
    request = examples[_slug(name)]
    assert request.method == "POST"
    assert request.path == PATH
    assert request.content_type == "application/json"
    expected = copy.deepcopy(DOCUMENTED["examples"][name])
    if name in NESTED_OBJECT_DATA:
        (item,) = expected["data"]
        assert "object_data" not in item
        objects = item["template_data"].pop("object_data")
        expected = {"data": [{**item, "object_data": objects}]}
    # Byte for byte as CommBox writes it: the same keys in the same order.
    assert json.dumps(request.body) == json.dumps(expected)


def test_three_examples_nest_object_data_in_template_data() -> None:
    nested = {
        name
        for name, body in DOCUMENTED["examples"].items()
        if "object_data" in body["data"][0]["template_data"]
    }
    assert nested == NESTED_OBJECT_DATA


def test_the_exact_body_is_rendered_and_received(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project(tmp_path, FULL, commbox=COMMBOX)
    assert main(["-C", str(root), "render", "promo", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["messages"][0]["request"]
    assert (shown["method"], shown["path"], shown["content_type"]) == (
        "POST",
        PATH,
        "application/json",
    )
    assert shown["body"] == FULL_BODY

    point_at(monkeypatch, server.url, "t0ken")
    assert apply(root) == 0
    (received,) = server.received
    assert received.path == PATH
    assert received.stream_id == STREAM
    assert received.body == FULL_BODY
    sent = [e for e in events(root) if e["event"] == "sent"]
    assert len(sent) == 1
    assert str(sent[0]["whatsapp_id"]).startswith("wamid.")
    assert sent[0]["whatsapp_id"] in received.whatsapp_ids
    capsys.readouterr()
    assert main(["-C", str(root), "ledger", "show", "promo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["whatsapp_id"] == sent[0]["whatsapp_id"]
    # The object_data object is CommBox's: the sandbox keeps it, so that reads find it.
    (stored,) = server.objects
    assert sent[0]["object_id"] == stored.object_id
    assert stored.data["Message"] == "The winter sale template was sent"


def test_render_text_and_plan_show_the_template_and_its_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, FULL, commbox=COMMBOX)
    assert main(["-C", str(root), "render", "promo", "--text"]) == 0
    text = capsys.readouterr().out
    for line in (
        "To: 972544444444",
        "Template: winter_sale",
        "Language: en_GB",
        "Header: document https://example.com/sale.pdf (sale.pdf)",
        "Parameters: {{1}} = Dana, {{2}} = 20%",
        "Buttons: [1] url: sale?c=1, [2] quick_reply: STOP",
        "Schedule: 2030-12-24T07:00:00Z (1924326000)",
    ):
        assert line in text.splitlines()
    assert main(["-C", str(root), "plan"]) == 0
    assert "schedule 2030-12-24T07:00:00Z (1924326000)" in " ".join(capsys.readouterr().out.split())


def test_a_206_is_failed_with_its_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, SIMPLE.format(extra=""), commbox=COMMBOX)
    with SandboxServer(whatsapp_invalid=("+972 54-444-4444",)) as server:
        point_at(monkeypatch, server.url, "t0ken")
        assert apply(root) == 1
        assert server.received[0].status == 206
    (failed,) = [e for e in events(root) if e["event"] == "failed"]
    assert failed["status"] == 206
    assert failed["description"] == (
        "Provider returned failure; 400: invalid — Not a valid WhatsApp user"
    )


def _answer(*items: dict[str, Any]) -> Fault:
    payload = {"status": "200", "description": "Operation successful", "data": list(items)}
    return Fault(status=200, body=json.dumps(payload).encode())


@pytest.mark.parametrize(
    ("fault", "outcome", "description"),
    [
        (
            _answer({"recipient": "972544444444", "status": 400, "failed": "throttled by Meta"}),
            "failed",
            "400: throttled by Meta",
        ),
        (
            _answer({"recipient": "972544444444", "status": 200}),
            "unknown",
            "the server answered 200 without a WhatsApp id",
        ),
        (_answer(), "unknown", "the server answered 200 with 0 items for one recipient"),
        (
            Fault(status=200, body=b"<html>proxy</html>"),
            "unknown",
            "the server answered 200 with 0 items for one recipient",
        ),
    ],
)
def test_an_item_decides_the_outcome(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    fault: Fault,
    outcome: str,
    description: str,
) -> None:
    root = project(tmp_path, SIMPLE.format(extra=""), commbox=COMMBOX)
    point_at(monkeypatch, server.url, "t0ken")
    server.script(fault)
    assert apply(root) == 1
    (last,) = [e for e in events(root) if e["event"] == outcome]
    assert last["description"] == description
    assert "whatsapp_id" not in last


def test_a_past_schedule_is_refused_at_apply_and_only_warned_by_validate(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project(
        tmp_path, SIMPLE.format(extra='schedule: "2021-03-01T10:00:00+00:00"\n'), commbox=COMMBOX
    )
    assert main(["-C", str(root), "validate"]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: messages/main.yaml:7:11: schedule 2021-03-01T10:00:00+00:00 is already past"
        in err
    )
    assert main(["-C", str(root), "validate", "--strict"]) == 1
    capsys.readouterr()

    point_at(monkeypatch, server.url, "t0ken")
    assert main(["-C", str(root), "apply", "--auto-approve", "--json"]) == 1
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["outcome"] == "failed"
    assert result["description"].startswith(
        "the schedule 2021-03-01T10:00:00Z is already past, so nothing was sent"
    )
    assert server.received == []


def test_status_id_scheduled_is_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path,
        """\
        name: later
        channel: sms
        stream: sms
        user_stream_provider_id: "972544444444"
        status_id: scheduled
        message: hello
        """,
        commbox=COMMBOX,
    )
    assert main(["-C", str(root), "validate"]) == 0
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warning.startswith(
        "warning: messages/main.yaml:5:12: status_id: scheduled (9) does not schedule a send"
    )
    assert "api: v2 with schedule:" in warning


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        (
            SIMPLE.format(extra="").replace('"972544444444"', '["972544444444", "972522222222"]'),
            "messages/main.yaml:5:5: to: api: v2 sends a template to one recipient per request;"
            " for several recipients use for_each",
        ),
        (
            SIMPLE.format(extra='schedule: "2030-12-24T09:00:00"\n'),
            "messages/main.yaml:7:11: schedule: '2030-12-24T09:00:00' has no time zone, so the "
            "moment it names is not known; add one: 2030-12-24T09:00:00+02:00, or "
            "2030-12-24T09:00:00Z for UTC",
        ),
        (
            SIMPLE.format(extra="").replace("api: v2\n", "")
            + 'user_stream_provider_id: "972544444444"\nmessage: hi\n'
            + "template:\n  name: notice\n  header: {text: Hi}\n",
            None,  # written below: the template key above is replaced
        ),
        (
            'name: s\nchannel: sms\nstream: sms\napi: v2\nuser_stream_provider_id: "972544444444"'
            "\nmessage: hi\n",
            "messages/main.yaml:4:1: api: is for whatsapp messages only",
        ),
        (
            SIMPLE.format(extra="").replace("stream: wa", 'stream: "17566"'),
            "messages/main.yaml:4:9: stream: api: v2 needs the stream's encrypted id",
        ),
        (
            SIMPLE.format(extra="").replace("language: en}", "language: en, params: [1.10]}"),
            "messages/main.yaml:6:49: template.params[0]: 1.10 is read by YAML as 1.1; quote it",
        ),
    ],
    ids=[
        "two-recipients",
        "no-zone",
        "header-on-v1",
        "api-on-sms",
        "numeric-stream",
        "params-read-as-number",
    ],
)
def test_validation_errors_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], definition: str, error: str | None
) -> None:
    if error is None:  # a v1 message with a header
        definition = (
            'name: v1\nchannel: whatsapp\nstream: wa\nto: ["972544444444"]\n'
            'user_stream_provider_id: "972544444444"\nmessage: hi\n'
            "template:\n  name: notice\n  header: {text: Hi}\n"
        )
        error = "messages/main.yaml:9:3: template.header: needs `api: v2`"
    root = project(tmp_path, definition, commbox=COMMBOX)
    assert main(["-C", str(root), "validate"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"error: {error}")
    assert "Traceback" not in err


def test_an_unknown_v2_send_stays_unknown_with_its_reason(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project(tmp_path, SIMPLE.format(extra=""), commbox=COMMBOX)
    point_at(monkeypatch, server.url, "t0ken")
    server.script(Fault(drop=True))
    assert apply(root) == 1
    capsys.readouterr()
    main(["-C", str(root), "reconcile", "--json"])
    out = capsys.readouterr().out
    assert "cannot be read back from CommBox" in out
    assert [e["event"] for e in events(root)][-1] == "unknown"


def test_the_sandbox_answers_per_recipient_as_documented(
    http: urllib3.PoolManager,
) -> None:
    def item(to: str) -> dict[str, Any]:
        template = {"name": "t", "language": {"code": "en"}, "components": []}
        return {"template_data": {"to": to, "template": template}, "object_data": {}}

    with SandboxServer(whatsapp_invalid=("972522222222",)) as server:
        url = server.url + PATH
        headers = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}
        body = json.dumps({"data": [item("972544444444"), item("972522222222")]})
        reply = http.request("POST", url, body=body, headers=headers)
        assert reply.status == 206
        answer = reply.json()
        assert answer["description"] == "Provider returned failure"
        ok, bad = answer["data"]
        assert set(ok) == {"recipient", "id", "status", "object_id"}
        assert (ok["recipient"], ok["status"]) == ("972544444444", 200)
        assert bad == {
            "recipient": "972522222222",
            "status": 400,
            "failed": "invalid — Not a valid WhatsApp user",
        }
        assert [o.object_id for o in server.objects] == [ok["object_id"]]

        too_many = json.dumps({"data": [item("972544444444")] * 21})
        assert http.request("POST", url, body=too_many, headers=headers).status == 400
        unsigned = http.request(
            "POST", url, body=body, headers={"Content-Type": "application/json"}
        )
        assert unsigned.status == 401


def test_a_sensitive_code_is_sent_but_never_shown(
    tmp_path: Path,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    leak_guard: Any,
) -> None:
    code = "835201-kq"
    leak_guard.register(code)
    commbox = COMMBOX + "vars: [vars/common.yaml]\nsensitive: [code]\n"
    definition = SIMPLE.format(extra="").replace(
        "template: {name: notice, language: en}",
        "template:\n  name: auth_template\n  language: en\n"
        '  params: ["{{ code }}"]\n  buttons: [{url: "{{ code }}"}]',
    )
    root = project(tmp_path, definition, variables=f"code: '{code}'\n", commbox=commbox)
    assert main(["-C", str(root), "render", "notice", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["messages"][0]["request"]["body"]
    components = shown["data"][0]["template_data"]["template"]["components"]
    assert [c["parameters"][0]["text"] for c in components] == ["(sensitive)", "(sensitive)"]

    point_at(monkeypatch, server.url, "t0ken")
    assert apply(root) == 0
    capsys.readouterr()
    (received,) = server.received
    sent = received.body["data"][0]["template_data"]["template"]["components"]
    assert [c["parameters"][0]["text"] for c in sent] == [code, code]


def test_the_sandbox_command_takes_whatsapp_invalid(http: urllib3.PoolManager) -> None:
    template = {"name": "t", "language": {"code": "en"}, "components": []}
    invalid = ("--whatsapp-invalid", "+972 52-222-2222", "--whatsapp-invalid", "972533333333")
    with sandbox_command(http, *invalid) as (url, faults):
        replies = [
            http.request(
                "POST",
                url + PATH,
                body=json.dumps({"data": [{"template_data": {"to": to, "template": template}}]}),
                headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
            )
            for to in ("972522222222", "972533333333", "972544444444")
        ]
    assert faults == (
        "faults: v2 WhatsApp templates to +972 52-222-2222, 972533333333 answered 206 "
        "(not a WhatsApp user)"
    )
    assert [r.status for r in replies] == [206, 206, 200]
    assert "id" in replies[2].json()["data"][0]


# -- stray replies: a v2 request is for one recipient ---------------------------------------------

TWO = """\
name: notice
channel: whatsapp
api: v2
stream: wa
for_each: [["a", "972544444444"], ["b", "972533333333"]]
key: "{{ item[0] }}"
to: "{{ item[1] }}"
template: {name: notice, language: en}
"""


@pytest.mark.parametrize(
    "fault",
    [
        _answer({"recipient": "972599999999", "id": "wamid.OTHER", "status": 200}),
        _answer({"recipient": 972599999999, "status": 400, "failed": "not a WhatsApp user"}),
        Fault(
            status=206,
            body=json.dumps(
                {
                    "status": "206",
                    "description": "Provider returned failure",
                    "data": [{"recipient": "972599999999", "status": 400, "failed": "x"}],
                }
            ).encode(),
        ),
    ],
    ids=["sent-to-another", "failed-for-another", "206-for-another"],
)
def test_a_reply_about_another_recipient_is_unknown_never_sent_or_failed(
    tmp_path: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch, fault: Fault
) -> None:
    """A reply whose item names another recipient answers some other request (a stray copy on
    an out-of-step connection): it proves nothing of this one, neither sent nor failed."""
    root = project(tmp_path, SIMPLE.format(extra=""), commbox=COMMBOX)
    point_at(monkeypatch, server.url, "t0ken")
    server.script(fault)
    assert apply(root) == 1
    (last,) = [e for e in events(root) if e["event"] not in ("pending",)]
    assert last["event"] == "unknown"
    assert "for another recipient" in str(last["description"])
    assert "out of step" in str(last["description"])


def test_a_whatsapp_id_answered_twice_in_one_run_is_unknown_the_second_time(
    tmp_path: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, TWO, commbox=COMMBOX + "api:\n  concurrency: 1\n")
    point_at(monkeypatch, server.url, "t0ken")
    server.script(
        _answer({"recipient": "972544444444", "id": "wamid.SAME", "status": 200}),
        _answer({"id": "wamid.SAME", "status": 200}),
    )
    assert apply(root) == 1
    outcomes = {e["key"]: e for e in events(root) if e["event"] != "pending"}
    assert outcomes["notice[a]"]["event"] == "sent"
    assert outcomes["notice[a]"]["whatsapp_id"] == "wamid.SAME"
    assert outcomes["notice[b]"]["event"] == "unknown"
    assert "answered for notice[a] earlier in this run" in str(outcomes["notice[b]"]["description"])
