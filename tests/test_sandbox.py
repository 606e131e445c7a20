"""The sandbox over real sockets: a urllib3 client against SandboxServer on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from commbox_yaml.sandbox import FIRST_ID, Fault, SandboxServer

TOKEN = "s3cret-token-value"
STREAM = "b9910a75a46c492c9cf46a910cdba0012"
DATA = {
    "Type": 5,
    "StatusId": 1,
    "StreamProviderType": 4,
    "UserStreamProviderId": "john.doe@gmail.com",
    "UserStreamProviderType": 4,
    "ManagerId": 12345,
    "Content": {"subject": "mail subject", "to": [{"address": "john.doe@gmail.com"}]},
    "Message": "some message",
    "User": {"UniqueId": "01234567", "LastName": "Doe"},
}


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    # Fixed ids (from the reference's example id up), so a test can name them.
    with SandboxServer(first_id=FIRST_ID) as sandbox:
        yield sandbox


def post(
    http: urllib3.PoolManager,
    server: SandboxServer,
    data: Any = DATA,
    *,
    token: str | None = TOKEN,
    stream: str = STREAM,
    **kwargs: Any,
) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(kwargs.pop("headers", {}))
    body = kwargs.pop("body", None) or json.dumps({"data": data}).encode()
    url = f"{server.url}/streams/{stream}/objects"
    return http.request("POST", url, body=body, headers=headers, **kwargs)


def multipart_post(
    http: urllib3.PoolManager, server: SandboxServer, fields: list[Any]
) -> urllib3.BaseHTTPResponse:
    body, content_type = urllib3.encode_multipart_formdata(fields)
    return post(http, server, body=body, headers={"Content-Type": content_type})


def test_accepts_with_ids_counting_up_over_one_kept_alive_connection(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    responses = [post(http, server) for _ in range(3)]
    assert [r.status for r in responses] == [200, 200, 200]
    answers = [r.json() for r in responses]
    assert [a["data"] for a in answers] == [{"id": FIRST_ID + n} for n in range(3)]
    assert answers[0]["status"] == "200"
    assert answers[0]["description"] == "OK"
    assert answers[0]["response_time"].endswith("Z")
    assert responses[0].headers["Content-Length"] == str(len(responses[0].data))
    assert http.connection_from_url(server.url).num_connections == 1
    first = server.received[0]
    assert (first.method, first.stream_id, first.data) == ("POST", STREAM, DATA)
    assert first.headers["content-type"] == "application/json"
    assert server.count(outcome="accepted") == 3 == len(server.accepted)


def test_scripted_success_variants_data_Id_and_explicit_id(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    server.script(Fault(id_key="Id"), Fault(accept=True, id=7), Fault(status=201))
    assert post(http, server).json()["data"] == {"Id": FIRST_ID}
    assert post(http, server).json()["data"] == {"id": 7}
    created = post(http, server)
    assert (created.status, created.json()["data"]) == (201, {"id": FIRST_ID + 1})
    assert post(http, server).json()["data"] == {"id": FIRST_ID + 2}
    assert [r.object_id for r in server.received] == [FIRST_ID, 7, FIRST_ID + 1, FIRST_ID + 2]


def test_accept_fault_overrides_the_shape_check_but_not_the_token(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    server.script(Fault(accept=True), Fault(accept=True))
    assert post(http, server, {"Message": ""}).status == 200
    assert post(http, server, token="").status == 401


def test_only_the_given_token_is_accepted_and_it_is_never_kept(
    http: urllib3.PoolManager,
) -> None:
    output = io.StringIO()
    with SandboxServer(token=TOKEN, output=output) as server:
        missing = post(http, server, token=None)
        wrong = post(http, server, token="not-the-token")
        basic = post(http, server, headers={"Authorization": f"Basic {TOKEN}"})
        right = post(http, server)
        received = server.received
    for response in (missing, wrong, basic):
        assert response.status == 401
        assert response.json()["status"] == 401
        assert response.json()["description"] == "Unauthorized access"
    assert right.status == 200
    assert [r.outcome for r in received] == ["rejected"] * 3 + ["accepted"]
    assert received[3].headers["authorization"] == "Bearer (redacted)"
    assert TOKEN not in repr(received)
    assert TOKEN not in output.getvalue()
    assert "401 Unauthorized access" in output.getvalue()


def test_any_non_empty_token_by_default(server: SandboxServer, http: urllib3.PoolManager) -> None:
    assert post(http, server, token="").status == 401
    assert post(http, server, token="anything").status == 200


@pytest.mark.parametrize(
    ("body", "content_type", "description"),
    [
        ({"data": {**DATA, "Message": None}}, None, "Message must be a non-empty string"),
        ({"data": {k: v for k, v in DATA.items() if k != "Message"}}, None, "Message is required"),
        ({"data": {**DATA, "Message": ""}}, None, "Message must be a non-empty string"),
        ({"data": {**DATA, "UserStreamProviderId": 5}}, None, "UserStreamProviderId must be a"),
        ({"data": {**DATA, "Type": "5"}}, None, "Type must be an integer, not a string"),
        ({"data": {**DATA, "StreamProviderType": True}}, None, "StreamProviderType must be an"),
        ({"data": {**DATA, "StatusId": 1.5}}, None, "StatusId must be an integer or a string"),
        ({"data": {**DATA, "Content": "not json"}}, None, "Content must be an object or a JSON"),
        ({"data": {**DATA, "Content": "[1]"}}, None, "Content must be an object or a JSON"),
        ({"data": {**DATA, "Content": 7}}, None, "Content must be an object or a JSON"),
        ({"data": {**DATA, "User": []}}, None, "User must be an object, not an array"),
        ({"data": json.dumps(DATA)}, None, "data must be an object, not a string"),
        ({"Data": DATA}, None, '{"data": {...}}'),
        (b"{not json", None, "not valid JSON"),
        ({"data": DATA}, "text/plain", "Content-Type must be application/json"),
    ],
)
def test_a_bad_shape_answers_400_saying_what_is_wrong(
    server: SandboxServer,
    http: urllib3.PoolManager,
    body: Any,
    content_type: str | None,
    description: str,
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = post(http, server, body=raw, headers=headers)
    assert response.status == 400
    assert response.json()["status"] == 400
    assert description in response.json()["description"]
    assert server.received[0].status == 400
    assert server.accepted == []


def test_unknown_path_is_404_and_another_method_501(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    missing = http.request("POST", f"{server.url}/streams/s1/object", body=b"{}")
    wrong_method = http.request("PUT", f"{server.url}/streams/s1/objects")
    on_one = http.request("DELETE", f"{server.url}/streams/s1/objects/7")
    assert missing.status == 404
    assert missing.json()["description"] == "Not found"
    assert wrong_method.status == 501  # CommBox: "The requested operation is not supported"
    assert wrong_method.json()["status"] == 501
    assert "use GET, POST" in wrong_method.json()["description"]
    assert on_one.status == 501
    assert [(r.method, r.status, r.stream_id) for r in server.received] == [
        ("POST", 404, None),
        ("PUT", 501, "s1"),
        ("DELETE", 501, "s1"),
    ]


def test_multipart_files_arrive_byte_identical(
    server: SandboxServer, http: urllib3.PoolManager
) -> None:
    # Every byte value, CR/LF runs and a boundary-like line: what a naive parser would mangle.
    pdf = bytes(range(256)) * 4 + b"\r\n--\r\n\r" + os.urandom(4096) + b"\r\n"
    sheet = os.urandom(10_000)
    fields = [
        ("data", json.dumps(DATA, ensure_ascii=False)),
        ("file", ("invoice.pdf", pdf, "application/pdf")),
        ("file", ("analyse-é.xlsx", sheet, "application/vnd.ms-excel")),
    ]
    response = multipart_post(http, server, fields)
    assert response.status == 200, response.data
    (received,) = server.received
    assert received.data == DATA
    assert [(f.filename, f.content_type) for f in received.files] == [
        ("invoice.pdf", "application/pdf"),
        ("analyse-é.xlsx", "application/vnd.ms-excel"),
    ]
    assert received.files[0].content == pdf
    assert received.files[1].content == sheet


@pytest.mark.parametrize(
    ("fields", "description"),
    [
        ([("file", ("a.pdf", b"%PDF", "application/pdf"))], "expected one 'data' field, got 0"),
        ([("data", json.dumps(DATA)), ("files", ("a.pdf", b"x"))], "unexpected multipart field"),
        ([("data", json.dumps(DATA)), ("file", "no filename")], "a 'file' part has no filename"),
        ([("data", "[1]")], "the 'data' field must hold an object"),
        ([("data", json.dumps({"Type": 4}))], "Message is required"),
    ],
)
def test_a_bad_multipart_body_answers_400(
    server: SandboxServer, http: urllib3.PoolManager, fields: list[Any], description: str
) -> None:
    response = multipart_post(http, server, fields)
    assert response.status == 400
    assert description in response.json()["description"]


def test_a_chunked_body_is_read_whole(server: SandboxServer, http: urllib3.PoolManager) -> None:
    encoded = json.dumps({"data": DATA}).encode()
    chunks = iter([encoded[:10], encoded[10:]])
    response = post(http, server, body=chunks, chunked=True)
    assert response.status == 200
    assert server.received[0].data == DATA


def test_throttle_every_answers_429_with_retry_after(http: urllib3.PoolManager) -> None:
    with SandboxServer(throttle_every=2, throttle_retry_after=3, first_id=FIRST_ID) as server:
        responses = [post(http, server) for _ in range(4)]
    assert [r.status for r in responses] == [200, 429, 200, 429]
    assert responses[1].headers["Retry-After"] == "3"
    assert responses[1].json()["description"] == "Too Many Requests"
    assert "Retry-After" not in responses[0].headers
    assert [r.json().get("data") for r in responses[::2]] == [
        {"id": FIRST_ID},
        {"id": FIRST_ID + 1},
    ]
    assert server.count(outcome="throttled") == 2
    assert server.count(outcome="accepted") == 2


def test_throttle_retry_after_may_be_zero(http: urllib3.PoolManager) -> None:
    with SandboxServer(throttle_every=1, throttle_retry_after=0) as server:
        assert post(http, server).headers["Retry-After"] == "0"


def test_fail_every_answers_5xx(http: urllib3.PoolManager) -> None:
    with SandboxServer(fail_every=2) as server, SandboxServer(fail_every=1, fail_status=502) as bad:
        statuses = [post(http, server).status for _ in range(4)]
        gateway = post(http, bad)
    assert statuses == [200, 500, 200, 500]
    assert server.received[1].description == "Operation failed"
    assert server.count(outcome="failed") == 2
    assert server.received[1].object_id is None
    assert gateway.status == 502


def test_drop_every_closes_the_connection_after_reading_the_request(
    http: urllib3.PoolManager,
) -> None:
    with SandboxServer(drop_every=2, first_id=FIRST_ID) as server:
        assert post(http, server).status == 200
        with pytest.raises(ProtocolError):
            post(http, server)
        assert post(http, server).status == 200  # the pool recovers on a new connection
        received = server.received
    assert [r.outcome for r in received] == ["accepted", "dropped", "accepted"]
    dropped = received[1]
    assert (dropped.status, dropped.object_id, dropped.data) == (None, None, DATA)
    assert [r.object_id for r in received if r.accepted] == [FIRST_ID, FIRST_ID + 1]


def test_scripted_faults_are_used_in_order_before_the_periodic_rules(
    http: urllib3.PoolManager,
) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    html = b"<html><body>502 Bad Gateway</body></html>"
    with SandboxServer(throttle_every=6) as server:
        server.script(
            Fault(status=503, retry_after=date),
            Fault(status=401),
            Fault(drop=True),
            Fault(status=502, body=html, headers={"Content-Type": "text/html"}),
            Fault(status=400, description="Content is not valid"),
        )
        unavailable = post(http, server)
        unauthorized = post(http, server)
        with pytest.raises(ProtocolError):
            post(http, server)
        gateway = post(http, server)
        bad = post(http, server)
        throttled = post(http, server)  # the 6th request: the periodic rule again
        assert server.pending_faults == 0
    assert (unavailable.status, unavailable.headers["Retry-After"]) == (503, date)
    assert unavailable.json()["description"] == "Service Unavailable"
    assert (unauthorized.status, unauthorized.json()["description"]) == (401, "Unauthorized access")
    assert (gateway.status, gateway.data, gateway.headers["Content-Type"]) == (
        502,
        html,
        "text/html",
    )
    assert (bad.status, bad.json()["description"]) == (400, "Content is not valid")
    assert throttled.status == 429
    assert [r.status for r in server.received] == [503, 401, None, 502, 400, 429]
    assert server.accepted == []


def test_a_delay_past_the_read_timeout_still_creates_the_object_and_stop_is_prompt() -> None:
    server = SandboxServer(first_id=FIRST_ID).start()
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=0.2))
    try:
        server.script(Fault(delay_s=30))
        with pytest.raises(ReadTimeoutError):
            post(pool, server)
    finally:
        pool.clear()
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 1
    # The server took the message although the client gave up: the "unknown" outcome.
    assert server.wait_for(1, timeout=2)
    assert server.received[0].object_id == FIRST_ID


def test_latency_delays_every_answer(http: urllib3.PoolManager) -> None:
    with SandboxServer(latency_ms=150) as server:
        started = time.monotonic()
        assert post(http, server).status == 200
        assert time.monotonic() - started >= 0.15


def test_concurrent_posts_get_unique_ids(server: SandboxServer) -> None:
    pool = urllib3.PoolManager(maxsize=8, block=True, retries=False)
    ids: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            object_id = post(pool, server).json()["data"]["id"]
            with lock:
                ids.append(object_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        pool.clear()
    assert sorted(ids) == list(range(FIRST_ID, FIRST_ID + 40))
    assert sorted(r.object_id or 0 for r in server.received) == sorted(ids)


def test_received_helpers(server: SandboxServer, http: urllib3.PoolManager) -> None:
    post(http, server, stream="a")
    post(http, server, stream="a")
    post(http, server, stream="b", token="")
    assert server.count(stream_id="a") == 2
    assert server.count(stream_id="b", status=401) == 1
    assert server.requests == 3
    server.clear()
    assert server.received == []
    assert post(http, server).json()["data"] == {"id": FIRST_ID + 2}  # ids keep counting


def test_a_server_for_a_whole_fan_out_keeps_only_what_it_must(
    http: urllib3.PoolManager,
) -> None:
    """The command-line sandbox keeps the objects (its reads serve them) but no requests; an
    apply's own sandbox, read back by nothing, keeps neither. Both still answer every POST."""
    output = io.StringIO()
    with (
        SandboxServer(record_requests=False, output=output, first_id=FIRST_ID) as serving,
        SandboxServer(record_requests=False, store_objects=False, first_id=FIRST_ID) as rehearsing,
    ):
        for sandbox in (serving, rehearsing):
            answers = [post(http, sandbox).json()["data"]["id"] for _ in range(3)]
            assert answers == [FIRST_ID, FIRST_ID + 1, FIRST_ID + 2]
            assert sandbox.requests == 3
            assert sandbox.received == []
        assert [o.object_id for o in serving.objects] == [FIRST_ID, FIRST_ID + 1, FIRST_ID + 2]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        path = f"/streams/{STREAM}/objects/{FIRST_ID + 1}"
        assert http.request("GET", serving.url + path, headers=auth).status == 200
        assert rehearsing.objects == []
        assert http.request("GET", rehearsing.url + path, headers=auth).status == 404
    printed = output.getvalue().splitlines()  # printed, though not kept: 3 POSTs and the GET
    assert [line.split("-> ")[1] for line in printed] == [
        *(f"200 id={FIRST_ID + n}" for n in range(3)),
        "200 OK",
    ]


