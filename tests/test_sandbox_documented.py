"""The sandbox against CommBox's documented examples: no stricter, no kinder.

tests/commbox/*.json hold the request examples and the 200 replies of the endpoints the sandbox
serves, as CommBox's OpenAPI description (`Commbox.json` 2.07) documents them (see
tests/commbox/README.md). Every documented request is accepted (as JSON and form-urlencoded);
every reply the sandbox gives has the documented keys, recursively, with the documented types;
every status it answers is one the endpoint documents; and reconcile reads every shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus, Ledger
from commbox_yaml.readback import Item
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import write
from tests.sending import apply, delivered, ledger_path

HERE = Path(__file__).parent
FIXTURES = HERE / "commbox"
TOKEN = "tok-documented-41c7"
STREAMS = ("532", "hNyRN_fLUy7rrOrN9jLpipA==")  # a stream's number, and an encrypted id


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text("utf-8"))  # type: ignore[no-any-return]


REQUESTS = fixture("create-object.requests.json")["examples"]
# The Create Object page's examples too (tests/reference: what commbox-yaml itself sends).
PAGE_EXAMPLES = {
    f"page:{p.stem}": json.loads(p.read_text("utf-8"))
    for p in sorted((HERE / "reference" / "bodies").glob("*.json"))
}
for _body in PAGE_EXAMPLES.values():  # an upload's example is its form's `data` field: JSON text
    if isinstance(_body["data"], str):
        _body["data"] = json.loads(_body["data"])
ALL_REQUESTS = {**REQUESTS, **PAGE_EXAMPLES}
CREATE = fixture("create-object.reply.json")
LIST = fixture("get-stream-objects.reply.json")
ONE = fixture("get-object.reply.json")

# -- the documented shape, recursively --------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
# The documented examples write a missing value as null or "null" (`closedTime: "null,"`).
_NULL_EXAMPLES = (None, "null", "null,")
# A customer may have no unique id or phone: CommBox cannot fill what it was never given.
_MAY_BE_NULL = frozenset({"uniqueId", "phone1", "phone2"})
# The list documents `uniqueId` as a number, but the User it comes from documents "an email, social
# security number or any other type of unique string": one that is not a number stays text.
_MAY_BE_TEXT = frozenset({"uniqueId"})


def shape_problems(got: Any, example: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """How `got` differs from the documented shape: the example's keys, exactly, at every level;
    each value of the schema's declared type or of the example's (the two disagree at times:
    `"type": "string", "example": 200`)."""
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        if not isinstance(got, dict):
            return [f"{where}: an object is documented, got {type(got).__name__}"]
        problems = [f"{where}: {k!r} is not documented" for k in sorted(got.keys() - example)]
        problems += [f"{where}: {k!r} is missing" for k in sorted(example.keys() - got)]
        for name in example.keys() & got.keys():
            sub = schema["properties"][name]
            problems += shape_problems(got[name], example[name], sub, f"{where}.{name}")
        return problems
    if kind == "array":
        if not isinstance(got, list):
            return [f"{where}: an array is documented, got {type(got).__name__}"]
        items = schema["items"]
        shapes = list(zip(items.get("oneOf", [items]), example, strict=True))
        problems = []
        for n, value in enumerate(got):
            found = [shape_problems(value, e, s, f"{where}[{n}]") for s, e in shapes]
            if all(found):
                problems += min(found, key=len)
        return problems
    if got is None:
        name = where.rsplit(".", 1)[-1]
        if example in _NULL_EXAMPLES or name in _MAY_BE_NULL:
            return []
        return [f"{where}: null, where {example!r} is documented"]
    allowed = (*_TYPES.get(str(kind), ()), type(example))
    if where.rsplit(".", 1)[-1] in _MAY_BE_TEXT:
        allowed += (str,)
    if type(got) not in allowed:
        return [f"{where}: {type(got).__name__} {got!r}, where {kind} ({example!r}) is documented"]
    return []


def which_shape(item: dict[str, Any]) -> int:
    """Which of the list's documented item shapes (0 or 1) the item has, or -1: neither."""
    items = LIST["schema"]["properties"]["data"]["items"]["oneOf"]
    for n, (schema, example) in enumerate(zip(items, LIST["example"]["data"], strict=True)):
        if not shape_problems(item, example, schema):
            return n
    return -1


# -- over real sockets ------------------------------------------------------------------------


def objects_url(server: SandboxServer, stream: str, suffix: str = "") -> str:
    return f"{server.url}/streams/{stream.replace('=', '%3D')}/objects{suffix}"


def post_json(
    http: urllib3.PoolManager, server: SandboxServer, body: Any, stream: str = STREAMS[0]
) -> Any:
    return http.request(
        "POST",
        objects_url(server, stream),
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )


