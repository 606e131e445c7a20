"""Reconcile reads every page of a listing, whichever number the server's pages start from.

CommBox documents neither where pages start nor that `pageSize` is honoured: a short page is not
the last, and page 0 may be the first. Reconcile reads pages 0 and 1 (their union by object id),
then on until an empty page. Everything runs over real sockets: the sandbox (with
`first_page`/`page_cap`), the `commbox-yaml sandbox` command as a subprocess, and a raw server
whose listing moves while it is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus, Ledger
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import write
from tests.sending import apply, delivered, ledger_path, point_at, sandbox_command

TOKEN = "tok-paging-6c1d9e"
STREAM = "5fd0c1"
CUSTOMER = "972544444444"
KEY = "notice-1"
TEXT = "notice 1 for the one customer"
OTHERS = 120
CAP = 50

PROJECT = {
    "commbox.yaml": """\
version: 1
api:
  concurrency: 1
  rate_per_s: 0
  timeout_s: 5
  max_attempts: 1
  reconcile_after_s: 0
streams:
  sms: 5fd0c1
""",
    "messages/notice.yaml": f"""\
name: notice
channel: sms
stream: sms
id: notice-1
user_stream_provider_id: "{CUSTOMER}"
message: "{TEXT}"
""",
}

# Both conventions, and both answers a server counting from 1 may give for page 0.
CONVENTIONS = [
    pytest.param({"first_page": 0}, id="pages-from-0"),
    pytest.param({"first_page": 1, "page_zero": "first"}, id="pages-from-1-page-0-as-page-1"),
    pytest.param({"first_page": 1, "page_zero": "empty"}, id="pages-from-1-page-0-empty"),
]


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def point(url: str) -> None:
        point_at(monkeypatch, url, TOKEN)

    return point


def post_others(http: urllib3.PoolManager, url: str, count: int = OTHERS) -> None:
    """Objects of other customers in the send's window: pages the target hides behind."""
    for n in range(count):
        data = {
            "Type": 4,
            "StreamProviderType": 5,
            "UserStreamProviderId": f"9725{n:08d}",
            "UserStreamProviderType": 5,
            "Message": f"someone else's message {n}",
        }
        reply = http.request(
            "POST",
            f"{url}/streams/{STREAM}/objects",
            body=json.dumps({"data": data}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        assert reply.status == 200, reply.data


def reconcile_json(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["-C", str(root), "reconcile", "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def only_result(report: dict[str, Any]) -> dict[str, Any]:
    [result] = report["results"]
    return result  # type: ignore[no-any-return]


def page_numbers(server: SandboxServer) -> list[int]:
    listed = [r for r in server.received if r.method == "GET" and "pageNumber=" in r.path]
    return [int(parse_qs(urlsplit(r.path).query)["pageNumber"][0]) for r in listed]


@pytest.mark.parametrize("paging", CONVENTIONS)
def test_a_message_stored_behind_a_500_past_a_capped_page_is_found_not_resent(
    tmp_path: Path,
    http: urllib3.PoolManager,
    use: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    paging: dict[str, Any],
) -> None:
    root = write(tmp_path, PROJECT)
    with SandboxServer(page_cap=CAP, **paging) as server:
        use(server.url)
        post_others(http, server.url)
        server.script(Fault(status=500, store=True))  # stored, then 500: held as unknown
        assert apply(root) == 1
        target = server.objects[-1]
        assert target.data["Message"] == TEXT

        result = only_result(reconcile_json(root, capsys))
        assert (result["result"], result["object_id"]) == ("sent", target.object_id)
        state = Ledger(ledger_path(root), "ledger.jsonl").read().states[KEY]
        assert (state.status, state.object_id) == (KeyStatus.SENT, target.object_id)
        assert apply(root) == 0
        assert delivered(server)[TEXT] == 1  # never delivered twice
        # 121 objects, 50 a page: pages 0 and 1, then on until an empty page (none skipped).
        last = 3 if paging["first_page"] == 0 else 4
        assert page_numbers(server) == list(range(last + 1))


@pytest.mark.parametrize("paging", CONVENTIONS)
def test_absence_is_concluded_only_after_every_page_under_both_conventions(
    tmp_path: Path,
    http: urllib3.PoolManager,
    use: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    paging: dict[str, Any],
) -> None:
    root = write(tmp_path, PROJECT)
    with SandboxServer(page_cap=CAP, **paging) as server:
        use(server.url)
        post_others(http, server.url)
        server.script(Fault(status=502))  # nothing stored
        assert apply(root) == 1
        result = only_result(reconcile_json(root, capsys))
        assert result["result"] == "absent"
        pages = 4 if paging["first_page"] == 0 else 5
        assert f"among the {OTHERS} listed ({pages} page(s))" in result["reason"]
        assert apply(root) == 0
        assert delivered(server)[TEXT] == 1


def test_the_sandbox_pages_as_configured(http: urllib3.PoolManager) -> None:
    def ids(server: SandboxServer, page: int, size: int = 100) -> list[int]:
        now = int(time.time())
        reply = http.request(
            "GET",
            f"{server.url}/streams/{STREAM}/objects",
            fields={
                "unixStartTime": now - 60,
                "unixEndTime": now + 60,
                "sort": "asc",
                "pageNumber": page,
                "pageSize": size,
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert reply.status == 200, reply.data
        return [item.get("objectId", item.get("id")) for item in reply.json()["data"]]

    with SandboxServer(first_page=0, page_cap=CAP) as server:
        post_others(http, server.url, 60)
        every = [o.object_id for o in server.objects]
        assert ids(server, 0) == every[:50]  # capped at 50 although 100 were asked
        assert ids(server, 1) == every[50:]
        assert ids(server, 2) == []
        assert ids(server, 0, size=7) == every[:7]
    with SandboxServer(first_page=1) as server:
        post_others(http, server.url, 3)
        every = [o.object_id for o in server.objects]
        assert ids(server, 0) == ids(server, 1) == every
        assert ids(server, 2) == []
    with SandboxServer(first_page=1, page_zero="empty") as server:
        post_others(http, server.url, 3)
        assert ids(server, 0) == []
        assert ids(server, 1) == [o.object_id for o in server.objects]
    wrongs = ({"first_page": 2}, {"page_cap": 0}, {"page_cap": 101}, {"page_zero": "x"})
    for wrong in wrongs:
        with pytest.raises(ValueError, match=next(iter(wrong))):
            SandboxServer(**wrong)


def test_the_sandbox_command_takes_first_page_and_page_cap(http: urllib3.PoolManager) -> None:
    with sandbox_command(http, "--first-page", "0", "--page-cap", "2") as (url, settings):
        post_others(http, url, 3)
        now = int(time.time())
        window = {"unixStartTime": now - 60, "unixEndTime": now + 60, "sort": "asc"}
        pages = [
            http.request(
                "GET",
                f"{url}/streams/{STREAM}/objects",
                fields={**window, "pageNumber": page},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ).json()["data"]
            for page in (0, 1, 2)
        ]
    assert settings == "faults: pages counted from 0, at most 2 objects a page"
    assert [len(page) for page in pages] == [2, 1, 0]
    assert pages[0][0]["message"] == "someone else's message 0"
    for flag, value in (("--first-page", "2"), ("--page-cap", "0"), ("--page-cap", "101")):
        bad = subprocess.run(
            [sys.executable, "-m", "commbox_yaml", "sandbox", flag, value],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode == 1
        assert flag in bad.stderr
        assert "Traceback" not in bad.stderr


# -- a listing that moves while it is read ------------------------------------------------------


class _Moving(BaseHTTPRequestHandler):
    """Serves `pages(read, page)` as the listing (read counts the passes over page 0)."""

    protocol_version = "HTTP/1.1"
    pages: ClassVar[Callable[[int, int], list[dict[str, Any]]]]
    reads: ClassVar[int] = 0
    seen: ClassVar[list[str]] = []
    port: ClassVar[int] = 0

    def do_GET(self) -> None:
        cls = type(self)
        cls.seen.append(self.path)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if "pageNumber" in query:
            page = int(query["pageNumber"][0])
            cls.reads += page == 0
            data: list[dict[str, Any]] = cls.pages(cls.reads, page)
        else:  # one object by id: whatever was listed with that id
            object_id = int(parts.path.rsplit("/", 1)[1])
            data = [
                i for p in range(10) for i in cls.pages(cls.reads, p) if i["objectId"] == object_id
            ]
        body = json.dumps({"status": "200", "description": "OK", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def moving() -> Iterator[type[_Moving]]:
    _Moving.reads, _Moving.seen = 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Moving)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Moving.port = httpd.server_port
    yield _Moving
    httpd.shutdown()
    httpd.server_close()


def _item(object_id: int, customer: str, message: str) -> dict[str, Any]:
    created = time.strftime("%Y-%m-%dT%H:%M:%S.2581942Z", time.gmtime())
    return {
        "objectId": object_id,
        "streamId": 345,
        "userStreamProviderId": customer,
        "userStreamProviderType": "5",
        "type": 4,
        "statusId": 1,
        "createdTime": created,
        "message": message,
        "content": "{}",
    }


def _unknown_send(root: Path, server: SandboxServer, use: Callable[[str], None]) -> None:
    use(server.url)
    server.script(Fault(drop=True))  # nothing stored: the moving server answers the reads
    assert apply(root) == 1


@pytest.mark.parametrize("moves", [1, 99])
def test_an_object_on_two_pages_other_than_0_and_1_means_read_again(
    tmp_path: Path,
    server: SandboxServer,
    moving: type[_Moving],
    use: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    moves: int,
) -> None:
    root = write(tmp_path, PROJECT)
    _unknown_send(root, server, use)
    others = [_item(1000 + n, f"9725{n:08d}", f"other {n}") for n in range(4)]
    target = _item(2000, CUSTOMER, TEXT)

    def pages(read: int, page: int) -> list[dict[str, Any]]:
        # Pages from 0, two objects a page; while it moves, page 2 repeats page 1's last.
        if read <= moves and page == 2:
            return [others[3], target]
        return {0: others[:2], 1: others[2:], 2: [target]}.get(page, [])

    moving.pages = staticmethod(pages)  # type: ignore[assignment]
    use(f"http://127.0.0.1:{moving.port}")
    result = only_result(reconcile_json(root, capsys))
    if moves == 1:  # moved once, then read again in full: found
        assert (result["result"], result["object_id"]) == ("sent", 2000)
        assert moving.reads == 2
    else:  # it keeps moving: held, never absent, never resent
        assert result["result"] == "unknown"
        assert "moved between pages" in result["reason"]
        assert moving.reads == 3  # bounded
        assert apply(root) == 0
        assert not server.accepted


def test_pages_0_and_1_may_repeat_each_other_and_a_short_page_is_not_the_end(
    tmp_path: Path,
    server: SandboxServer,
    moving: type[_Moving],
    use: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = write(tmp_path, PROJECT)
    _unknown_send(root, server, use)
    others = [_item(1000 + n, f"9725{n:08d}", f"other {n}") for n in range(3)]
    target = _item(2000, CUSTOMER, TEXT)

    def pages(read: int, page: int) -> list[dict[str, Any]]:
        # Pages from 1, one object a page (short pages), page 0 answered as page 1.
        listing = [*others, target]
        index = max(page, 1) - 1
        return listing[index : index + 1]

    moving.pages = staticmethod(pages)  # type: ignore[assignment]
    use(f"http://127.0.0.1:{moving.port}")
    result = only_result(reconcile_json(root, capsys))
    assert (result["result"], result["object_id"]) == ("sent", 2000)
    numbers = [int(parse_qs(urlsplit(p).query)["pageNumber"][0]) for p in moving.seen if "?" in p]
    assert numbers == [0, 1, 2, 3, 4, 5]