def test_prints_one_line_per_request_only_when_given_an_output(
    http: urllib3.PoolManager, capsys: pytest.CaptureFixture[str]
) -> None:
    output = io.StringIO()
    message = "Please find attached your invoice for September 2024, and the report for August."
    with SandboxServer(output=output, first_id=FIRST_ID) as server, SandboxServer() as silent:
        fields = [
            ("data", json.dumps({**DATA, "Message": message})),
            ("file", ("invoice.pdf", b"%PDF-1.4", "application/pdf")),
            ("file", ("report.xlsx", b"PK", "application/octet-stream")),
        ]
        multipart_post(http, server, fields)
        http.request("GET", f"{server.url}/health")
        post(http, silent)
    first, second = output.getvalue().splitlines()
    assert f"stream {STREAM}  Type 5" in first
    assert f'"{message[:60]}"…' in first
    assert "[invoice.pdf, report.xlsx]" in first
    assert first.endswith(f"-> 200 id={FIRST_ID}")
    assert second.endswith("GET /health  -> 404 Not found")
    assert capsys.readouterr() == ("", "")


def test_fault_rejects_contradictions() -> None:
    with pytest.raises(ValueError, match="accept"):
        Fault(accept=True, status=500)
    with pytest.raises(ValueError, match="HTTP status"):
        Fault(status=1000)


