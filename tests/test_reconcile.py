"""Reconcile: reading CommBox back settles sends whose outcome was unknown, and never sends twice.

Everything runs over real sockets against the sandbox (its read endpoints serve the objects it
stored), with real ledger files, the CLI in-process or as a real subprocess (kill -9).
"""

from __future__ import annotations

import collections
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.client import client_for
from commbox_yaml.ledger import KeyState, KeyStatus, Ledger
from commbox_yaml.project import load_project
from commbox_yaml.readback import Item, Reader, parse_time
from commbox_yaml.reconcile import Case as _Case
from commbox_yaml.reconcile import Reconciler, Result, Window, key_glob
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import FANOUT, build_project, fanout, write
from tests.sending import apply, delivered, events, ledger_path, point_at, states, wait_until

TOKEN = "tok-5b1f0e83c2a9d7e4"
NO_ID = b'{"status": "200", "description": "OK", "data": {}}'

COMMBOX = """\
version: 1
api:
  concurrency: {concurrency}
  rate_per_s: 0
  timeout_s: {timeout}
  max_attempts: 2
  max_retry_after_s: 1
  reconcile_after_s: {after}
streams:
  sms: 5fd0c1
vars: [vars/common.yaml]
"""

# One message per person, each to its own customer (a phone number).
NOTICE = """\
name: notice
channel: sms
stream: sms
id: "notice-{{ version }}"
for_each: people
user_stream_provider_id: "{{ item }}"
message: "notice {{ version }} for {{ item }}"
"""

ONE_CUSTOMER = FANOUT  # every message to one customer: only the text tells them apart


def person(n: int) -> str:
    return f"9725{n:08d}"


def key(n: int) -> str:
    return f"notice-1[{person(n)}]"


def text(n: int) -> str:
    return f"notice 1 for {person(n)}"


def make(
    root: Path,
    count: int = 3,
    concurrency: int = 1,
    after: float = 0,
    timeout: float = 5,
    messages: str = NOTICE,
    version: str = "1",
) -> Path:
    commbox = COMMBOX.format(concurrency=concurrency, timeout=timeout, after=after)
    people = [person(n) for n in range(count)]
    return fanout(root, commbox, people, messages, f"version: {version}\n")


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Any:
    def point(url: str) -> None:
        point_at(monkeypatch, url, TOKEN)

    return point


def reconcile(root: Path, *args: str) -> int:
    return main(["-C", str(root), "reconcile", *args])


