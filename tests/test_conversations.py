"""Conversations (`reply_to`): a message sent as a child in its parent's CommBox conversation.

Over real sockets against the sandbox, with real project files and ledgers, the CLI run
in-process as a CI job runs it: validation, the child request, the plan's `>` (wait), one apply
that sends replies right after their parent, reconcile through the parent's children.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import project
from tests.sending import apply, events, point_at
from tests.sending import states as key_states

TOKEN = "tok-conv-6d2e91b0"
FIXTURES = Path(__file__).parent / "commbox"
CHILD_ORDER = [
    "IsManager",
    "UserIdentity",
    "Type",
    "UserStreamProviderId",
    "UserStreamProviderType",
    "Message",
]

COMMBOX = """\
version: 1
api:
  concurrency: {concurrency}
  rate_per_s: 0
  timeout_s: 5
  max_attempts: 2
  max_retry_after_s: 1
  reconcile_after_s: 0
streams:
  sms: 5fd0c1
  email: b9910a75a46c492c9cf46a910cdba0012
vars: [vars/common.yaml]
"""

# A parent and two replies, written before and after it (a parent may come later in a file).
CONVERSATION = """\
name: ack
channel: sms
reply_to: open
manager_id: 36574658
message: "we are on it"
---
name: open
channel: sms
stream: sms
user_stream_provider_id: "+972 54-444-4444"
message: "incident opened"
---
name: fixed
channel: sms
reply_to: open
manager_id: 36574658
message: "fixed, sorry for the trouble"
"""

FAN = """\
name: open
channel: sms
stream: sms
for_each: incidents
user_stream_provider_id: "{{ item.phone }}"
key: "{{ item.id }}"
message: "incident {{ item.id }} opened"
---
name: update
channel: sms
for_each: incidents
key: "{{ item.id }}"
reply_to: "open[{{ item.id }}]"
manager_id: 36574658
message: "incident {{ item.id }}: on it"
"""

FAN_VARS = """\
incidents:
  - {id: 7, phone: "972500000007"}
  - {id: 8, phone: "972500000008"}
  - {id: 9, phone: "972500000009"}
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    point_at(monkeypatch, server.url, TOKEN)


def make(root: Path, messages: str = CONVERSATION, variables: str = "{}\n", **kw: Any) -> Path:
    return project(root, messages, variables, commbox=COMMBOX.format(concurrency=4, **kw))


def run(root: Path, *args: str) -> int:
    return main(["-C", str(root), *args])


def plan_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert run(root, "plan", "--json", *args) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def by_address(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["address"]: m for m in plan["messages"]}


def posts(server: SandboxServer) -> list[tuple[str, dict[str, Any], int | None]]:
    """(path, data, id made) of every POST the sandbox received, in order."""
    return [(r.path, r.data or {}, r.object_id) for r in server.received if r.method == "POST"]


# -- one apply ---------------------------------------------------------------------------------