def get(http: urllib3.PoolManager, server: SandboxServer, stream: str, suffix: str = "") -> Any:
    fields = {"unixStartTime": 0, "unixEndTime": 2**31} if not suffix else None
    if suffix.endswith("?includeChilds=true"):
        suffix, fields = suffix.split("?")[0], {"includeChilds": "true"}
    return http.request(
        "GET",
        objects_url(server, stream, suffix),
        fields=fields,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


@pytest.mark.parametrize("name", sorted(ALL_REQUESTS))
def test_every_documented_request_example_is_accepted(
    server: SandboxServer, http: urllib3.PoolManager, name: str
) -> None:
    body = ALL_REQUESTS[name]
    as_json = post_json(http, server, body)
    as_form = http.request(
        "POST",
        objects_url(server, STREAMS[1]),
        fields={"data": json.dumps(body["data"])},
        encode_multipart=False,  # application/x-www-form-urlencoded, as the OpenAPI lists
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert as_json.status == 200, as_json.data
    assert as_form.status == 200, as_form.data
    assert server.received[1].headers["content-type"] == "application/x-www-form-urlencoded"
    assert server.received[0].data == server.received[1].data == body["data"]
    for reply in (as_json, as_form):
        assert shape_problems(reply.json(), CREATE["example"], CREATE["schema"]) == []


def test_only_message_is_required_and_content_may_be_a_json_string(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    bare = post_json(http, server, {"data": {"Message": "just a message"}})
    content = {"subject": "s", "to": [{"address": "john.doe@gmail.com"}]}
    # The schema types Content as a "JSON string"; the examples give an object.
    mail = {**REQUESTS["Mail"]["data"], "Content": json.dumps(content)}
    as_text = post_json(http, server, {"data": mail})
    no_message = post_json(http, server, {"data": {"UserStreamProviderId": "972544444444"}})
    assert bare.status == 200, bare.data
    assert as_text.status == 200, as_text.data
    assert no_message.status == 400
    assert no_message.json()["description"] == "Message is required"
    [_, stored] = server.objects
    [listed] = [i for i in get(http, server, STREAMS[0]).json()["data"] if which_shape(i) == 1]
    assert json.loads(listed["content"]) == content  # content stays a JSON string in replies
    assert stored.data["Content"] == json.dumps(content)


@pytest.mark.parametrize("stream", STREAMS)
def test_listed_objects_have_the_documented_shapes_both_of_them(
    server: SandboxServer, http: urllib3.PoolManager, stream: str
) -> None:
    for body in ALL_REQUESTS.values():
        assert post_json(http, server, body, stream).status == 200
    reply = get(http, server, stream)
    assert reply.status == 200
    assert shape_problems(reply.json(), LIST["example"], LIST["schema"]) == []
    items = reply.json()["data"]
    assert len(items) == len(ALL_REQUESTS)
    shapes = [which_shape(i) for i in items]
    assert sorted(set(shapes)) == [0, 1]  # both documented shapes, as CommBox may answer
    numbers = {i.get("streamId", i.get("streamid")) for i in items}
    assert len(numbers) == 1
    assert isinstance(numbers.pop(), int)  # a number, never the encrypted id
    first = next(i for i in items if which_shape(i) == 0)
    assert {"uniqueId", "phone1", "email"} <= first["user"].keys()  # camelCase `user` keys
    assert not {"UniqueId", "Phone1"} & first["user"].keys()


@pytest.mark.parametrize("shapes", ["first", "second"])
def test_one_shape_can_be_chosen(http: urllib3.PoolManager, shapes: str) -> None:
    with SandboxServer(list_shapes=shapes) as server:
        for body in REQUESTS.values():
            assert post_json(http, server, body).status == 200
        items = get(http, server, STREAMS[0]).json()["data"]
    assert {which_shape(i) for i in items} == {0 if shapes == "first" else 1}


@pytest.mark.parametrize("children", [False, True])
def test_one_object_has_the_documented_shape(
    server: SandboxServer, http: urllib3.PoolManager, children: bool
) -> None:
    for body in ALL_REQUESTS.values():
        object_id = post_json(http, server, body, STREAMS[1]).json()["data"]["id"]
        suffix = f"/{object_id}" + ("?includeChilds=true" if children else "")
        reply = get(http, server, STREAMS[1], suffix)
        assert reply.status == 200
        assert shape_problems(reply.json(), ONE["example"], ONE["schema"]) == []
        [item] = reply.json()["data"]
        assert item["objectId"] == object_id
        assert len(item["user"]["childs"]) == 1  # its own message: the last one, and the only


def test_every_status_answered_is_a_documented_one(http: urllib3.PoolManager) -> None:
    with SandboxServer(token=TOKEN) as server, SandboxServer(refuse_reads=True) as refusing:
        server.script(Fault(status=429), Fault(status=500))
        statuses = {
            "create": [
                post_json(http, server, REQUESTS["SMS"]).status,  # 429
                post_json(http, server, REQUESTS["SMS"]).status,  # 500
                post_json(http, server, {"data": {}}).status,
                http.request("POST", objects_url(server, "532"), body=b"{}").status,  # no token
                http.request("PUT", objects_url(server, "532")).status,
            ],
            "list": [
                http.request("GET", objects_url(server, "532")).status,
                get(http, refusing, "532").status,
                http.request("PATCH", objects_url(server, "532", "/1")).status,
            ],
            "one": [get(http, server, "532", "/1").status, get(http, refusing, "532", "/1").status],
        }
    assert statuses == {
        "create": [429, 500, 400, 401, 501],
        "list": [401, 401, 501],
        "one": [404, 401],
    }
    assert set(statuses["create"]) <= set(CREATE["documented_statuses"])
    assert set(statuses["list"][:2]) <= set(LIST["documented_statuses"])
    assert set(statuses["list"][2:] + statuses["one"]) <= set(ONE["documented_statuses"])


def test_the_checker_tells_a_drifted_reply_from_a_documented_one() -> None:
    """The old sandbox's spelling: streamId the encrypted id, `user` keys as sent."""
    good = LIST["example"]["data"][0]
    drifted = {**good, "streamId": STREAMS[1], "user": {"UniqueId": "01234567"}}
    assert shape_problems(LIST["example"], LIST["example"], LIST["schema"]) == []
    problems = shape_problems(
        {**LIST["example"], "data": [drifted]}, LIST["example"], LIST["schema"]
    )
    wrong_type = "str 'hNyRN_fLUy7rrOrN9jLpipA==', where integer (345) is documented"
    assert f"$.data[0].streamId: {wrong_type}" in problems
    assert "$.data[0].user: 'UniqueId' is not documented" in problems
    assert "$.data[0].user: 'uniqueId' is missing" in problems


# -- reconcile reads what CommBox documents ---------------------------------------------------


def test_reconcile_reads_both_documented_item_shapes() -> None:
    first, second = (Item.of(item) for item in LIST["example"]["data"])
    assert (first.object_id, first.customer, first.type) == ("62824402", "johndoe@gmail.com", "5")
    assert (second.object_id, second.customer, second.type) == ("234", "eddiesmith@gmail.com", "0")
    assert second.message == "New status from facebook, Hello world!"
    assert first.created is not None
    assert second.created is not None
    [one] = (Item.of(item) for item in ONE["example"]["data"])
    assert (one.object_id, one.customer, one.type) == ("293854", "972505555555_by", "4")


PROJECT = {
    "commbox.yaml": """\
version: 1
api:
  concurrency: 1
  rate_per_s: 0
  max_attempts: 1
  reconcile_after_s: 0
streams:
  sms: "532"
vars: [vars/people.yaml]
""",
    "messages/notice.yaml": """\
name: notice
channel: sms
stream: sms
id: notice-1
for_each: people
user_stream_provider_id: "{{ item }}"
message: "notice 1\\nfor {{ item }} & co"
""",
    "vars/people.yaml": "people: ['972500000001', '972500000002']\n",
}


def _project(root: Path) -> Path:
    return write(root, PROJECT)


@pytest.mark.parametrize("shapes", ["first", "second", "both"])
def test_reconcile_finds_objects_listed_in_either_shape(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shapes: str,
) -> None:
    root = _project(tmp_path)
    with SandboxServer(list_shapes=shapes) as server:
        monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
        monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
        server.script(Fault(status=500, store=True), Fault(drop=True, store=True))
        assert apply(root) == 1
        capsys.readouterr()
        assert main(["-C", str(root), "reconcile", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        ids = sorted(o.object_id for o in server.objects)
        assert sorted(r["object_id"] for r in report["results"]) == ids
        assert {r["result"] for r in report["results"]} == {"sent"}
        assert apply(root) == 0
        assert max(delivered(server).values()) == 1


def test_a_text_stored_as_html_holds_the_key_never_absent(
    tmp_path: Path,
    http: urllib3.PoolManager,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(tmp_path)
    with SandboxServer(stored_text="html") as server:
        monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
        monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
        server.script(Fault(status=500, store=True))
        assert apply(root) == 1
        [listed] = [
            i for i in get(http, server, "532").json()["data"] if "972500000001" in i["message"]
        ]
        assert listed["message"] == (
            '<div style="direction: ltr">notice 1<br>for 972500000001 &amp; co</div>'
        )
        capsys.readouterr()
        assert main(["-C", str(root), "reconcile", "--json"]) == 0
        [result] = json.loads(capsys.readouterr().out)["results"]
        assert result["result"] == "unknown"
        assert "CommBox may have stored the message altered" in result["reason"]
        assert apply(root) == 0
        assert len(server.objects) == 2  # the held one was not sent again
    state = Ledger(ledger_path(root), "ledger.jsonl").read().states["notice-1[972500000001]"]
    assert state.status is KeyStatus.UNKNOWN