def reconcile_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert reconcile(root, "--json", *args) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def plan_summary(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["summary"]  # type: ignore[no-any-return]


def stored_ids(server: SandboxServer) -> dict[str, int]:
    """Message text -> the id of the object the server stored for it."""
    return {str(o.data["Message"]): o.object_id for o in server.objects}


def posts(server: SandboxServer) -> int:
    return sum(1 for r in server.received if r.method == "POST")


def results(report: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {r["key"]: (r["result"], r["object_id"]) for r in report["results"]}


def reason(report: dict[str, Any], ledger_key: str) -> str:
    return next(str(r["reason"]) for r in report["results"] if r["key"] == ledger_key)


# -- the promise ------------------------------------------------------------------------------


def test_stored_but_unanswered_sends_are_reconciled_to_sent_and_never_resent(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=4)
    use(server.url)
    server.script(
        Fault(drop=True, store=True),  # stored, connection dropped
        Fault(status=500, store=True),  # stored, then 500
        Fault(body=NO_ID),  # stored, 200 without an id
    )
    assert apply(root) == 1
    before = states(root)
    assert before[key(0)].status is KeyStatus.UNKNOWN
    assert before[key(1)].status is KeyStatus.UNKNOWN
    assert before[key(2)].object_id is None  # a 2xx without an id: not known by its object
    assert before[key(3)].status is KeyStatus.SENT
    assert before[key(3)].object_id is not None

    report = reconcile_json(root, capsys)
    ids = stored_ids(server)
    assert results(report) == {key(n): ("sent", ids[text(n)]) for n in range(3)}
    after = states(root)
    for n in range(4):
        assert after[key(n)].status is KeyStatus.SENT
        assert after[key(n)].object_id == ids[text(n)]
    assert plan_summary(root, capsys)["unchanged"] == 4
    sent_before = posts(server)
    assert apply(root) == 0
    assert posts(server) == sent_before  # nothing resent
    assert max(delivered(server).values()) == 1
    reconciled = [e for e in events(root) if e["event"] == "reconciled"]
    assert [e["key"] for e in reconciled] == [key(0), key(1), key(2)]
    assert all(e["result"] == "sent" and "Message" not in e for e in reconciled)


def test_never_stored_sends_are_reconciled_absent_then_sent_exactly_once(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=3)
    use(server.url)
    server.script(Fault(drop=True), Fault(status=502))  # the server kept nothing
    assert apply(root) == 1
    assert [states(root)[key(n)].status for n in range(2)] == [KeyStatus.UNKNOWN] * 2

    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("absent", None), key(1): ("absent", None)}
    assert "no object for this customer and type" in reason(report, key(0))
    summary = plan_summary(root, capsys)
    assert (summary["send"], summary["unchanged"], summary["unknown"]) == (2, 1, 0)
    assert apply(root) == 0
    assert apply(root) == 0
    assert delivered(server) == {text(n): 1 for n in range(3)}
    assert {states(root)[key(n)].object_id for n in range(3)} == set(stored_ids(server).values())


def test_with_reading_refused_they_stay_unknown_and_nothing_is_resent(
    tmp_path: Path, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=2)
    with SandboxServer(refuse_reads=True) as server:
        use(server.url)
        server.script(Fault(drop=True), Fault(drop=True, store=True))
        assert apply(root) == 1
        capsys.readouterr()
        # CommBox answers a key without the right to read 401, as it does a wrong key.
        assert reconcile(root) == 1
        error = capsys.readouterr().err
        assert "refused reading CommBox (HTTP 401" in error
        assert "right to read objects" in error
        assert plan_summary(root, capsys)["unknown"] == 2
        sent = posts(server)
        assert apply(root) == 0
        assert apply(root, "--reconcile") == 1
        assert posts(server) == sent
    assert not [e for e in events(root) if e["event"] == "reconciled"]


def test_two_objects_with_the_text_are_a_reason_to_hold_never_absent(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    server.script(Fault(drop=True, store=True))
    assert apply(root) == 1
    [stored] = server.objects
    _post(server, stored.data)  # someone else sent the same text to the same customer
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("unknown", None)}
    assert "2 objects match" in report["results"][0]["reason"]
    assert states(root)[key(0)].status is KeyStatus.UNKNOWN


def test_an_object_with_an_altered_text_is_a_reason_to_hold(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    server.script(Fault(drop=True))  # not stored by this request...
    assert apply(root) == 1
    data = {"Type": 4, "UserStreamProviderId": person(0), "UserStreamProviderType": 5}
    _post(server, {**data, "Message": f"<p>{text(0)}</p>"})  # ...but this looks like it, as HTML
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("unknown", None)}
    assert "do not match it exactly" in report["results"][0]["reason"]
    _post(server, {**data, "Type": 5, "Message": "an email to the same customer"})
    assert states(root)[key(0)].status is KeyStatus.UNKNOWN


def test_one_object_two_keys_could_claim_holds_both(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    same_text = ONE_CUSTOMER.replace("notice {{ version }} for {{ item }}", "the same text")
    root = make(tmp_path, count=2, messages=same_text)
    use(server.url)
    server.script(Fault(status=500, store=True), Fault(drop=True))  # one object, two keys
    assert apply(root) == 1
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("unknown", None), key(1): ("unknown", None)}
    [stored] = server.objects
    assert reason(report, key(0)) == (
        f"object {stored.object_id} matches several keys: {key(0)}, {key(1)}"
    )
    assert posts(server) == 2
    assert apply(root) == 0
    assert posts(server) == 2


def test_a_type_by_name_or_a_missing_customer_counts_against_absence(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    server.script(Fault(drop=True))
    assert apply(root) == 1
    _post(server, {"Type": 5, "UserStreamProviderId": person(0), "Message": "an email"})
    assert results(reconcile_json(root, capsys)) == {key(0): ("absent", None)}
    # A reply spelling the type by name, or leaving the customer out, cannot rule an object out.
    case = _case_for(root, key(0))
    item = {"objectId": 1, "message": "x", "createdTime": int(time.time())}
    for oddity in ({"type": "Conversation", "userStreamProviderId": person(0)}, {"type": 4}):
        assert case.concerns(Item.of({**item, **oddity}))
    assert not case.concerns(Item.of({**item, "type": 5, "userStreamProviderId": person(0)}))
    assert not case.concerns(Item.of({**item, "type": 4, "userStreamProviderId": person(1)}))
    suffixed = Item.of({**item, "type": 4, "userStreamProviderId": f"+{person(0)}_by"})
    assert case.concerns(suffixed)
    assert not case.matches(suffixed)  # another text
    assert case.matches(
        Item.of({**item, "userStreamProviderId": f"{person(0)}_by", "message": text(0)})
    )
    assert not case.matches(
        Item.of({**item, "userStreamProviderId": f"1{person(0)}", "message": text(0)})
    )
    spelled = f"+{person(0)[:3]} {person(0)[3:5]}-{person(0)[5:]}"  # +972 50-00000000
    assert case.matches(Item.of({**item, "userStreamProviderId": spelled, "message": text(0)}))


def test_an_email_customer_matches_in_any_case_but_not_with_other_dots(tmp_path: Path) -> None:
    mail = _Case(
        "k",
        KeyState("k", KeyStatus.UNKNOWN),
        _email_request(tmp_path, "Jo.Doe@Example.com"),
        Window(0, time.time() + 60),
        0,
    )
    item = {"objectId": 1, "message": "hi", "type": 5, "createdTime": int(time.time())}
    assert mail.matches(Item.of({**item, "userStreamProviderId": "jo.doe@example.com"}))
    other = Item.of({**item, "userStreamProviderId": "jodoe@example.com"})
    assert not mail.matches(other)
    assert mail.concerns(other)  # but it still counts against concluding absence


def test_other_keys_objects_for_one_customer_do_not_block_absence(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=4, messages=ONE_CUSTOMER)
    use(server.url)
    # A reply lost after storing, a request never stored: both to the customer of the others.
    server.script(Fault(), Fault(status=500, store=True), Fault(drop=True))
    assert apply(root) == 1
    report = reconcile_json(root, capsys)
    ids = stored_ids(server)
    assert results(report) == {key(1): ("sent", ids[text(1)]), key(2): ("absent", None)}
    assert apply(root) == 0
    assert delivered(server) == {text(n): 1 for n in range(4)}


def test_a_recent_send_is_not_concluded_absent_but_a_found_one_is_sent(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=2, after=3600)
    use(server.url)
    server.script(Fault(drop=True), Fault(drop=True, store=True))
    assert apply(root) == 1
    report = reconcile_json(root, capsys)
    found = results(report)
    assert found[key(0)] == ("unknown", None)
    assert "too recent" in reason(report, key(0))
    assert found[key(1)] == ("sent", stored_ids(server)[text(1)])


def test_a_clock_far_from_commbox_s_holds_every_key(
    tmp_path: Path, server: SandboxServer, use: Any
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    server.script(Fault(drop=True))
    assert apply(root) == 1
    ledger = Ledger(ledger_path(root), "ledger.jsonl")
    requests = {r.key: r for r in build_project(root).requests}
    api = load_project(root).api
    for offset, word in ((3600, "ahead of"), (-400, "behind")):
        reader = Reader(client_for(api, root, server.url, TOKEN))
        with ledger.locked():
            reconciler = Reconciler(
                api, reader, ledger, "r1", clock=lambda o=offset: time.time() + o
            )
            [finding] = reconciler.run([key(0)], ledger.read(), requests)
        reader.close()
        assert finding.result is Result.HELD
        assert f"clock is {abs(offset)} s {word} CommBox's" in finding.reason
    assert states(root)[key(0)].status is KeyStatus.UNKNOWN


def test_a_lost_replace_of_a_sent_message_goes_back_to_changed(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    assert apply(root) == 0
    [first] = server.objects
    (root / "messages/notice.yaml").write_text(NOTICE.replace("notice {{", "Notice {{"))
    server.script(Fault(drop=True))  # the replacing send never arrives
    assert apply(root, "--replace", key(0)) == 1
    # The key's own earlier object (another text, same customer) is accounted for: not a hold.
    assert results(reconcile_json(root, capsys)) == {key(0): ("absent", None)}
    state = states(root)[key(0)]
    assert state.status is KeyStatus.SENT
    assert state.object_id == first.object_id
    summary = plan_summary(root, capsys)
    assert (summary["changed"], summary["send"]) == (1, 0)  # held as changed, as before the try
    assert apply(root, "--replace", key(0)) == 0
    assert [o.data["Message"] for o in server.objects] == [text(0), f"N{text(0)[1:]}"]


def test_a_changed_definition_stays_unknown(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    server.script(Fault(drop=True))
    assert apply(root) == 1
    (root / "messages/notice.yaml").write_text(NOTICE.replace("notice {{", "Notice {{"))
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("unknown", None)}
    assert "changed since it was sent" in report["results"][0]["reason"]
    assert states(root)[key(0)].status is KeyStatus.UNKNOWN


def test_a_crash_mid_request_leaves_a_dangling_pending_that_reconcile_settles(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], use: Any
) -> None:
    root = make(tmp_path, count=1)
    use(server.url)
    server.script(Fault(delay_s=1.5))  # stored only after the client is gone
    env = {**os.environ, "COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "commbox_yaml", "-C", str(root), "apply", "--auto-approve"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        wait_until(lambda: server.requests == 1)  # the request is in, its answer delayed
        p.send_signal(signal.SIGKILL)
        p.wait()
    wait_until(lambda: len(server.objects) == 1)
    assert states(root)[key(0)].settled_at is None
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("sent", stored_ids(server)[text(0)])}


def test_apply_reconcile_settles_then_sends_in_one_run(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=3)
    use(server.url)
    server.script(Fault(drop=True), Fault(status=500, store=True))
    assert apply(root) == 1
    capsys.readouterr()
    assert apply(root, "--reconcile") == 0
    out = capsys.readouterr().out
    assert "Reconcile: 1 sent, 1 absent (sent by the next apply), 0 still unknown." in out
    assert "Apply complete: 1 sent, 0 failed, 0 unknown." in out
    assert delivered(server) == {text(n): 1 for n in range(3)}
    kinds = [(e["event"], e["key"]) for e in events(root)]
    # Reconciled before the new send went out.
    assert kinds.index(("reconciled", key(0))) < len(kinds) - 2
    assert kinds[-2:] == [("pending", key(0)), ("sent", key(0))]


def test_text_output_and_ledger_show(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=3)
    use(server.url)
    server.script(Fault(drop=True, store=True), Fault(drop=True))
    assert apply(root) == 1
    capsys.readouterr()
    assert reconcile(root) == 0
    out = capsys.readouterr().out
    object_id = stored_ids(server)[text(0)]
    assert "commbox-yaml reconcile: 2 keys" in out
    assert f"found in CommBox as object {object_id}" in out
    assert "the next apply sends it once" in out
    assert TOKEN not in out
    assert main(["-C", str(root), "ledger", "show", key(0)]) == 0
    shown = capsys.readouterr().out
    assert f"object_id      {object_id}" in shown
    assert "reconciled_at" in shown
    assert reconcile(root) == 0
    assert "Nothing to reconcile" in capsys.readouterr().out


def test_keys_and_globs(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=3)
    use(server.url)
    server.script(Fault(drop=True), Fault(drop=True))
    assert apply(root) == 1
    report = reconcile_json(root, capsys, key(0), key(2))
    [stored] = server.objects
    assert results(report) == {key(0): ("absent", None), key(2): ("nothing", stored.object_id)}
    assert reason(report, key(2)).startswith("not held: sent as object ")
    report = reconcile_json(root, capsys, "notice-?[*]")
    assert results(report)[key(1)] == ("absent", None)
    capsys.readouterr()
    assert reconcile(root, "nothing-[*]") == 1
    assert "'nothing-[*]' matches no key of the ledger" in capsys.readouterr().err


def test_glob_brackets_are_literal() -> None:
    assert key_glob("release-2.0[*]").fullmatch("release-2.0[acme]")
    assert not key_glob("release-2.0[*]").fullmatch("release-2.0a")
    assert key_glob("a?c").fullmatch("a]c")
    assert not key_glob("a.c").fullmatch("abc")


def test_reconcile_after_s_is_checked_like_every_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1, after=-1)
    assert main(["-C", str(root), "validate"]) == 1
    err = capsys.readouterr()
    assert "reconcile_after_s" in err.out + err.err


def test_errors_are_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    with SandboxServer(token=TOKEN) as server:
        monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
        monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
        server.script(Fault(drop=True, store=True))
        assert apply(root) == 1
        monkeypatch.setenv("COMMBOX_API_TOKEN", "a-revoked-key")
        capsys.readouterr()
        assert reconcile(root) == 1
        err = capsys.readouterr().err
        assert "token was refused reading CommBox (HTTP 401: a wrong key" in err
        assert len(err.strip().splitlines()) == 1
        assert "a-revoked-key" not in err
        monkeypatch.delenv("COMMBOX_API_TOKEN")
        assert reconcile(root) == 1
        assert "no API token" in capsys.readouterr().err
    assert states(root)[key(0)].status is KeyStatus.UNKNOWN


def test_a_first_run_without_a_ledger_has_nothing_to_reconcile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=1)
    monkeypatch.delenv("COMMBOX_API_TOKEN", raising=False)
    assert reconcile(root) == 0  # a CI step before the first apply: no token needed yet
    assert "Nothing to reconcile" in capsys.readouterr().out
    assert reconcile(root, key(0)) == 1
    assert "no ledger at .commbox/ledger.jsonl" in capsys.readouterr().err
    with (root / "commbox.yaml").open("a") as handle:
        handle.write("ledger:\n  must_exist: true\n")
    assert reconcile(root) == 1
    assert "ledger.must_exist is true" in capsys.readouterr().err
    assert not ledger_path(root).exists()  # never created by reconcile


def test_reconcile_sandbox_needs_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=2)
    monkeypatch.delenv("COMMBOX_API_TOKEN", raising=False)
    assert main(["-C", str(root), "apply", "--sandbox", "--auto-approve", "--reconcile"]) == 0
    capsys.readouterr()
    assert reconcile(root, "--sandbox") == 0
    assert "Nothing to reconcile" in capsys.readouterr().out
    assert not ledger_path(root).exists()  # the real ledger is untouched


