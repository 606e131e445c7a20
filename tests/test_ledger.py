"""The ledger: folding events into states, torn lines, the lock, forget."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import KeyStatus, Ledger
from tests.projects import SMS, project
from tests.sending import file_ledger


def _events(ledger: Ledger, *events: dict[str, object]) -> None:
    with ledger.locked():
        for event in events:
            ledger.append(event)


def test_fold_states(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    fp = {"fingerprint": "sha256:a", "fields": {"Message": "1"}}
    _events(
        ledger,
        {"event": "pending", "key": "sent", **fp},
        {"event": "sent", "key": "sent", "object_id": 7, "status": 200},
        {"event": "pending", "key": "crashed", **fp},
        {"event": "pending", "key": "timeout", **fp},
        {"event": "unknown", "key": "timeout", "description": "no reply"},
        {"event": "pending", "key": "bad", **fp},
        {"event": "failed", "key": "bad", "status": 400, "description": "Bad Request"},
        {"event": "pending", "key": "throttled", **fp},
        {"event": "retry", "key": "throttled", "status": 429},
        {"event": "pending", "key": "gone", **fp},
        {"event": "sent", "key": "gone", "object_id": 8},
        {"event": "forget", "key": "gone"},
    )
    view = ledger.read()
    assert view.entries == 12
    status = {k: s.status for k, s in view.states.items()}
    assert status == {
        "sent": KeyStatus.SENT,
        "crashed": KeyStatus.UNKNOWN,
        "timeout": KeyStatus.UNKNOWN,
        "bad": KeyStatus.FAILED,
        "throttled": KeyStatus.NONE,
        "gone": KeyStatus.NONE,
    }
    sent = view.states["sent"]
    assert (sent.object_id, sent.sent_fingerprint, sent.sent_fields) == (
        7,
        "sha256:a",
        {"Message": "1"},
    )
    assert view.state("never").status is KeyStatus.NONE


def test_a_replace_that_was_refused_keeps_the_earlier_send(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    _events(
        ledger,
        {"event": "pending", "key": "k", "fingerprint": "sha256:old"},
        {"event": "sent", "key": "k", "object_id": 1},
        {"event": "pending", "key": "k", "fingerprint": "sha256:new"},
        {"event": "retry", "key": "k", "status": 503},
    )
    state = ledger.read().states["k"]
    assert state.status is KeyStatus.SENT
    assert state.sent_fingerprint == "sha256:old"


def test_every_event_is_on_disk_when_append_returns(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    with ledger.locked():
        ledger.append({"event": "pending", "key": "a", "fingerprint": "sha256:x"})
        lines = ledger.path.read_text().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["key"] == "a"


def test_torn_last_line_is_ignored_with_a_warning_and_cut_before_appending(tmp_path: Path):
    ledger = file_ledger(tmp_path)
    _events(
        ledger,
        {"event": "pending", "key": "a", "fingerprint": "f"},
        {"event": "sent", "key": "a", "object_id": 1},
    )
    with ledger.path.open("ab") as handle:
        handle.write(b'{"v":1,"event":"pending","key":"b","finger')
    view = ledger.read()
    assert view.states["a"].status is KeyStatus.SENT
    assert "b" not in view.states
    assert len(view.warnings) == 1
    assert "torn last line" in view.warnings[0]
    _events(ledger, {"event": "pending", "key": "c", "fingerprint": "f"})
    view = ledger.read()
    assert view.warnings == ()
    assert sorted(view.states) == ["a", "c"]


def test_a_damaged_line_in_the_middle_is_an_error_not_silently_skipped(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    ledger.path.parent.mkdir()
    ledger.path.write_text('{"event":"sent","key":"a"}\nnot json\n{"event":"sent","key":"b"}\n')
    with pytest.raises(UserError, match="line 2 is not a valid ledger event"):
        ledger.read()


def _hold_lock(
    path: str, ready: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event
) -> None:
    ledger = Ledger(Path(path), "ledger.jsonl")
    with ledger.locked():
        ready.set()
        done.wait(10)


def test_a_second_holder_is_refused_at_once_naming_the_first(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(ledger.path), ready, done))
    holder.start()
    try:
        assert ready.wait(20)
        with pytest.raises(UserError) as caught, ledger.locked():
            pass
        message = str(caught.value)
        assert "is locked by another apply" in message
        assert f"pid {holder.pid} on " in message
    finally:
        done.set()
        holder.join(10)
    with ledger.locked():  # released when the holder ended
        pass


def test_ledger_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, SMS)
    assert main(["-C", str(tmp_path), "ledger", "list"]) == 1
    assert "no ledger" in capsys.readouterr().err
    assert main(["-C", str(tmp_path), "ledger", "init"]) == 0
    assert (tmp_path / ".commbox" / "ledger.jsonl").read_text() == ""
    _events(
        file_ledger(tmp_path),
        {"event": "pending", "key": "note", "fingerprint": "f", "fields": {"Message": "x"}},
        {"event": "sent", "key": "note", "object_id": 99},
    )
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "ledger", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 entries, 1 keys" in out
    assert "object 99" in out
    assert main(["-C", str(tmp_path), "ledger", "show", "note", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["object_id"], shown["fields"]) == ("sent", 99, ["Message"])
    assert main(["-C", str(tmp_path), "ledger", "forget", "nope"]) == 1
    assert main(["-C", str(tmp_path), "ledger", "forget", "note"]) == 0
    assert file_ledger(tmp_path).read().state("note").status is KeyStatus.NONE
    assert main(["-C", str(tmp_path), "ledger", "init"]) == 0
    assert "Already exists" in capsys.readouterr().out


def test_ledger_init_through_a_subprocess(tmp_path: Path) -> None:
    project(tmp_path, SMS)
    done = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(tmp_path), "ledger", "init"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".commbox" / "ledger.jsonl").exists()
