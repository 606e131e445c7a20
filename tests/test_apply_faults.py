"""Trying to break the promise: a re-run, a crash, a throttle or a lost reply must never send a
customer the same notice twice, and must never lose track of what was sent.

Everything runs over real sockets (the sandbox, or a small raw/TLS server), real processes
(kill -9, SIGTERM) and real files. A test marked xfail(strict=True) pins down a known limitation.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import FANOUT, fanout
from tests.sending import (
    apply,
    delivered,
    events,
    ledger_path,
    point_at,
    raw_server,
    read_request,
    self_signed,
    spawn,
    states,
    wait_until,
)

TOKEN = "tok-9d2e61b0c4a84f17"

COMMBOX = """\
version: 1
api:
  concurrency: {concurrency}
  rate_per_s: {rate}
  timeout_s: {timeout}
  max_attempts: {attempts}
  max_retry_after_s: {cap}
streams:
  sms: 5fd0c1
  email: b9910a75a46c492c9cf46a910cdba0012
vars: [vars/common.yaml]
"""


def make(
    root: Path,
    count: int = 3,
    concurrency: int = 2,
    rate: float = 0,
    timeout: float = 5,
    attempts: int = 3,
    cap: float = 1,
    messages: str = FANOUT,
    extra: dict[str, str | bytes] | None = None,
) -> Path:
    commbox = COMMBOX.format(
        concurrency=concurrency, rate=rate, timeout=timeout, attempts=attempts, cap=cap
    )
    return fanout(root, commbox, [f"p{n:03d}" for n in range(count)], messages, extra=extra)


def key(n: int) -> str:
    return f"notice-1[p{n:03d}]"


def text(n: int) -> str:
    return f"notice 1 for p{n:03d}"


def use(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    point_at(monkeypatch, url, TOKEN)


def object_ids(server: SandboxServer) -> dict[str, int]:
    return {str(r.data["Message"]): r.object_id for r in server.accepted if r.data and r.object_id}


def apply_until_stable(root: Path, server: SandboxServer, runs: int = 8) -> int:
    """Re-run apply (as a CI pipeline would) until a run sends nothing; how many runs it took."""
    for run in range(1, runs + 1):
        before = server.requests
        apply(root)
        if server.requests == before:
            return run
    raise AssertionError(f"apply still sent something after {runs} runs")


def assert_once_or_held(root: Path, server: SandboxServer, count: int) -> dict[str, KeyStatus]:
    """The promise, per message: delivered at most once; sent ones recorded with their object
    id; anything not recorded as sent is held as unknown, never silently dropped."""
    counts = delivered(server)
    ids = object_ids(server)
    final = states(root)
    result: dict[str, KeyStatus] = {}
    for n in range(count):
        assert counts[text(n)] <= 1, f"{text(n)} was delivered {counts[text(n)]} times"
        state = final.get(key(n))
        assert state is not None, f"{key(n)} is not in the ledger at all"
        result[key(n)] = state.status
        if counts[text(n)] == 1:
            assert state.status in (KeyStatus.SENT, KeyStatus.UNKNOWN), (key(n), state)
            if state.status is KeyStatus.SENT:
                assert state.object_id == ids[text(n)], "the ledger names another object"
        else:
            assert state.status is KeyStatus.UNKNOWN, f"{key(n)} not delivered, yet {state}"
    return result


def assert_no_dangling_pending(root: Path) -> None:
    """Every request that started (pending) was recorded with an outcome."""
    recorded = events(root)
    pending = collections.Counter(e["key"] for e in recorded if e["event"] == "pending")
    outcomes = collections.Counter(
        e["key"] for e in recorded if e["event"] in ("sent", "failed", "unknown", "retry")
    )
    assert pending == outcomes


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    use(monkeypatch, server.url)


# -- kill -9 at many moments --------------------------------------------------------------------

# (requests the sandbox has seen, extra delay): spread over the life of a request (before its
# pending, between pending and the request, in flight, between the reply and `sent`) and of
# the run (first request, middle, last ones, inside a 429 retry).
KILL_POINTS = [(1, 0.0), (2, 0.012), (3, 0.03), (5, 0.0), (7, 0.02), (10, 0.007), (13, 0.035)]
KILL_COUNT = 14


@dataclass
class _Run:
    root: Path
    server: SandboxServer
    child: subprocess.Popen[str]
    threshold: int
    extra: float
    fire_at: float | None = None
    killed: bool = False
    out: tuple[str, str] = ("", "")


def test_kill_9_at_many_moments_never_doubles_and_never_loses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[_Run] = []
    with contextlib.ExitStack() as stack:
        for index, (threshold, extra) in enumerate(KILL_POINTS):
            server = stack.enter_context(
                SandboxServer(latency_ms=25, throttle_every=4, throttle_retry_after=0)
            )
            root = make(tmp_path / f"run{index}", count=KILL_COUNT, concurrency=3, attempts=6)
            args = ["--auto-approve"]
            if index % 2:  # half of them apply a saved plan file
                use(monkeypatch, server.url)  # a plan file is for one destination
                assert main(["-C", str(root), "plan", "-out", "p.plan"]) == 0
                args = ["p.plan"]
            runs.append(_Run(root, server, spawn(root, server.url, TOKEN, *args), threshold, extra))
        waiting = list(runs)
        deadline = time.monotonic() + 30
        while waiting:
            assert time.monotonic() < deadline, "timed out"
            for run in list(waiting):
                if run.child.poll() is not None:
                    waiting.remove(run)
                elif run.server.requests >= run.threshold:
                    run.fire_at = run.fire_at or time.monotonic() + run.extra
                    if time.monotonic() >= run.fire_at:
                        run.child.kill()
                        run.killed = True
                        waiting.remove(run)
            time.sleep(0.001)
        for run in runs:
            run.out = run.child.communicate(timeout=20)
        assert sum(run.child.returncode == -signal.SIGKILL for run in runs) >= len(runs) - 2
        time.sleep(0.2)  # the sandbox answers what was in flight (latency 25 ms)
        for run in runs:
            use(monkeypatch, run.server.url)
            apply_until_stable(run.root, run.server)
            final = assert_once_or_held(run.root, run.server, KILL_COUNT)
            unknown = [k for k, s in final.items() if s is KeyStatus.UNKNOWN]
            assert len(unknown) <= 3, f"more unknowns than requests in flight: {unknown}"
            if not run.killed:
                assert run.child.returncode in (0, 1), run.out[1]


# -- signals during a backoff ---------------------------------------------------------------------


@pytest.mark.parametrize("why", ["429", "refused"])
def test_sigterm_during_a_backoff_stops_at_once_and_records_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    with SandboxServer() as server:
        if why == "429":  # Retry-After 30 s: the apply would wait that long
            make(tmp_path, count=4, concurrency=2, attempts=5, cap=60)
            server.script(Fault(status=429, retry_after=30))
            url = server.url
        else:  # nothing listens: connection refused, exponential backoff
            make(tmp_path, count=4, concurrency=2, attempts=12)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        child = spawn(tmp_path, url, TOKEN, "--auto-approve")
        retries = 1 if why == "429" else 4
        wait_until(lambda: ledger_path(tmp_path).exists() and _count(tmp_path, "retry") >= retries)
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=20)
        assert child.returncode == 143, err
        assert time.monotonic() - started < 8, "SIGTERM waited for the backoff to end"
        assert "Apply stopped:" in out
        assert_no_dangling_pending(tmp_path)
        assert all(s.status is not KeyStatus.UNKNOWN for s in states(tmp_path).values())
        use(monkeypatch, server.url)
        assert apply(tmp_path) == 0
        counts = delivered(server)
        assert [counts[text(n)] for n in range(4)] == [1, 1, 1, 1]
        assert all(s.status is KeyStatus.SENT for s in states(tmp_path).values())


def _count(root: Path, event: str) -> int:
    return ledger_path(root).read_text().count(f'"event":"{event}"')


# -- throttling: Retry-After, storms, every worker slowed -------------------------------------


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("retry_after", ["-5", "garbage", "nan", "", "0.05", "1e999"])
def test_odd_retry_after_values_are_retried_and_sent_once(
    tmp_path: Path, server: SandboxServer, retry_after: str
) -> None:
    make(tmp_path, count=1, cap=0.2)
    server.script(Fault(status=429, headers={"Retry-After": retry_after}))
    started = time.monotonic()
    assert apply(tmp_path) == 0
    assert time.monotonic() - started < 5
    assert [r.status for r in server.received] == [429, 200]
    assert [e["event"] for e in events(tmp_path)] == ["pending", "retry", "pending", "sent"]


@pytest.mark.usefixtures("env")
def test_a_retry_after_date_that_overflows_is_still_a_retry(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=2, concurrency=1)
    huge = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"
    server.script(Fault(status=429, headers={"Retry-After": huge}))
    code = apply(tmp_path)
    assert [s.status for s in states(tmp_path).values()] == [KeyStatus.SENT, KeyStatus.SENT]
    assert code == 0


@pytest.mark.usefixtures("env")
def test_a_429_pauses_every_worker_until_its_http_date(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=12, concurrency=4, cap=10)
    until = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    # The first request is throttled; the three other workers' requests are in flight
    # (answered after 0.3 s) when the 429 arrives.
    when = format_datetime(until, usegmt=True)
    server.script(Fault(status=429, retry_after=when), *[Fault(delay_s=0.3)] * 3)
    assert apply(tmp_path) == 0
    received = server.received
    (throttled,) = [r for r in received if r.status == 429]
    early = [r for r in received if throttled.time < r.time < until - timedelta(seconds=0.05)]
    # Only the requests already in flight may land before the pause ends: not one new start.
    assert len(early) <= 3, [(r.time - throttled.time).total_seconds() for r in early]
    counts = delivered(server)
    assert [counts[text(n)] for n in range(12)] == [1] * 12


@pytest.mark.usefixtures("env")
def test_a_429_storm_with_8_workers_delivers_everything_once(
    tmp_path: Path, server: SandboxServer
) -> None:
    server.throttle_every = 2
    server.throttle_retry_after = 0
    server.latency_ms = 2
    make(tmp_path, count=48, concurrency=8, attempts=40)
    assert apply(tmp_path) == 0
    assert server.count(status=429) >= 40
    final = assert_once_or_held(tmp_path, server, 48)
    assert set(final.values()) == {KeyStatus.SENT}
    assert sum(delivered(server).values()) == 48
    assert_no_dangling_pending(tmp_path)


@pytest.mark.usefixtures("env")
def test_every_fault_at_once_then_reruns_until_stable(
    tmp_path: Path, server: SandboxServer
) -> None:
    """429s, 5xx, dropped connections and replies lost after the object was created, on one
    server; a CI pipeline re-runs apply until nothing is left to send."""
    count = 40
    make(tmp_path, count=count, concurrency=4, attempts=8, timeout=0.4)
    server.throttle_every, server.throttle_retry_after = 3, 0
    server.fail_every, server.drop_every = 5, 7
    # The first two requests create their object but answer after the client gave up.
    server.script(Fault(delay_s=0.8), Fault(delay_s=0.8))
    statuses = [500, 503, 502, 504]
    for run in range(8):
        server.fail_status = statuses[run % 4]
        before = server.requests
        apply(tmp_path)
        if server.requests == before:
            break
    else:
        pytest.fail("never stable")
    time.sleep(0.5)  # the slow answers are recorded when their delay ends
    final = assert_once_or_held(tmp_path, server, count)
    assert_no_dangling_pending(tmp_path)
    held = sorted(k for k, s in final.items() if s is KeyStatus.UNKNOWN)
    assert 0 < len(held) < count
    assert {r.outcome for r in server.received} >= {"accepted", "dropped", "throttled", "failed"}
    # The reply-lost ones did reach CommBox: held, never re-sent by a re-run.
    counts = delivered(server)
    reached = [k for k in held if counts[text(int(k[-4:-1]))] == 1]
    assert len(reached) >= 2  # a load-induced timeout may add one
    # A person checks CommBox and replaces only what did not arrive: then all arrive once.
    server.throttle_every = server.fail_every = server.drop_every = 0
    missing = [k for k in held if k not in reached]
    replace = [arg for k in missing for arg in ("--replace", k)]
    assert apply(tmp_path, *replace) == 0
    counts = delivered(server)
    assert [counts[text(n)] for n in range(count)] == [1] * count
    assert apply_until_stable(tmp_path, server) == 1


# -- plan files ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("always", [False, True])
def test_a_plan_file_applied_twice_sends_once(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], always: bool
) -> None:
    make(tmp_path, count=3, messages=FANOUT + ("send: always\n" if always else ""))
    assert main(["-C", str(tmp_path), "plan", "-out", "p.plan"]) == 0
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 0
    assert len(server.accepted) == 3
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 1
    assert "is stale, nothing was sent" in capsys.readouterr().err
    assert len(server.received) == 3


@pytest.mark.usefixtures("env")
def test_ledger_deleted_between_plan_out_and_apply(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=3)
    assert apply(tmp_path, "--target", "notice[p000]") == 0
    assert main(["-C", str(tmp_path), "plan", "-out", "p.plan"]) == 0  # = + +
    ledger_path(tmp_path).unlink()
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 1
    err = capsys.readouterr().err
    assert "is stale, nothing was sent" in err
    assert "the ledger changed for key notice-1[p000]" in err
    assert len(server.received) == 1
    # With ledger.must_exist the pipeline cannot even plan around a lost ledger.
    ledger_path(tmp_path).unlink()  # the refused apply left an empty one
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "ledger: {must_exist: true}\n")
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 1
    assert "ledger.must_exist is true: nothing was sent" in capsys.readouterr().err
    assert len(server.received) == 1


@pytest.mark.usefixtures("env")
def test_a_plan_file_made_on_a_fresh_ledger_is_not_replayed_after_losing_it(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Planned against an empty ledger, every key's digest is the empty one: were the ledger
    # lost after the apply, the same plan would look fresh again. ledger.must_exist (and a
    # `ledger init` for the first run) is what stops that replay.
    make(tmp_path, count=2)
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "ledger: {must_exist: true}\n")
    assert main(["-C", str(tmp_path), "ledger", "init"]) == 0
    assert main(["-C", str(tmp_path), "plan", "-out", "p.plan"]) == 0
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 0
    ledger_path(tmp_path).unlink()
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 1
    assert "ledger.must_exist is true: nothing was sent" in capsys.readouterr().err
    assert len(server.received) == 2


@pytest.mark.usefixtures("env")
def test_a_plan_file_fixes_target_and_replace(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=3)
    server.script(Fault(status=502))
    assert apply(tmp_path, "--target", "notice[p001]") == 1
    assert states(tmp_path)[key(1)].status is KeyStatus.UNKNOWN
    plan = ["-C", str(tmp_path), "plan", "-out", "p.plan"]
    assert main([*plan, "--target", "notice[p001]", "--replace", key(1)]) == 0
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "apply", "p.plan", "--target", "notice[p000]"]) == 1
    assert "a plan file already fixes --target and --replace" in capsys.readouterr().err
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 0
    assert [r.data["Message"] for r in server.received] == [text(1), text(1)]  # type: ignore[index]
    assert main(["-C", str(tmp_path), "apply", "p.plan"]) == 1  # the replace is spent
    assert len(server.received) == 2


# -- --target and --replace ---------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_target_and_replace_combinations(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=3)
    # A replace outside the targets names no key of the plan: refused, nothing sent.
    assert apply(tmp_path, "--target", "notice[p000]", "--replace", key(1)) == 1
    assert "names no message key" in capsys.readouterr().err
    assert server.received == []
    assert not ledger_path(tmp_path).exists() or events(tmp_path) == []
    server.script(Fault(drop=True))
    assert apply(tmp_path, "--target", "notice[p001]") == 1
    assert apply(tmp_path, "--target", "notice[p001]") == 0  # held
    assert apply(tmp_path, "--target", "notice") == 0  # the others; p001 still held
    assert len(server.received) == 3
    # The same key replaced twice in one apply is still one request.
    assert apply(tmp_path, "--replace", key(1), "--replace", key(1)) == 0
    assert len(server.received) == 4
    counts = delivered(server)
    assert [counts[text(n)] for n in range(3)] == [1, 1, 1]
    assert apply(tmp_path) == 0
    assert len(server.received) == 4


@pytest.mark.usefixtures("env")
def test_a_refused_replace_then_a_revert_does_not_send_the_first_content_again(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=1)
    assert apply(tmp_path) == 0  # "notice 1 for p000" delivered
    message = tmp_path / "messages" / "notice.yaml"
    original = message.read_text()
    message.write_text(original.replace('"notice ', '"Notice '))
    server.script(Fault(status=400, description="Message rejected"))
    assert apply(tmp_path, "--replace", key(0)) == 1  # the new content is refused
    message.write_text(original)  # back to what CommBox already has
    apply(tmp_path)
    assert delivered(server)[text(0)] == 1, "the same notice was delivered twice"


@pytest.mark.usefixtures("env")
def test_ledger_forget_then_apply_sends_that_key_once_more(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=3)
    assert apply(tmp_path) == 0
    assert main(["-C", str(tmp_path), "ledger", "forget", key(1)]) == 0
    assert apply(tmp_path) == 0
    assert apply(tmp_path) == 0
    counts = delivered(server)
    assert [counts[text(n)] for n in range(3)] == [1, 2, 1]  # forget is the explicit resend
    ids = [r.object_id for r in server.accepted if r.data and r.data["Message"] == text(1)]
    assert states(tmp_path)[key(1)].object_id == ids[-1]


# -- the ledger file ----------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_torn_last_lines_then_apply(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=3)
    assert apply(tmp_path, "--target", "notice[p000]") == 0
    # p001: crashed after the request went out, mid-way through writing `sent`.
    pending = {"v": 1, "event": "pending", "key": key(1), "fingerprint": "sha256:x"}
    with ledger_path(tmp_path).open("a") as handle:
        handle.write(json.dumps(pending) + "\n")
        handle.write('{"v":1,"event":"sent","key":"notice-1[p001]","object_id":29')
    assert apply(tmp_path) == 0
    counts = delivered(server)
    assert [counts[text(n)] for n in range(3)] == [1, 0, 1]
    assert states(tmp_path)[key(1)].status is KeyStatus.UNKNOWN
    assert all(line for line in ledger_path(tmp_path).read_text().split("\n")[:-1])
    events(tmp_path)  # every line is JSON again
    # p002 now: crashed mid-way through writing `pending` (its request never went out).
    assert main(["-C", str(tmp_path), "ledger", "forget", key(2)]) == 0
    with ledger_path(tmp_path).open("a") as handle:
        handle.write('{"v":1,"event":"pending","key":"notice-1[p002]","fingerp')
    assert apply(tmp_path) == 0
    assert delivered(server)[text(2)] == 2  # forgotten, so sent once more
    assert apply(tmp_path) == 0
    assert len(server.received) == 3


@pytest.mark.usefixtures("env")
def test_a_complete_last_event_without_its_newline_is_kept(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=1)
    assert apply(tmp_path) == 0
    path = ledger_path(tmp_path)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # e.g. an editor or a merge tool
    object_id = server.accepted[0].object_id
    assert states(tmp_path)[key(0)].object_id == object_id  # read() still sees it
    assert main(["-C", str(tmp_path), "plan", "-out", "p.plan"]) == 0
    assert "  = notice[p000]" in capsys.readouterr().out
    apply(tmp_path)
    assert states(tmp_path)[key(0)].status is KeyStatus.SENT
    assert states(tmp_path)[key(0)].object_id == object_id


def test_two_applies_from_different_directories_share_one_lock(tmp_path: Path) -> None:
    with SandboxServer(latency_ms=150) as server:
        root = make(tmp_path / "project", count=10, concurrency=2)
        (tmp_path / "link").symlink_to(root)
        first = spawn(root, server.url, TOKEN, "--auto-approve")
        second = spawn(tmp_path / "link" / "messages", server.url, TOKEN, "--auto-approve")
        results = [first.communicate(timeout=30), second.communicate(timeout=30)]
        codes = [first.returncode, second.returncode]
        assert 0 in codes, results
        for code, (_, err) in zip(codes, results, strict=True):
            # "(pid N)", or "(process unknown: ... was removed)" when the holder was finishing
            assert code == 0 or "is locked by another apply (" in err, err
        counts = delivered(server)
        assert [counts[text(n)] for n in range(10)] == [1] * 10


@pytest.mark.usefixtures("env")
def test_a_failed_ledger_forget_does_not_satisfy_must_exist(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=2)
    assert apply(tmp_path) == 0
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "ledger: {must_exist: true}\n")
    ledger_path(tmp_path).unlink()  # the CI cache missed
    assert main(["-C", str(tmp_path), "ledger", "forget", key(0)]) == 1  # "no key"
    apply(tmp_path)
    assert len(server.received) == 2, "a lost ledger let everything be sent again"


@pytest.mark.usefixtures("env")
def test_apply_warns_about_the_torn_line_it_cuts(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=1)
    ledger_path(tmp_path).parent.mkdir()
    ledger_path(tmp_path).write_text('{"v":1,"event":"pending","key":"notice-1[p000]","fi')
    assert apply(tmp_path) == 0
    assert "torn last line" in capsys.readouterr().err


# -- odd answers: 2xx without an id, 3xx, bodies that are not JSON -----------------------------


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("fault", "object_id"),
    [
        (Fault(status=200, body=b'{"status": "200", "description": "OK"}'), None),
        (Fault(status=201, body=b"<html>created</html>"), None),
        (Fault(status=202, body=b""), None),
        (Fault(status=204, body=b""), None),
        (Fault(accept=True, body=b'{"data": {}}'), None),
        (Fault(accept=True, body=b'{"data": {"ID": 77}}'), 77),
        (Fault(accept=True, body=b'{"data": {"Id": "294159"}}'), 294159),
        (Fault(accept=True, body=b'{"data": [1, 2]}'), None),
        (Fault(accept=True, body=b"\xff\xfe not utf-8"), None),
    ],
)
def test_a_2xx_is_sent_only_with_an_object_id_and_never_sent_again(
    tmp_path: Path, server: SandboxServer, fault: Fault, object_id: object
) -> None:
    """A 2xx without a readable object id (a proxy's page, a 204) is a guess, not a fact."""
    make(tmp_path, count=1)
    server.script(fault)
    assert apply(tmp_path) == (0 if object_id is not None else 1)
    state = states(tmp_path)[key(0)]
    if object_id is None:
        assert state.status is KeyStatus.UNKNOWN
        assert "without an object id" in str(state.description)
    else:
        assert (state.status, state.object_id) == (KeyStatus.SENT, object_id)
    apply(tmp_path)
    assert main(["-C", str(tmp_path), "ledger", "list"]) == 0
    assert len(server.received) == 1


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("status", [400, 409, 422])
def test_a_4xx_with_an_html_body_is_failed_then_sent_once(
    tmp_path: Path, server: SandboxServer, status: int
) -> None:
    make(tmp_path, count=1)
    server.script(Fault(status=status, body=b"<html><body>nope</body></html>"))
    assert apply(tmp_path) == 1
    assert states(tmp_path)[key(0)].status is KeyStatus.FAILED
    assert states(tmp_path)[key(0)].description  # the reason phrase stands in
    assert apply(tmp_path) == 0
    assert apply(tmp_path) == 0
    assert len(server.received) == 2
    assert len(server.accepted) == 1


@pytest.mark.usefixtures("env")
def test_a_3xx_is_held_not_sent_again(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=1)
    server.script(Fault(status=303, headers={"Location": "/streams/5fd0c1/objects/294159"}))
    apply(tmp_path)
    apply(tmp_path)
    assert len(server.received) == 1, "the POST went out again after a 303"


# -- a raw server: resets, cut bodies, garbage, TLS trouble after the request ---------------------


def _reset_after_the_headers(sock: socket.socket, received: list[bytes]) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1024)
    received.append(data)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