def test_a_kill_9_during_reconcile_leaves_a_readable_ledger_and_a_rerun_finishes(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 6
    root = make(tmp_path, count=count)
    use(server.url)
    server.script(*[Fault(drop=True, store=True)] * count)
    assert apply(root) == 1
    server.latency_ms = 300  # every read is slow: the kill lands between settled keys
    env = {**os.environ, "COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "commbox_yaml", "-C", str(root), "reconcile"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        wait_until(lambda: any(e["event"] == "reconciled" for e in _events_or_none(root)), 60)
        p.send_signal(signal.SIGKILL)
        p.wait()
    done = [e["key"] for e in events(root) if e["event"] == "reconciled"]
    assert 1 <= len(done) < count
    capsys.readouterr()
    assert main(["-C", str(root), "ledger", "list"]) == 0
    server.latency_ms = 0
    report = reconcile_json(root, capsys)
    ids = stored_ids(server)
    assert {k for k, (r, _) in results(report).items() if r == "sent"} == {
        key(n) for n in range(count)
    } - set(done)
    reconciled = collections.Counter(e["key"] for e in events(root) if e["event"] == "reconciled")
    assert reconciled == {key(n): 1 for n in range(count)}
    assert {k: s.object_id for k, s in states(root).items()} == {
        key(n): ids[text(n)] for n in range(count)
    }
    sent = posts(server)
    assert apply(root) == 0
    assert posts(server) == sent


def test_fault_drill_300_messages(
    tmp_path: Path, server: SandboxServer, use: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Drops and 500s, some after the server stored the message: count what reconcile settles."""
    count = 300
    root = make(tmp_path, count=count, concurrency=4)
    use(server.url)
    kinds = [
        Fault(drop=True, store=True),
        Fault(drop=True),
        Fault(status=500, store=True),
        Fault(status=500),
        Fault(body=NO_ID),
    ]
    # Every third request meets a fault, the five kinds in turn.
    server.script(*[kinds[(n // 3) % 5] if n % 3 == 2 else Fault() for n in range(count)])
    assert apply(root, "--allow-bulk") == 1
    before = states(root)
    held = sorted(k for k, s in before.items() if s.status is not KeyStatus.SENT or not s.object_id)
    stored_unanswered = sum(1 for k in held if _text_of(k) in stored_ids(server))

    started = time.monotonic()
    report = reconcile_json(root, capsys)
    seconds = time.monotonic() - started
    reads = sum(1 for r in server.received if r.method == "GET")
    outcome = collections.Counter(r for r, _ in results(report).values())
    posts_before = posts(server)
    assert apply(root, "--allow-bulk") == 0
    resent = posts(server) - posts_before
    counts = delivered(server)
    drill = {
        "messages": count,
        "held before (unknown or no id)": len(held),
        "stored but unanswered": stored_unanswered,
        "reconciled sent": outcome["sent"],
        "reconciled absent": outcome["absent"],
        "still unknown": outcome["unknown"],
        "resent by the next apply": resent,
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "reads (GET)": reads,
        "reconcile seconds": round(seconds, 2),
    }
    print(f"\nfault drill: {json.dumps(drill)}")
    assert len(held) == 100
    assert outcome["sent"] == stored_unanswered == 60
    assert outcome["absent"] == resent == 40
    assert outcome["unknown"] == 0
    assert drill["duplicates"] == 0
    assert counts == {text(n): 1 for n in range(count)}
    ids = stored_ids(server)
    assert {k: s.object_id for k, s in states(root).items()} == {
        key(n): ids[text(n)] for n in range(count)
    }


# -- reading replies --------------------------------------------------------------------------


def test_items_are_read_without_regard_to_key_case() -> None:
    item = Item.of(
        {"ObjectID": 5, "USERSTREAMPROVIDERID": 972, "Type": "4", "Message": "m", "createdtime": 1}
    )
    assert (item.object_id, item.customer, item.type, item.message) == ("5", "972", "4", "m")
    assert Item.of({"id": 7}).object_id == "7"
    assert Item.of("not an object") == Item(None, None, None, None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1764151300, 1764151300.0),
        ("1764151300", 1764151300.0),
        (1764151300123, 1764151300.123),
        ("2025-11-26T10:01:40Z", 1764151300.0),
        ("2025-11-26T10:01:40", 1764151300.0),  # no offset: UTC
        ("2025-11-26T12:01:40+02:00", 1764151300.0),
        ("yesterday", None),
        (None, None),
        (True, None),
    ],
)
def test_created_times_in_every_spelling(value: Any, expected: float | None) -> None:
    assert parse_time(value) == expected


# -- helpers ----------------------------------------------------------------------------------


def _post(server: SandboxServer, data: dict[str, Any]) -> None:
    pool = urllib3.PoolManager(retries=False)
    try:
        reply = pool.request(
            "POST",
            f"{server.url}/streams/5fd0c1/objects",
            body=json.dumps({"data": data}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
    finally:
        pool.clear()
    assert reply.status == 200, reply.data


def _case_for(root: Path, ledger_key: str) -> Any:
    [request] = [r for r in build_project(root).requests if r.key == ledger_key]
    return _Case(ledger_key, states(root)[ledger_key], request, Window(0, time.time() + 60), 0)


def _email_request(root: Path, address: str) -> Any:
    write(
        root,
        {
            "commbox.yaml": "version: 1\n",
            "messages/m.yaml": f"""\
                name: m
                channel: email
                stream: "17566"
                subject: s
                to: [{address}]
                user_stream_provider_id: {address}
                message: hi
                """,
        },
    )
    [request] = build_project(root).requests
    return request


def _events_or_none(root: Path) -> list[dict[str, Any]]:
    """Events, tolerating a line being written right now."""
    try:
        return [json.loads(line) for line in ledger_path(root).read_text().splitlines()]
    except ValueError:
        time.sleep(0.01)
        return []


def _text_of(ledger_key: str) -> str:
    return f"notice 1 for {ledger_key.split('[')[1].rstrip(']')}"


# -- against a server that is not the sandbox -------------------------------------------------


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers GETs from a list of (status, body) and records each request's path and headers."""

    protocol_version = "HTTP/1.1"
    answers: ClassVar[list[tuple[int, bytes]]] = []
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        status, body = type(self).answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Any:
    _Scripted.answers, _Scripted.seen = [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_commbox_shaped_replies_with_a_503_on_the_way(
    tmp_path: Path,
    server: SandboxServer,
    scripted: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make(tmp_path, count=1)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    server.script(Fault(drop=True))
    assert apply(root) == 1
    # CommBox's own spelling: other key casing, a .NET time, the type's customer as a string.
    item = {
        "ObjectId": 62824402,
        "streamId": 345,
        "UserStreamProviderID": person(0),
        "userStreamProviderType": "5",
        "Message": text(0),
        "content": "{}",
        "createdTime": time.strftime("%Y-%m-%dT%H:%M:%S.2581942Z", time.gmtime()),
        "type": 4,
    }
    page = json.dumps({"status": "200", "description": "OK", "data": [item]}).encode()
    empty = json.dumps({"status": "200", "description": "OK", "data": []}).encode()
    # Page 0 (after a 503), page 1 answering the same (a server counting from 1), page 2 empty,
    # then the object read back by id.
    _Scripted.answers = [(503, b"{}"), (200, page), (200, page), (200, empty), (200, page)]
    monkeypatch.setenv("COMMBOX_BASE_URL", f"http://127.0.0.1:{scripted.server_port}")
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("sent", 62824402)}
    paths = [path for path, _ in _Scripted.seen]
    assert paths[0] == paths[1]  # the 503 was retried: a read is safe to repeat
    assert paths[0].startswith("/streams/5fd0c1/objects?unixStartTime=")
    assert "pageSize=100" in paths[0]
    assert "sort=asc" in paths[0]
    assert [p.rsplit("pageNumber=", 1)[1] for p in paths[1:4]] == ["0", "1", "2"]
    assert paths[4] == "/streams/5fd0c1/objects/62824402"
    headers = _Scripted.seen[0][1]
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("commbox-yaml/")


def test_a_reply_over_1_mib_is_a_failed_read_and_the_key_stays_held(
    tmp_path: Path,
    server: SandboxServer,
    scripted: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make(tmp_path, count=1)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    server.script(Fault(drop=True))
    assert apply(root) == 1
    huge = b'{"data": [], "padding": "' + b"x" * (1 << 21) + b'"}'
    _Scripted.answers = [(200, huge)] * 2  # api.max_attempts: a lost reply is asked again
    monkeypatch.setenv("COMMBOX_BASE_URL", f"http://127.0.0.1:{scripted.server_port}")
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("unknown", None)}
    assert "the reply was longer than 1024 KiB" in reason(report, key(0))
    _Scripted.answers = [(200, b'{"data": {"objects": []}}')]
    report = reconcile_json(root, capsys)
    assert "gave no list of objects" in reason(report, key(0))


def test_lost_replies_do_not_use_up_the_client_s_connections(tmp_path: Path, scripted: Any) -> None:
    """A reply cut at the size cap closes its connection; its pool slot must come back, or
    the next request (here: the only slot, concurrency 1) waits forever."""
    root = make(tmp_path, count=1)
    huge = b"[" + b" " * (1 << 21) + b"]"
    _Scripted.answers = [(200, huge), (200, huge), (200, b'{"data": []}')]
    client = client_for(
        load_project(root).api, root, f"http://127.0.0.1:{scripted.server_port}", TOKEN
    )
    replies: list[Any] = []

    def read_three() -> None:
        replies.extend(Reader(client).get_json("/streams/s/objects") for _ in range(3))

    worker = threading.Thread(target=read_three, daemon=True)
    worker.start()
    worker.join(30)
    client.close()
    assert not worker.is_alive(), "the client ran out of connections"
    assert [r.status for r in replies] == [None, None, 200]
    assert "longer than 1024 KiB" in str(replies[0].error)


@pytest.mark.parametrize("listed_id", ["obj-ACCT-77123", "\u00b2", "", -3, 0, "12ab"])
def test_a_listed_id_that_is_not_commbox_s_is_never_recorded(
    tmp_path: Path,
    server: SandboxServer,
    scripted: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    listed_id: object,
) -> None:
    """The twin of a 2xx's id rule: a listing's object is recorded only with a CommBox id."""
    root = make(tmp_path, count=1)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    server.script(Fault(drop=True))
    assert apply(root) == 1
    item = {
        "objectId": listed_id,
        "userStreamProviderId": person(0),
        "type": 4,
        "message": text(0),
        "createdTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    page = json.dumps({"status": "200", "data": [item]}).encode()
    empty = json.dumps({"status": "200", "data": []}).encode()
    _Scripted.answers = [(200, page), (200, empty), (200, empty)]  # pages counted from 0
    monkeypatch.setenv("COMMBOX_BASE_URL", f"http://127.0.0.1:{scripted.server_port}")
    report = reconcile_json(root, capsys)
    assert results(report) == {key(0): ("unknown", None)}
    assert "no CommBox object id" in reason(report, key(0))
    assert "ACCT" not in ledger_path(root).read_text()
    assert states(root)[key(0)].status is KeyStatus.UNKNOWN
