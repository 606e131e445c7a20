"""The sandbox's read endpoints and its store-then-fail faults, over real sockets."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

from commbox_yaml.sandbox import FIRST_ID, Fault, SandboxServer
from tests.sending import sandbox_command

TOKEN = "sandbox-read-token"
STREAM = "hNyRN_fLUy7rrOrN9jLpipA=="


def data(n: int, customer: str = "972544444444", **extra: Any) -> dict[str, Any]:
    return {
        "Type": 4,
        "StatusId": 1,
        "StreamProviderType": 5,
        "UserStreamProviderId": customer,
        "UserStreamProviderType": 5,
        "Content": {"to": ["972544444444"]},
        "Message": f"message {n}",
        **extra,
    }


def post(http: urllib3.PoolManager, server: SandboxServer, body: dict[str, Any]) -> Any:
    return http.request(
        "POST",
        f"{server.url}/streams/{STREAM.replace('=', '%3D')}/objects",
        body=json.dumps({"data": body}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )


def get(
    http: urllib3.PoolManager,
    server: SandboxServer,
    suffix: str = "",
    token: str | None = TOKEN,
    **query: Any,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{server.url}/streams/{STREAM.replace('=', '%3d')}/objects{suffix}"
    return http.request("GET", url, fields=query or None, headers=headers)


def window(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"unixStartTime": now - 60, "unixEndTime": now + 60, **extra}


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    # Fixed ids (from the reference's example id up), so a test can name them.
    with SandboxServer(first_id=FIRST_ID) as sandbox:
        yield sandbox


def test_the_list_needs_a_filter(server: SandboxServer, http: urllib3.PoolManager) -> None:
    post(http, server, data(1))
    bare = get(http, server)
    half = get(http, server, unixStartTime=0)
    assert bare.status == 400
    assert "a filter is required" in bare.json()["description"]
    assert bare.json()["status"] == 400
    assert half.status == 400
    assert "unixEndTime is required" in half.json()["description"]
    assert get(http, server, unixStartTime="x", unixEndTime=1).status == 400


def test_a_listed_object_has_the_documented_shape(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    sent = post(http, server, data(1, User={"UniqueId": "u1", "Phone1": "972544444444"}))
    reply = get(http, server, **window())
    assert reply.status == 200
    payload = reply.json()
    assert payload["status"] == "200"
    [item] = payload["data"]
    assert item["objectId"] == sent.json()["data"]["id"] == FIRST_ID
    # A number, never the encrypted id of the path: one made up for it, the same each time.
    assert isinstance(item["streamId"], int)
    assert item["streamId"] == get(http, server, **window()).json()["data"][0]["streamId"]
    assert item["message"] == "message 1"
    assert item["userStreamProviderId"] == "972544444444"
    assert item["type"] == 4
    assert (item["user"]["uniqueId"], item["user"]["phone1"]) == ("u1", 972544444444)
    assert "UniqueId" not in item["user"]
    assert isinstance(item["content"], str)  # a JSON string, as CommBox answers
    assert json.loads(item["content"]) == {"to": ["972544444444"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", item["createdTime"])
    assert item["userStreamProviderType"] == "5"  # a string in the list, as documented
    assert item["closedTime"] is None
    created = datetime.fromisoformat(item["createdTime"])
    assert abs(created.timestamp() - time.time()) < 30


def test_one_object_answers_data_as_an_array_with_its_own_key_casing(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    post(http, server, data(1, SubStreamId=7))
    reply = get(http, server, f"/{FIRST_ID}")
    assert reply.status == 200
    [item] = reply.json()["data"]
    assert item["objectId"] == FIRST_ID
    assert isinstance(item["streamid"], int)
    assert "streamId" not in item
    assert item["substreamid"] == 7
    assert "closeTime" in item
    assert item["userStreamProviderType"] == 5
    assert json.loads(item["content"]) == {"to": ["972544444444"]}
    missing = get(http, server, f"/{FIRST_ID + 1}")
    assert missing.status == 404
    other_stream = http.request(
        "GET",
        f"{server.url}/streams/other/objects/{FIRST_ID}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert other_stream.status == 404


def test_pages_of_at_most_100_until_a_short_page(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    for n in range(230):
        assert post(http, server, data(n)).status == 200
    sizes = []
    ids: list[int] = []
    for page in range(1, 5):
        reply = get(http, server, **window(pageNumber=page, pageSize=500, sort="asc"))
        assert reply.status == 200
        items = reply.json()["data"]
        sizes.append(len(items))
        ids += [i.get("objectId", i.get("id")) for i in items]  # both documented shapes
    assert sizes == [100, 100, 30, 0]
    assert ids == list(range(FIRST_ID, FIRST_ID + 230))  # oldest first, none twice
    newest = get(http, server, **window(pageSize=2)).json()["data"]  # default: newest first
    assert [i.get("objectId", i.get("id")) for i in newest] == [FIRST_ID + 229, FIRST_ID + 228]


def test_the_time_window_and_the_identity_filters(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    post(http, server, data(1, customer="972500000001"))
    post(http, server, data(2, customer="972500000002"))
    past = get(http, server, unixStartTime=0, unixEndTime=int(time.time()) - 3600)
    assert past.json()["data"] == []
    one = get(
        http, server, identityStreamProviderId="972500000002", identityStreamProviderType=5
    ).json()["data"]
    assert [i["message"] for i in one] == ["message 2"]
    wrong_type = get(
        http, server, identityStreamProviderId="972500000002", identityStreamProviderType=4
    )
    assert wrong_type.json()["data"] == []


def test_reads_need_the_token_and_can_be_refused(http: urllib3.PoolManager) -> None:
    with SandboxServer(token=TOKEN) as server:
        post(http, server, data(1))
        assert get(http, server, token=None, **window()).status == 401
        assert get(http, server, token="wrong", **window()).status == 401
        assert get(http, server, **window()).status == 200
    with SandboxServer(refuse_reads=True, first_id=FIRST_ID) as server:
        post(http, server, data(1))
        refused = get(http, server, **window())
        assert refused.status == 401  # as CommBox answers a key without the right to read
        assert refused.json()["description"] == "this API key has no right to read objects"
        assert get(http, server, f"/{FIRST_ID}").status == 401
        assert len(server.objects) == 1  # stored all the same


def test_store_then_fail_stores_the_object_and_answers_500(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    no_id = b'{"status": "200", "description": "OK"}'
    server.script(
        Fault(status=500, store=True),
        Fault(drop=True, store=True),
        Fault(body=no_id),
        Fault(drop=True),
        Fault(status=502),
    )
    failed = post(http, server, data(1))
    with pytest.raises(ProtocolError):
        post(http, server, data(2))
    empty = post(http, server, data(3))
    with pytest.raises(ProtocolError):
        post(http, server, data(4))
    bad_gateway = post(http, server, data(5))
    assert failed.status == 500
    assert failed.json()["status"] == 500
    assert empty.status == 200
    assert empty.data == no_id
    assert bad_gateway.status == 502
    listed = get(http, server, **window(sort="asc")).json()["data"]
    # Stored: the 500, the drop after storing, the 200 without an id. Not: the plain drop, 502.
    assert [i["message"] for i in listed] == ["message 1", "message 2", "message 3"]
    assert [r.outcome for r in server.received if r.method == "POST"] == [
        "accepted",
        "accepted",
        "accepted",
        "dropped",
        "failed",
    ]


def test_store_then_fail_every_and_its_log_line(http: urllib3.PoolManager) -> None:
    lines: list[str] = []

    class Output:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    with SandboxServer(store_then_fail_every=2, output=Output(), first_id=FIRST_ID) as server:  # type: ignore[arg-type]
        statuses = [post(http, server, data(n)).status for n in range(4)]
        assert statuses == [200, 500, 200, 500]
        assert len(server.objects) == 4
        get(http, server, **window())
        assert server.received[-1].outcome == "read"
    assert f"-> 500 Operation failed (stored as id={FIRST_ID + 1})" in lines[1]
    assert "GET /streams/" in lines[4]
    assert "-> 200" in lines[4]


def test_a_stored_fault_needs_an_error_or_a_drop() -> None:
    with pytest.raises(ValueError, match="store"):
        Fault(store=True)
    with pytest.raises(ValueError, match="store"):
        Fault(status=200, store=True)
    with pytest.raises(ValueError, match="negative"):
        SandboxServer(store_then_fail_every=-1)


def test_the_cli_flags_announce_the_new_faults(http: urllib3.PoolManager) -> None:
    options = ("--store-then-fail-every", "1", "--refuse-reads")
    with sandbox_command(http, *options) as (url, faults):
        response = http.request(
            "POST",
            f"{url}/streams/s1/objects",
            body=json.dumps({"data": data(1)}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
        )
        read = http.request(
            "GET", f"{url}/streams/s1/objects/{FIRST_ID}", headers={"Authorization": "Bearer t"}
        )
    assert faults == "faults: stored then 500 every request, reads refused (401)"
    assert response.status == 500
    assert read.status == 401