def _answer(raw: bytes) -> Callable[[socket.socket, list[bytes]], None]:
    def handler(sock: socket.socket, received: list[bytes]) -> None:
        received.append(read_request(sock))
        sock.sendall(raw)

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        _reset_after_the_headers,
        _answer(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"data": {"id"'),
        _answer(b"HELLO THERE\r\n\r\n"),
        _answer(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{"data"'),
        _answer(b""),
    ],
    ids=["reset-while-sending-the-body", "2xx-cut-short", "garbage", "chunk-cut-short", "closed"],
)
def test_trouble_after_the_request_went_out_is_unknown_and_held(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    handler: Callable[[socket.socket, list[bytes]], None],
) -> None:
    big = os.urandom(3 * 1024 * 1024)  # still being sent when the server resets
    email = (
        "name: report\nchannel: email\nstream: email\nuser_stream_provider_id: ops@acme.example\n"
        "subject: Report\nto: [dana@acme.example]\nmessage: attached\nattachments: [big.bin]\n"
    )
    make(tmp_path, count=1, messages=email, extra={"big.bin": big})
    with raw_server(handler) as server:
        use(monkeypatch, server.url)
        assert apply(tmp_path) == 1
        assert states(tmp_path)["report"].status is KeyStatus.UNKNOWN
        assert apply(tmp_path) == 0
        assert len(server.received) == 1


@pytest.fixture
def trusted_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE)."""
    cert, key_file = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key_file


@pytest.mark.parametrize("garbage", [False, True], ids=["clean", "bad-record-after-request"])
def test_a_tls_error_after_the_request_went_out(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trusted_cert: tuple[Path, Path],
    garbage: bool,
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*trusted_cert)
    reply = b'{"data": {"id": 5}}'

    def handler(sock: socket.socket, received: list[bytes]) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            received.append(read_request(tls))
            if garbage:  # an unencrypted, undecryptable record under the TLS layer
                socket.socket.sendall(tls, b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
            else:
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(reply)}\r\n"
                tls.sendall(head.encode() + b"Connection: close\r\n\r\n" + reply)
            with contextlib.suppress(OSError):
                tls.recv(1)

    make(tmp_path / "p", count=1)
    with raw_server(handler) as server:
        use(monkeypatch, server.url.replace("http:", "https:"))
        apply(tmp_path / "p")
        assert len(server.received) == 1  # the handshake was trusted, the request arrived
        apply(tmp_path / "p")
        assert len(server.received) == 1, "the request was sent again"
        assert states(tmp_path / "p")[key(0)].status in (KeyStatus.SENT, KeyStatus.UNKNOWN)


def _silent(sock: socket.socket, received: list[bytes]) -> None:
    received.append(b"")  # a connection, and then not one byte: no TLS handshake
    with contextlib.suppress(OSError):
        while sock.recv(1024):
            pass


def test_a_tls_handshake_timeout_is_retried_not_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(tmp_path, count=1, timeout=0.3, attempts=2)
    with raw_server(_silent) as server:
        use(monkeypatch, server.url.replace("http:", "https:"))
        assert apply(tmp_path) == 1
        assert states(tmp_path)[key(0)].status is KeyStatus.FAILED
        assert len(server.received) == 2


# -- unicode ------------------------------------------------------------------------------------

UNICODE = """\
name: hodaa
channel: email
stream: email
id: "מבצע-{{ item }}-☃"
for_each: [דנה, "Zoë", "🙂"]
user_stream_provider_id: ops@acme.example
subject: "שלום {{ item }} — ünïcödé ✓"
to: [dana@acme.example]
message: "Hi {{ item }}: e\\u0301 \\u202e RTL \\u202c 🚀 \\u0000-free, 日本語"
attachments: ["files/חשבונית €.pdf", "files/naïve ☃ notes.txt"]
"""


@pytest.mark.usefixtures("env")
def test_unicode_everywhere_is_sent_once_and_recorded(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf, notes = b"%PDF-1.4 \x00\xff", "naïve ☃\n".encode()
    make(
        tmp_path,
        messages=UNICODE,
        extra={"files/חשבונית €.pdf": pdf, "files/naïve ☃ notes.txt": notes},
    )
    server.script(Fault(status=429, retry_after=0), Fault(drop=True))
    assert apply(tmp_path) == 1
    assert apply(tmp_path) == 0
    final = states(tmp_path)
    assert sorted(final) == sorted(f"מבצע-{who}-☃[{who}]" for who in ("דנה", "Zoë", "🙂"))
    assert sorted(s.status.value for s in final.values()) == ["sent", "sent", "unknown"]
    for received in server.accepted:
        assert [(f.filename, f.content) for f in received.files] == [
            ("חשבונית €.pdf", pdf),
            ("naïve ☃ notes.txt", notes),
        ]
        assert received.data is not None
        assert "🚀" in received.data["Message"]
    assert len(server.accepted) == 2
    assert len(server.received) == 4  # 429, dropped, two accepted
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "ledger", "list"]) == 0
    assert "מבצע-Zoë-☃[Zoë]" in capsys.readouterr().out
    ledger_path(tmp_path).read_bytes().decode("utf-8")


# -- pace ---------------------------------------------------------------------------------------


def _busiest_second(times: list[datetime]) -> int:
    moments = sorted(t.timestamp() for t in times)
    best, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.usefixtures("env")
def test_rate_per_s_holds_in_every_second_with_8_workers_and_throttling(
    tmp_path: Path, server: SandboxServer
) -> None:
    rate, count = 40, 100
    server.throttle_every, server.throttle_retry_after = 9, 0
    make(tmp_path, count=count, concurrency=8, rate=rate, attempts=10)
    started = time.monotonic()
    assert apply(tmp_path) == 0
    elapsed = time.monotonic() - started
    received = server.received
    assert len(received) > count  # the 429s count against the rate too
    assert elapsed > (len(received) - 1) / rate * 0.9
    # Slots are 1/rate apart (measured: rate + 1 at most). A worker stalled past its reserved
    # slot fires late, so under heavy load up to `concurrency` may bunch: that is the bound.
    assert _busiest_second([r.time for r in received]) <= rate + 8
    counts = delivered(server)
    assert [counts[text(n)] for n in range(count)] == [1] * count


# -- output trouble -----------------------------------------------------------------------------


def test_a_closed_stdout_does_not_kill_the_send_workers(tmp_path: Path) -> None:
    make(tmp_path, count=6, concurrency=2)
    with SandboxServer(latency_ms=250) as server:  # still sending when stdout closes
        child = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("Plan:"):
                break
        child.stdout.close()  # e.g. `commbox-yaml apply ... | head -20`
        _, err = child.communicate(timeout=20)
        assert_no_dangling_pending(tmp_path)  # holds: the ledger is written first
        assert "Traceback" not in err, err
