"""apply against the sandbox over real sockets: every outcome of the sending rules,
re-runs, replaces, attachments, secrets, crashes, concurrent applies and signals."""

from __future__ import annotations

import collections
import json
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.projects import fanout
from tests.sending import apply, delivered, events, point_at, spawn, wait_until
from tests.sending import states as key_states

TOKEN = "tok-3f9a1c77e2b04d5e"

COMMBOX = """\
version: 1
api:
  concurrency: {concurrency}
  rate_per_s: 0
  timeout_s: {timeout}
  max_attempts: {attempts}
  max_retry_after_s: 1
streams:
  sms: 5fd0c1
vars: [vars/common.yaml]
sensitive: [pin]
"""

FANOUT = """\
name: notice
channel: sms
stream: sms
id: "notice-{{ version }}"
for_each: people
user_stream_provider_id: "972544444444"
message: "notice {{ version }} for {{ item }} (pin {{ pin }})"
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    point_at(monkeypatch, server.url, TOKEN)


def make(
    root: Path,
    count: int = 3,
    concurrency: int = 2,
    timeout: float = 5,
    attempts: int = 3,
    messages: str = FANOUT,
    extra: dict[str, str] | None = None,
) -> Path:
    commbox = COMMBOX.format(concurrency=concurrency, timeout=timeout, attempts=attempts)
    people = [f"p{n:03d}" for n in range(count)]
    return fanout(root, commbox, people, messages, "version: 1\npin: '80417'\n", extra)


def states(root: Path, name: str = "ledger.jsonl") -> dict[str, KeyStatus]:
    return {k: s.status for k, s in key_states(root, name).items()}


# -- the outcomes of SPEC section 6 ------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_2xx_is_sent_with_its_object_id_and_a_rerun_sends_nothing(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path)
    assert apply(tmp_path) == 0
    out = capsys.readouterr().out
    assert "Apply complete: 3 sent, 0 failed, 0 unknown." in out
    ids = {json.loads(json.dumps(r.data))["Message"]: r.object_id for r in server.accepted}
    assert len(ids) == 3
    recorded = {e["key"]: e["object_id"] for e in events(tmp_path) if e["event"] == "sent"}
    assert sorted(recorded.values()) == sorted(ids.values())
    assert set(recorded) == {"notice-1[p000]", "notice-1[p001]", "notice-1[p002]"}
    for request in server.received:
        assert request.headers["authorization"] != f"Bearer {TOKEN}"
    assert apply(tmp_path) == 0
    assert "No changes: nothing to send." in capsys.readouterr().out
    assert len(server.received) == 3


@pytest.mark.usefixtures("env")
def test_object_id_is_read_whatever_its_case(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=1)
    server.script(Fault(accept=True, id=4242, id_key="Id"))
    assert apply(tmp_path) == 0
    assert [e.get("object_id") for e in events(tmp_path) if e["event"] == "sent"] == [4242]


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("status", [429, 503])
def test_throttled_is_retried_then_sent(tmp_path: Path, server: SandboxServer, status: int):
    make(tmp_path, count=1)
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
    server.script(Fault(status=status, retry_after=0), Fault(status=status, retry_after=past))
    assert apply(tmp_path) == 0
    assert [r.status for r in server.received] == [status, status, 200]
    assert [e["event"] for e in events(tmp_path)] == [
        "pending",
        "retry",
        "pending",
        "retry",
        "pending",
        "sent",
    ]


@pytest.mark.usefixtures("env")
def test_retry_after_is_capped(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=1)
    server.script(Fault(status=429, retry_after=3600))
    started = time.monotonic()
    assert apply(tmp_path) == 0
    assert 0.9 < time.monotonic() - started < 5  # capped at api.max_retry_after_s: 1


@pytest.mark.usefixtures("env")
def test_when_the_attempts_run_out_it_failed_and_is_planned_again(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=1, attempts=3)
    server.script(*[Fault(status=429, retry_after=0)] * 3)
    assert apply(tmp_path) == 1
    assert "gave up after 3 attempts" in capsys.readouterr().out
    assert len(server.received) == 3
    assert states(tmp_path) == {"notice-1[p000]": KeyStatus.FAILED}
    assert apply(tmp_path) == 0
    assert len(server.accepted) == 1


@pytest.mark.usefixtures("env")
def test_connection_refused_is_retried_then_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("COMMBOX_BASE_URL", f"http://127.0.0.1:{port}")
    make(tmp_path, count=1, attempts=2)
    assert apply(tmp_path) == 1
    assert "could not connect" in capsys.readouterr().out
    assert [e["event"] for e in events(tmp_path)] == [
        "pending",
        "retry",
        "pending",
        "retry",
        "failed",
    ]
    assert states(tmp_path) == {"notice-1[p000]": KeyStatus.FAILED}


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("status", [400, 404, 422])
def test_4xx_failed_with_the_description_and_not_retried(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    make(tmp_path, count=1)
    server.script(Fault(status=status, description="Message is required"))
    assert apply(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"failed   notice[p000]  HTTP {status}: Message is required" in out
    assert "Apply complete: 0 sent, 1 failed, 0 unknown." in out
    assert len(server.received) == 1
    (failed,) = [e for e in events(tmp_path) if e["event"] == "failed"]
    assert (failed["status"], failed["description"]) == (status, "Message is required")


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_stop_everything(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    make(tmp_path, count=6, concurrency=1)
    server.script(Fault(status=status))
    assert apply(tmp_path) == 1
    out, err = capsys.readouterr()
    assert len(server.received) == 1
    assert "the API token was refused" in err
    assert "5 not sent" in out
    assert list(states(tmp_path).values()) == [KeyStatus.FAILED]
    assert TOKEN not in out + err


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_is_unknown_never_retried_and_held(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    make(tmp_path, count=1)
    server.script(Fault(status=status))
    assert apply(tmp_path) == 1
    assert "0 sent, 0 failed, 1 unknown" in capsys.readouterr().out
    assert len(server.received) == 1
    assert states(tmp_path) == {"notice-1[p000]": KeyStatus.UNKNOWN}
    assert apply(tmp_path) == 0  # held, not sent again
    assert len(server.received) == 1
    assert "  ? notice[p000]" in capsys.readouterr().out


@pytest.mark.usefixtures("env")
def test_read_timeout_is_unknown_and_not_retried(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=1, timeout=0.3)
    server.script(Fault(delay_s=1.0))
    assert apply(tmp_path) == 1
    assert server.wait_for(1)
    assert len(server.received) == 1
    assert states(tmp_path) == {"notice-1[p000]": KeyStatus.UNKNOWN}
    (unknown,) = [e for e in events(tmp_path) if e["event"] == "unknown"]
    assert "no reply within 0.3 s" in str(unknown["description"])


@pytest.mark.usefixtures("env")
def test_dropped_reply_is_unknown(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=1)
    server.script(Fault(drop=True))
    assert apply(tmp_path) == 1
    assert len(server.received) == 1
    assert states(tmp_path) == {"notice-1[p000]": KeyStatus.UNKNOWN}


# -- re-runs, changes, replaces ----------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_changed_is_held_until_replaced_and_a_new_id_sends_anew(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=2)
    assert apply(tmp_path) == 0
    message = tmp_path / "messages" / "notice.yaml"
    message.write_text(message.read_text().replace('"notice ', '"Notice '))
    capsys.readouterr()
    assert apply(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("  ~ notice[") == 2
    assert "changed  Message" in out
    assert len(server.received) == 2
    assert apply(tmp_path, "--replace", "notice-1[p001]") == 0
    assert len(server.received) == 3
    assert server.received[-1].data["Message"].startswith("Notice 1 for p001")  # type: ignore[index]
    assert main(["-C", str(tmp_path), "--var", "version=2", "apply", "--auto-approve"]) == 0
    assert len(server.received) == 5
    assert states(tmp_path)["notice-2[p000]"] is KeyStatus.SENT


@pytest.mark.usefixtures("env")
def test_send_always_sends_every_time(tmp_path: Path, server: SandboxServer) -> None:
    make(tmp_path, count=1, messages=FANOUT + "send: always\n")
    assert apply(tmp_path) == 0
    assert apply(tmp_path) == 0
    assert len(server.accepted) == 2


@pytest.mark.usefixtures("env")
def test_a_throttling_server_gets_everything_once(tmp_path: Path, server: SandboxServer) -> None:
    server.throttle_every = 3
    server.throttle_retry_after = 0
    make(tmp_path, count=30, concurrency=4, attempts=10)
    assert apply(tmp_path) == 0
    counts = delivered(server)
    assert len(counts) == 30
    assert set(counts.values()) == {1}
    assert any(r.status == 429 for r in server.received)
    assert all(s is KeyStatus.SENT for s in states(tmp_path).values())


@pytest.mark.usefixtures("env")
def test_attachments_arrive_byte_identical(tmp_path: Path, server: SandboxServer) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    csv = b"name,amount\r\nacme,12\r\n"
    email = (
        "name: report\nchannel: email\nstream: b9910a75a46c492c9cf46a910cdba0012\n"
        "user_stream_provider_id: ops@acme.example\nsubject: Report\n"
        "to: [dana@acme.example]\nmessage: attached\n"
        "attachments: [dist/report.pdf, data/figures.csv, {url: 'https://x.example/a', name: a}]\n"
    )
    make(tmp_path, messages=email, extra={"dist/report.pdf": pdf, "data/figures.csv": csv})
    assert apply(tmp_path) == 0
    (received,) = server.received
    assert [(f.filename, f.content_type, f.content) for f in received.files] == [
        ("report.pdf", "application/pdf", pdf),
        ("figures.csv", "text/csv", csv),
    ]
    assert received.data["Content"]["attachments"] == [  # type: ignore[index]
        {"path": "https://x.example/a", "name": "a"}
    ]


# -- approval, limits, plan files, sandbox ----------------------------------------------------


@pytest.mark.usefixtures("env")
def test_without_a_terminal_apply_needs_approval(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path)
    assert main(["-C", str(tmp_path), "apply"]) == 1
    assert "needs approval: pass --auto-approve" in capsys.readouterr().err
    assert server.received == []


@pytest.mark.usefixtures("env")
def test_max_sends_caps_an_apply_unless_allow_bulk(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=3)
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "limits: {max_sends: 2}\n")
    assert apply(tmp_path) == 1
    assert "over limits.max_sends (2); nothing was sent" in capsys.readouterr().err
    assert server.received == []
    assert apply(tmp_path, "--allow-bulk") == 0
    assert len(server.accepted) == 3


@pytest.mark.usefixtures("env")
def test_must_exist_refuses_a_missing_ledger(tmp_path: Path, server: SandboxServer, capsys):
    make(tmp_path)
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "ledger: {must_exist: true}\n")
    assert apply(tmp_path) == 1
    assert "is missing and ledger.must_exist is true: nothing was sent" in capsys.readouterr().err
    assert server.received == []
    assert main(["-C", str(tmp_path), "ledger", "init"]) == 0
    assert apply(tmp_path) == 0
    assert len(server.accepted) == 3


@pytest.mark.usefixtures("env")
def test_a_plan_file_is_sent_exactly_and_refused_when_the_ledger_moved(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=2)
    assert main(["-C", str(tmp_path), "plan", "-out", "a.plan", "--target", "notice[p000]"]) == 0
    assert main(["-C", str(tmp_path), "plan", "-out", "b.plan"]) == 0
    assert main(["-C", str(tmp_path), "apply", "a.plan"]) == 0
    assert [r.data["Message"][:17] for r in server.accepted] == ["notice 1 for p000"]  # type: ignore[index]
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "apply", "b.plan"]) == 1
    err = capsys.readouterr().err
    assert "is stale, nothing was sent" in err
    assert "the ledger changed for key notice-1[p000]" in err
    assert len(server.received) == 1
    plan_text = (tmp_path / "b.plan").read_text()
    assert "80417" not in plan_text
    assert TOKEN not in plan_text


def test_sandbox_apply_needs_no_token_and_keeps_its_own_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COMMBOX_API_TOKEN", raising=False)
    make(tmp_path)
    assert main(["-C", str(tmp_path), "apply", "--sandbox", "--auto-approve"]) == 0
    assert "Apply complete: 3 sent" in capsys.readouterr().out
    assert not (tmp_path / ".commbox" / "ledger.jsonl").exists()
    assert set(states(tmp_path, "sandbox-ledger.jsonl").values()) == {KeyStatus.SENT}
    assert main(["-C", str(tmp_path), "plan", "--sandbox", "--detailed-exitcode"]) == 0
    assert main(["-C", str(tmp_path), "plan", "--detailed-exitcode"]) == 2


@pytest.mark.usefixtures("env")
def test_json_results(tmp_path: Path, server: SandboxServer, capsys) -> None:
    make(tmp_path, count=2)
    server.script(Fault(status=502))
    assert main(["-C", str(tmp_path), "apply", "--auto-approve", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["summary"] == {
        "sent": 1, "failed": 0, "unknown": 1, "not_sent": 0, "taken": 0, "held": 0
    }  # fmt: skip
    outcomes = sorted(r["outcome"] for r in result["results"])
    assert outcomes == ["sent", "unknown"]


# -- secrets --------------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_the_token_and_sensitive_values_never_leak(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path, count=2)
    server.script(Fault(status=400, description=f"bad pin 80417 with {TOKEN}"))
    main(["-C", str(tmp_path), "plan", "-out", "p.plan"])
    main(["-C", str(tmp_path), "plan", "--json"])
    main(["-C", str(tmp_path), "plan", "--format", "markdown"])
    apply(tmp_path)
    main(["-C", str(tmp_path), "ledger", "list"])
    out, err = capsys.readouterr()
    stored = (tmp_path / ".commbox" / "ledger.jsonl").read_text()
    stored += (tmp_path / "p.plan").read_text()
    for text in (out, err, stored):
        assert TOKEN not in text
        assert "80417" not in text
    assert "(sensitive)" in out
    # only the requests themselves carry the value
    assert all("pin 80417" in str(r.data["Message"]) for r in server.received)  # type: ignore[index]


# -- crashes, concurrency, signals (real processes) -----------------------------------------


def test_kill_9_mid_run_then_apply_again_sends_nothing_twice(
    tmp_path: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.latency_ms = 60
    make(tmp_path, count=40, concurrency=4)
    child = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
    wait_until(lambda: len(server.received) >= 8)
    child.kill()
    child.communicate(timeout=20)
    assert child.returncode == -signal.SIGKILL
    time.sleep(0.2)  # let the sandbox finish the requests it was answering
    first_run = len(server.received)
    assert first_run < 40
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    assert apply(tmp_path) == 0
    counts = delivered(server)
    assert max(counts.values()) == 1, "a message was delivered twice"
    final = states(tmp_path)
    for n in range(40):
        text = f"notice 1 for p{n:03d} (pin 80417)"
        key = f"notice-1[p{n:03d}]"
        assert counts[text] == 1 or final[key] is KeyStatus.UNKNOWN, key
    unknown = [k for k, s in final.items() if s is KeyStatus.UNKNOWN]
    assert len(unknown) <= 4  # at most the requests in flight when it was killed


def test_a_second_apply_is_refused_while_one_runs(tmp_path: Path, server: SandboxServer) -> None:
    server.latency_ms = 400  # the first apply runs for about 2.4 s
    make(tmp_path, count=12, concurrency=2)
    first = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
    wait_until(lambda: len(server.received) >= 1)
    second = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
    _, err = second.communicate(timeout=20)
    assert second.returncode == 1
    assert "is locked by another apply (pid " in err
    assert f"pid {first.pid} on" in err
    first.communicate(timeout=30)
    assert first.returncode == 0
    counts = delivered(server)
    assert len(counts) == 12
    assert set(counts.values()) == {1}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_lets_requests_in_flight_finish_and_records_them(
    tmp_path: Path, server: SandboxServer, sig: signal.Signals, code: int
) -> None:
    server.latency_ms = 300
    make(tmp_path, count=20, concurrency=2)
    child = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
    wait_until(lambda: server.requests >= 1)
    child.send_signal(sig)
    out, err = child.communicate(timeout=20)
    assert child.returncode == code, err
    assert "Apply stopped:" in out
    assert "not sent." in out
    recorded = events(tmp_path)
    pending = collections.Counter(e["key"] for e in recorded if e["event"] == "pending")
    finished = collections.Counter(e["key"] for e in recorded if e["event"] != "pending")
    assert pending == finished, "a request in flight was not recorded"
    assert len(server.accepted) == len(pending) < 20


def test_the_token_is_never_sent_over_plain_http_to_another_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMBOX_BASE_URL", "http://api.commbox.example")
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    make(tmp_path, count=1)
    assert apply(tmp_path) == 1
    err = capsys.readouterr().err
    assert "refusing to send the API token to http://api.commbox.example: use https" in err
    assert events(tmp_path) == []


def test_tls_is_verified_and_a_bad_certificate_stops_the_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ssl
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handshakes: list[str] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)

        def serve() -> None:  # a self-signed server: the client must refuse it
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        handshakes.append("ok")
                        tls.recv(1)
                except (ssl.SSLError, OSError):
                    handshakes.append("refused")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        monkeypatch.setenv("COMMBOX_BASE_URL", f"https://127.0.0.1:{listener.getsockname()[1]}")
        monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
        make(tmp_path / "p", count=3, concurrency=1)
        assert apply(tmp_path / "p") == 1
        thread.join(10)
    out, err = capsys.readouterr()
    assert handshakes == ["refused"]
    assert "TLS failed" in err
    assert "CERTIFICATE_VERIFY_FAILED" in out + err
    assert "2 not sent" in out
    assert TOKEN not in out + err