def test_a_parent_and_two_replies_go_in_one_apply_right_after_the_parent(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    plan = by_address(plan_json(root, capsys))
    assert (plan["open"]["action"], plan["ack"]["action"], plan["fixed"]["action"]) == (
        "send", "wait", "wait",
    )  # fmt: skip

    assert apply(root) == 0
    out = capsys.readouterr().out
    assert "Apply complete: 3 sent, 0 failed, 0 unknown." in out
    (parent_path, _, parent_id), *replies = posts(server)
    assert parent_path == "/streams/5fd0c1/objects"
    # In plan order, after the parent's reply, each at the parent's object.
    assert [(path, data["Message"]) for path, data, _ in replies] == [
        (f"/streams/5fd0c1/objects/{parent_id}/child", "we are on it"),
        (f"/streams/5fd0c1/objects/{parent_id}/child", "fixed, sorry for the trouble"),
    ]
    data = replies[0][1]
    assert list(data) == CHILD_ORDER  # the key order of CommBox's example
    assert data == {
        "IsManager": True,
        "UserIdentity": 36574658,
        "Type": 4,
        "UserStreamProviderId": "972544444444",  # the parent's customer
        "UserStreamProviderType": 5,
        "Message": "we are on it",
    }
    # The sandbox keeps them under their object, and the ledger names the parent's key.
    assert [c.data["Message"] for c in server.children_of(parent_id)] == [
        "we are on it", "fixed, sorry for the trouble",
    ]  # fmt: skip
    reply_events = [e for e in events(root) if e["key"] in ("ack", "fixed")]
    assert reply_events
    assert all(e["parent"] == "open" for e in reply_events)
    assert not any("parent" in e for e in events(root) if e["key"] == "open")

    again = by_address(plan_json(root, capsys))
    assert {m["action"] for m in again.values()} == {"unchanged"}
    assert again["ack"]["parent"] == {"address": "open", "key": "open", "object_id": parent_id}
    assert again["ack"]["request"]["path"] == f"/streams/5fd0c1/objects/{parent_id}/child"


def test_for_each_replies_go_to_their_own_for_each_parents(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, FAN, FAN_VARS)
    assert apply(root) == 0
    parents = {data["Message"]: made for path, data, made in posts(server) if "child" not in path}
    for n in (7, 8, 9):
        (child,) = server.children_of(parents[f"incident {n} opened"])
        assert child.data["Message"] == f"incident {n}: on it"
        assert child.data["UserStreamProviderId"] == f"97250000000{n}"
    sent = key_states(root)
    assert all(sent[f"update[{n}]"].status is KeyStatus.SENT for n in (7, 8, 9))


def test_a_reply_whose_parent_is_sent_already_is_planned_as_any_message(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, CONVERSATION.split("---\n", 1)[1])  # open and fixed only
    assert apply(root, "--target", "open") == 0
    parent_id = key_states(root)["open"].object_id
    plan = by_address(plan_json(root, capsys))
    assert plan["fixed"]["action"] == "send"
    assert plan["fixed"]["parent"]["object_id"] == parent_id
    # Targeted alone, a reply still finds its parent's object id in the ledger.
    alone = by_address(plan_json(root, capsys, "--target", "fixed"))
    assert list(alone) == ["fixed"]
    assert (alone["fixed"]["action"], alone["fixed"]["parent"]["object_id"]) == ("send", parent_id)
    capsys.readouterr()
    assert run(root, "plan") == 0
    assert f"reply to open (object {parent_id})" in capsys.readouterr().out
    assert apply(root) == 0
    assert posts(server)[-1][0] == f"/streams/5fd0c1/objects/{parent_id}/child"
    # Pointed at another message now: a change, held like any other.
    (root / "messages" / "main.yaml").write_text(
        CONVERSATION.split("---\n", 1)[1]
        + '---\nname: other\nchannel: sms\nstream: sms\nuser_stream_provider_id: "1234567"\n'
        "message: other\n"
    )
    text = (
        (root / "messages" / "main.yaml")
        .read_text()
        .replace(
            'reply_to: open\nmanager_id: 36574658\nmessage: "fixed',
            'reply_to: other\nmanager_id: 36574658\nmessage: "fixed',
        )
    )
    (root / "messages" / "main.yaml").write_text(text)
    plan = by_address(plan_json(root, capsys))
    assert plan["fixed"]["action"] == "changed"
    assert "parent" in plan["fixed"]["changed_fields"]


# -- a parent not sent -------------------------------------------------------------------------


def test_a_reply_is_held_while_its_parent_is_unknown_and_sent_once_reconcile_settles_it(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    server.script(Fault(drop=True, store=True))  # the parent is stored, its reply lost
    assert apply(root) == 1
    out = capsys.readouterr().out
    assert "held (their parent was not sent)" in out
    assert "held     ack  its parent open was not sent (unknown): it waits ('>')" in out
    assert len(posts(server)) == 1  # no reply went out
    assert not [e for e in events(root) if e["key"] != "open"]  # and none is in the ledger

    plan = by_address(plan_json(root, capsys))
    assert plan["open"]["action"] == "unknown"
    assert plan["ack"]["action"] == "wait"
    assert plan["ack"]["parent"] == {"address": "open", "key": "open", "object_id": None}
    capsys.readouterr()
    assert run(root, "plan") == 0
    assert "held: waiting for its parent open (key open) to be sent" in capsys.readouterr().out

    assert run(root, "reconcile") == 0
    parent_id = server.objects[0].object_id
    assert key_states(root)["open"].object_id == parent_id
    plan = by_address(plan_json(root, capsys))
    assert (plan["open"]["action"], plan["ack"]["action"]) == ("unchanged", "send")
    assert apply(root) == 0
    assert [p for p, _, _ in posts(server)[1:]] == [
        f"/streams/5fd0c1/objects/{parent_id}/child"
    ] * 2


def test_a_parent_that_failed_leaves_its_replies_held_and_the_next_apply_sends_all(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    server.script(Fault(status=400, description="Bad Request"))
    assert apply(root, "--json") == 1
    results = {r["key"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert results["open"]["outcome"] == "failed"
    assert results["ack"]["outcome"] == results["fixed"]["outcome"] == "held"
    assert "its parent open was not sent (failed)" in results["ack"]["description"]
    assert apply(root) == 0
    assert [p.endswith("/child") for p, _, _ in posts(server)] == [False, False, True, True]


# -- reconcile through the parent --------------------------------------------------------------


def test_an_unknown_reply_is_reconciled_through_its_parents_children(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    # The parent is sent; the first reply is stored but its answer lost; the second reply is
    # lost before the sandbox kept it.
    server.script(Fault(), Fault(drop=True, store=True), Fault(drop=True))
    assert apply(root) == 1
    parent_id = key_states(root)["open"].object_id
    (stored,) = server.children_of(parent_id)
    assert key_states(root)["ack"].status is KeyStatus.UNKNOWN
    assert key_states(root)["fixed"].status is KeyStatus.UNKNOWN

    capsys.readouterr()
    assert run(root, "reconcile", "--json") == 0
    found = {r["key"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert (found["ack"]["result"], found["ack"]["object_id"]) == ("sent", stored.child_id)
    assert found["fixed"]["result"] == "absent"
    reconciled = [e for e in events(root) if e["event"] == "reconciled"]
    assert sorted((e["key"], e["parent"]) for e in reconciled) == [
        ("ack", "open"),
        ("fixed", "open"),
    ]
    reads = [r.path for r in server.received if r.method == "GET"]
    assert f"/streams/5fd0c1/objects/{parent_id}?includeChilds=true" in reads
    plan = by_address(plan_json(root, capsys))
    assert (plan["ack"]["action"], plan["fixed"]["action"]) == ("unchanged", "send")
    assert apply(root) == 0
    assert [c.data["Message"] for c in server.children_of(parent_id)] == [
        "we are on it", "fixed, sorry for the trouble",
    ]  # fmt: skip


def test_a_reply_whose_text_was_stored_otherwise_stays_held(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, CONVERSATION.rsplit("---\n", 1)[0])  # ack and open
    server.script(Fault(), Fault(drop=True, store=True))
    assert apply(root) == 1
    (root / "messages" / "main.yaml").write_text(
        (root / "messages" / "main.yaml").read_text().replace("we are on it", "we are ON it")
    )
    capsys.readouterr()
    assert run(root, "reconcile", "--json", "ack") == 0
    (finding,) = json.loads(capsys.readouterr().out)["results"]
    assert finding["result"] == "unknown"  # the definition changed: nothing to compare
    assert key_states(root)["ack"].status is KeyStatus.UNKNOWN


# -- the plan, its file, render ----------------------------------------------------------------


def test_the_plan_shows_wait_in_text_markdown_and_json_and_a_plan_file_sends_it(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    capsys.readouterr()
    assert run(root, "plan") == 0
    text = capsys.readouterr().out
    assert "  > ack " in text
    assert "  > fixed " in text
    assert "next: goes right after its parent open in this apply" in text
    assert "Plan: 1 to send, 0 unchanged, 0 changed (held), 0 unknown, 2 waiting" in text
    assert run(root, "plan", "--format", "markdown") == 0
    markdown = capsys.readouterr().out
    assert "#### `>` ack" in markdown
    assert "| reply to | open (not sent yet) |" in markdown
    plan = plan_json(root, capsys)
    assert plan["summary"]["wait"] == 2
    ack = by_address(plan)["ack"]
    assert ack["request"]["path"] == "/streams/5fd0c1/objects/{OBJECT_ID of open}/child"

    assert run(root, "plan", "-out", "conv.plan") == 0
    saved = json.loads((root / "conv.plan").read_text())
    assert [m["action"] for m in saved["messages"]] == ["wait", "send", "wait"]
    assert run(root, "apply", "conv.plan") == 0
    assert [p.endswith("/child") for p, _, _ in posts(server)] == [False, True, True]


def test_a_plan_file_is_stale_when_a_reply_appears_after_it(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, CONVERSATION.split("---\n", 1)[1].rsplit("---\n", 1)[0])  # open
    assert run(root, "plan", "-out", "conv.plan") == 0
    (root / "messages" / "main.yaml").write_text(CONVERSATION)
    capsys.readouterr()
    assert run(root, "apply", "conv.plan") == 1
    err = capsys.readouterr().err
    assert "stale" in err
    assert "ack: new since the plan was made" in err
    assert posts(server) == []


def test_a_compact_plan_shows_each_waiting_reply_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incidents = "".join(f'  - {{id: {n}, phone: "9725000{n:05d}"}}\n' for n in range(30))
    root = make(tmp_path, FAN, "incidents:\n" + incidents)
    capsys.readouterr()
    assert run(root, "plan") == 0
    out = capsys.readouterr().out
    assert "Compact: 60 messages" in out
    assert "update  sms  30 messages: 30 waiting for their parent" in out
    assert out.count("next: goes right after its parent open[") == 30


def test_render_shows_the_child_request_with_its_parents_id_or_a_placeholder(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    capsys.readouterr()
    assert run(root, "render", "ack") == 0
    out = capsys.readouterr().out
    assert "POST /streams/5fd0c1/objects/{OBJECT_ID of open}/child" in out
    assert apply(root, "--target", "open") == 0
    parent_id = key_states(root)["open"].object_id
    capsys.readouterr()
    assert run(root, "render", "ack", "--json") == 0
    (shown,) = json.loads(capsys.readouterr().out)["messages"]
    assert shown["request"]["path"] == f"/streams/5fd0c1/objects/{parent_id}/child"
    assert list(shown["request"]["body"]["data"]) == CHILD_ORDER


# -- validation --------------------------------------------------------------------------------

PARENTS = """\
name: open
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: hi
---
name: mail
channel: email
stream: email
user_stream_provider_id: a@b.example
subject: s
to: [a@b.example]
message: hi
---
"""


FE = """\
name: fe
channel: sms
stream: sms
id: fe-v1
for_each: [1, 2]
user_stream_provider_id: "972544444444"
message: hi
---
"""


@pytest.mark.parametrize(
    ("reply", "where", "text"),
    [
        (
            "name: r\nchannel: sms\nreply_to: opne\nmanager_id: 1\nmessage: x\n",
            "17:11",
            "no message has the address 'opne' (did you mean 'open'?)",
        ),
        (
            "name: r\nchannel: sms\nreply_to: r\nmanager_id: 1\nmessage: x\n",
            "17:11",
            "a message cannot reply to itself",
        ),
        (
            "name: r\nchannel: sms\nreply_to: q\nmanager_id: 1\nmessage: x\n---\n"
            "name: q\nchannel: sms\nreply_to: r\nmanager_id: 1\nmessage: x\n",
            "17:11",
            "reply_to makes a cycle: r -> q -> r",
        ),
        (
            "name: r\nchannel: sms\nreply_to: mail\nmanager_id: 1\nmessage: x\n",
            "17:11",
            "'mail' is an email message; a sms message cannot reply in its conversation",
        ),
        (
            "name: r\nchannel: email\nreply_to: mail\nmanager_id: 1\nto: [c@d.example]\n"
            "message: x\n",
            "19:1",
            "to: not allowed in a reply (reply_to): the conversation has its recipients",
        ),
        (
            'name: r\nchannel: sms\nstream: "999"\nreply_to: open\nmanager_id: 1\nmessage: x\n',
            "17:9",
            "stream: a reply is sent in its parent's stream (open is in 'sms')",
        ),
        (
            "name: r\nchannel: sms\nreply_to: open\nmessage: x\n",
            "17:11",
            "a reply needs 'manager_id'",
        ),
        (
            "name: r\nchannel: email\nreply_to: mail\nmanager_id: 1\nsubject: Re\nmessage: x\n",
            "19:1",
            "subject: not allowed in a reply (reply_to)",
        ),
        (
            "name: r\nchannel: sms\nreply_to: q\nmanager_id: 1\nmessage: x\n---\n"
            "name: q\nchannel: sms\nreply_to: open\nmanager_id: 1\nmessage: x\n",
            "17:11",
            "'q' is itself a reply (to 'open'); reply to the conversation's first message",
        ),
        (
            FE + "name: r\nchannel: sms\nreply_to: fe\nmanager_id: 1\nmessage: x\n",
            "25:11",
            "'fe' has a for_each: name one of its messages, e.g. 'fe[1]'",
        ),
        (
            FE + "name: r\nchannel: sms\nreply_to: fe-v1[2]\nmanager_id: 1\nmessage: x\n",
            "25:11",
            "'fe-v1[2]' is the ledger key of 'fe[2]'; reply_to takes a message's address",
        ),
        (
            "name: r\nchannel: sms\nreply_to: open\nmanager_id: 1\nuser_identity: 5\nmessage: x\n",
            "19:1",
            "user_identity: not allowed in a reply (reply_to): a reply's UserIdentity is its agent",
        ),
    ],
    ids=[
        "missing",
        "self",
        "cycle",
        "channel",
        "to",
        "stream",
        "manager",
        "subject",
        "chain",
        "for_each",
        "key",
        "user_identity",
    ],
)
def test_a_wrong_reply_is_one_line_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reply: str, where: str, text: str
) -> None:
    root = make(tmp_path, PARENTS + reply)
    capsys.readouterr()
    assert run(root, "validate") == 1
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors, lines
    assert errors[0].startswith(f"error: messages/main.yaml:{where}: "), errors
    assert text in errors[0], errors
    assert "Traceback" not in "\n".join(lines)


def test_a_sensitive_value_in_reply_to_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commbox = COMMBOX.format(concurrency=1) + "sensitive: [who]\n"
    root = project(
        tmp_path,
        PARENTS + 'name: r\nchannel: sms\nreply_to: "{{ who }}"\nmanager_id: 1\nmessage: x\n',
        "who: zz-secret\n",
        commbox=commbox,
    )
    capsys.readouterr()
    assert run(root, "validate") == 1
    err = capsys.readouterr().err
    assert "messages/main.yaml:17:11: reply_to: the sensitive variable 'who'" in err
    assert "zz-secret" not in err


# -- the sandbox, as CommBox documents the endpoint --------------------------------------------

CHILD = json.loads((FIXTURES / "create-child-object.json").read_text("utf-8"))


def _create(http: urllib3.PoolManager, server: SandboxServer, stream: str = "532") -> int:
    answer = http.request(
        "POST",
        f"{server.url}/streams/{stream}/objects",
        body=json.dumps({"data": {"Message": "first", "UserStreamProviderId": "x@y.example"}}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status == 200, answer.data
    return int(json.loads(answer.data)["data"]["id"])


def _child(
    http: urllib3.PoolManager, server: SandboxServer, object_id: Any, body: Any, **kw: Any
) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    headers.update(kw.pop("headers", {}))
    return http.request(
        "POST",
        f"{server.url}/streams/{kw.pop('stream', '532')}/objects/{object_id}/child",
        body=json.dumps(body).encode(),
        headers=headers,
    )


@pytest.mark.parametrize("name", sorted(CHILD["examples"]))
def test_the_sandbox_accepts_every_documented_child_example(
    server: SandboxServer, http: urllib3.PoolManager, name: str
) -> None:
    object_id = _create(http, server)
    answer = _child(http, server, object_id, CHILD["examples"][name])
    assert answer.status == 200, answer.data
    reply = json.loads(answer.data)
    assert set(reply) == set(CHILD["reply"]["properties"])
    assert (reply["status"], reply["description"]) == ("200", "OK")
    assert isinstance(reply["data"]["id"], int)
    assert reply["data"]["id"] != object_id
    (kept,) = server.children_of(object_id)
    assert kept.data == CHILD["examples"][name]["data"]


def test_the_sandbox_refuses_a_child_as_commbox_would(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    object_id = _create(http, server)
    example = CHILD["examples"]["On behalf of Agent - Sending an email"]
    no_agent = {"data": {k: v for k, v in example["data"].items() if k != "UserIdentity"}}
    statuses = [
        _child(http, server, object_id, example, headers={"Authorization": "Bearer"}).status,
        _child(http, server, object_id + 1, example).status,
        _child(http, server, object_id, example, stream="533").status,
        _child(http, server, object_id, no_agent).status,
        _child(http, server, object_id, {"data": {"Type": 4}}).status,
    ]
    assert statuses == [401, 404, 404, 400, 400]
    assert set(statuses) <= set(CHILD["documented_statuses"])
    assert server.children_of(object_id) == []


def test_get_object_lists_the_children_only_with_include_childs(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    object_id = _create(http, server)
    for text in ("one", "two"):
        body = {"data": {**CHILD["examples"]["On behalf of Customer"]["data"], "Message": text}}
        assert _child(http, server, object_id, body).status == 200
    url = f"{server.url}/streams/532/objects/{object_id}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    whole = json.loads(
        http.request("GET", url, fields={"includeChilds": "true"}, headers=auth).data
    )
    plain = json.loads(http.request("GET", url, headers=auth).data)
    childs = whole["data"][0]["user"]["childs"]
    assert [c["message"] for c in childs] == ["two", "one", "first"]  # the last at the top
    assert all(c["object_id"] == object_id for c in childs)
    (last,) = plain["data"][0]["user"]["childs"]  # without includeChilds: the last message
    assert last["message"] == "two"


def test_a_test_send_skips_a_reply_with_the_reason(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    capsys.readouterr()
    assert apply(root, "--test-to", "+972 54-111-1111") == 0
    out = capsys.readouterr().out
    assert "skipped: a reply goes to its parent's conversation" in out
    assert [(p, d["UserStreamProviderId"]) for p, d, _ in posts(server)] == [
        ("/streams/5fd0c1/objects", "972541111111")
    ]
    assert "open" not in key_states(root)  # a test send never marks the real key


def test_new_replies_to_a_sent_parent_go_one_after_another_in_plan_order(
    tmp_path: Path, server: SandboxServer, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    opening = CONVERSATION.split("---\n")[1]
    root = make(tmp_path, opening)
    assert apply(root) == 0
    replies = "".join(
        f"---\nname: r{n}\nchannel: sms\nreply_to: open\nmanager_id: 1\nmessage: reply {n}\n"
        for n in range(1, 6)
    )
    (root / "messages" / "main.yaml").write_text(opening + replies)
    server.script(Fault(delay_s=0.3))  # the first reply is slow: none may overtake it
    assert apply(root) == 0  # four workers
    assert [data["Message"] for _, data, _ in posts(server)[1:]] == [
        f"reply {n}" for n in range(1, 6)
    ]


# -- a WhatsApp v2 template as the parent -------------------------------------------------------

V2_PARENT = """\
name: notice
channel: whatsapp
api: v2
stream: wa2
to: "+972 54-444-4444"
template: {{name: maintenance_window, language: en}}
{message}---
name: follow
channel: whatsapp
reply_to: notice
manager_id: 36574658
message: "reminder: maintenance tonight"
"""


def _v2_project(root: Path, message: str) -> Path:
    commbox = COMMBOX.format(concurrency=4).replace(
        "streams:\n", "streams:\n  wa2: hNyRN_fLUy7rrOrN9jLpipA==\n"
    )
    return project(root, V2_PARENT.format(message=message), "{}\n", commbox=commbox)


def test_a_v2_template_without_a_message_opens_no_conversation_to_reply_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _v2_project(tmp_path, "")
    capsys.readouterr()
    assert run(root, "validate") == 1
    err = capsys.readouterr().err
    assert "reply_to: 'notice' is a WhatsApp v2 template without Create Object fields" in err
    assert "give it a 'message'" in err


def test_a_reply_to_a_v2_template_goes_to_the_object_its_object_data_opened(
    tmp_path: Path, env: None, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _v2_project(tmp_path, 'message: "maintenance tonight"\n')
    assert apply(root) == 0
    v2, child = [r for r in server.received if r.method == "POST"]
    assert v2.path.startswith("/v2/whatsapp/sendtemplatedmessage/")
    (opened,) = [i for i in v2.body["data"] if "object_data" in i]
    object_id = key_states(root)["notice"].object_id
    assert object_id is not None
    assert child.path == f"/streams/hNyRN_fLUy7rrOrN9jLpipA%3D%3D/objects/{object_id}/child"
    # The customer is the template's recipient, as CommBox's object has it.
    assert child.data is not None
    assert child.data["UserStreamProviderId"] == "972544444444"
    assert opened["object_data"]["UserStreamProviderId"] == "972544444444"


def test_the_preview_shows_a_reply_in_its_parents_conversation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path)
    site = tmp_path / "site"
    assert run(root, "preview", "--out", str(site)) == 0
    (page,) = (site / "messages").glob("ack-*.html")
    text = page.read_text("utf-8")
    assert "<dt>In reply to</dt><dd>open (in its conversation)</dd>" in text
    assert "<dt>To</dt><dd>972544444444</dd>" in text
    assert "<dt>Agent (UserIdentity)</dt><dd>36574658</dd>" in text