def test_the_cli_command_serves_until_terminated(http: urllib3.PoolManager) -> None:
    command = [sys.executable, "-m", "commbox_yaml", "sandbox", "--port", "0", "--token", TOKEN]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            # Read the banner line by line: communicate() later reads the pipe past this buffer.
            first, export, _hint = (process.stdout.readline() for _ in range(3))
            assert first.startswith("CommBox sandbox listening on http://127.0.0.1:")
            assert first.rstrip().endswith(
                "(token: the one given with --token or COMMBOX_SANDBOX_TOKEN)"
            )
            url = first.split()[4]
            port = int(url.rsplit(":", 1)[1])
            response = http.request(
                "POST",
                f"{url}/streams/s1/objects",
                body=json.dumps({"data": DATA}).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            )
            http.clear()
            process.terminate()
            out, err = process.communicate(timeout=5)
        finally:
            if process.poll() is None:  # a failed assertion must not leave it running
                process.kill()
    assert response.status == 200
    object_id = response.json()["data"]["id"]
    assert isinstance(object_id, int)
    assert object_id > 0
    assert process.returncode == 0, err
    assert export.strip() == f"export COMMBOX_BASE_URL=http://127.0.0.1:{port}"
    assert f'stream s1  Type 5  "some message"  [no files]  -> 200 id={object_id}' in out
    assert out.rstrip().endswith("sandbox stopped.")
    assert TOKEN not in first + out + err
