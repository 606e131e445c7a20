"""The file ledger under attack: a deleted lock file, a lost lock race, a ledger that cannot be
written (read-only, a folder, a full disk), and a ledger path that is the sandbox's.

Applies run as real processes against the in-process sandbox; the file system is real. A full
disk is a file size limit (RLIMIT_FSIZE: writes past it fail with EFBIG), and a read-only
ledger stays read-only for root because the process drops the capability to override it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import FileLedger, KeyStatus
from commbox_yaml.sandbox import SandboxServer
from tests.ledgers import TOKEN, key, make
from tests.sending import apply, delivered, events, ledger_path, spawn, wait_until

# Runs the CLI after limiting the largest file it may write and, for root, dropping the
# capabilities that let root write where the permission bits say no.
RESTRICTED = """\
import ctypes, os, resource, sys
limit, drop = int(sys.argv[1]), sys.argv[2] == "1"
if limit >= 0:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if drop and os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.executable, [sys.executable, "-m", "commbox_yaml", *sys.argv[3:]])
"""


def restricted(
    root: Path, server: SandboxServer, *args: str, fsize: int = -1, read_only: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": TOKEN}
    command = [sys.executable, "-c", RESTRICTED, str(fsize), "1" if read_only else "0"]
    return subprocess.run(
        [*command, "-C", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_clear_line(stderr: str) -> str:
    """The error apply printed: a single line, no traceback, no 'internal error'."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    return errors[0]


# -- the lock ---------------------------------------------------------------------------------


def test_deleting_the_lock_file_never_lets_a_second_apply_run(tmp_path: Path) -> None:
    with SandboxServer(latency_ms=300) as server:  # the first apply runs for about 3.6 s
        make(tmp_path, count=24, concurrency=2)
        first = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
        wait_until(lambda: len(server.received) >= 1)
        holder = ledger_path(tmp_path).with_name("ledger.jsonl.lock")
        assert json.loads(holder.read_text())["pid"] == first.pid
        holder.unlink()  # "fixing" the lock
        second = spawn(tmp_path, server.url, TOKEN, "--auto-approve")
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1, err
        assert "is locked by another apply" in one_clear_line(err)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        counts = delivered(server)
        assert len(counts) == 24
        assert set(counts.values()) == {1}, "a message went out twice"


def test_the_ledger_replaced_while_locking_is_locked_where_it_now_is(tmp_path: Path) -> None:
    make(tmp_path)
    ledger = FileLedger(ledger_path(tmp_path), "ledger.jsonl")
    with ledger.locked():
        ledger.append({"event": "pending", "key": "a", "fingerprint": "f"})
    # A restored copy (a CI cache) moved over the ledger while another apply holds the old one.
    with ledger.locked():
        copy = ledger.path.with_name("copy.jsonl")
        copy.write_bytes(ledger.path.read_bytes())
        copy.replace(ledger.path)
        other = FileLedger(ledger.path, "ledger.jsonl")
        with other.locked():  # the new file is free: this is a different ledger file now
            pass
        with pytest.raises(UserError, match="was deleted while apply was running"):
            ledger.append({"event": "sent", "key": "a", "object_id": 1})


def test_an_apply_that_loses_the_race_leaves_the_holders_information(tmp_path: Path) -> None:
    holder = FileLedger(ledger_path(tmp_path), "ledger.jsonl")
    with holder.locked():
        info = holder.holder_path.read_text()
        assert json.loads(info)["pid"] == os.getpid()
        for _ in range(2):
            with pytest.raises(UserError) as refused, FileLedger(holder.path, "x").locked():
                pass
            assert f"pid {os.getpid()} on " in str(refused.value)
            assert holder.holder_path.read_text() == info, "the loser wiped the holder's info"
    assert not holder.holder_path.exists()  # the holder cleans up after itself
    with FileLedger(holder.path, "x").locked():
        pass


def test_a_lock_whose_information_was_removed_is_still_refused(tmp_path: Path) -> None:
    holder = FileLedger(ledger_path(tmp_path), "ledger.jsonl")
    with holder.locked():
        holder.holder_path.unlink()
        refused = pytest.raises(UserError, match=r"another apply \(process unknown: ledger")
        with refused, FileLedger(holder.path, "x").locked():
            pass


# -- a ledger that cannot be written ------------------------------------------------------------


def test_a_read_only_ledger_file_stops_apply_before_anything_is_sent(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path)
    ledger_path(tmp_path).parent.mkdir()
    ledger_path(tmp_path).write_text("")
    ledger_path(tmp_path).chmod(0o444)
    done = restricted(tmp_path, server, "apply", "--auto-approve", read_only=True)
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    assert "cannot write to the ledger .commbox/ledger.jsonl (Permission denied)" in line
    assert "make the ledger and its folder writable" in line
    assert server.received == []


def test_a_read_only_ledger_folder_stops_apply_before_anything_is_sent(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path)
    folder = ledger_path(tmp_path).parent
    folder.mkdir()
    folder.chmod(0o555)
    try:
        done = restricted(tmp_path, server, "apply", "--auto-approve", read_only=True)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 1
    assert "(Permission denied)" in one_clear_line(done.stderr)
    assert server.received == []
    assert not ledger_path(tmp_path).exists()


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"], ["ledger", "init"]])
def test_a_ledger_path_that_is_a_folder(
    tmp_path: Path, server: SandboxServer, command: list[str]
) -> None:
    make(tmp_path)
    ledger_path(tmp_path).mkdir(parents=True)
    done = restricted(tmp_path, server, *command)
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    assert "the ledger .commbox/ledger.jsonl is a folder" in line
    assert "ledger.path must name a file" in line
    assert server.received == []


def test_a_full_disk_at_the_first_pending_sends_nothing(
    tmp_path: Path, server: SandboxServer
) -> None:
    make(tmp_path, count=3, concurrency=2)
    done = restricted(tmp_path, server, "apply", "--auto-approve", fsize=40)
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    assert "cannot write to the ledger .commbox/ledger.jsonl (File too large)" in line
    assert "was not sent; raise the file size limit (ulimit -f)" in line
    assert server.received == []
    assert ledger_path(tmp_path).read_bytes() == b"", "a torn line was left behind"


def test_a_full_disk_after_a_send_names_the_unrecorded_key_and_holds_it(
    tmp_path: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    rehearsal = make(tmp_path / "rehearsal", count=1, concurrency=1)
    assert apply(rehearsal) == 0
    pending_line = ledger_path(rehearsal).read_bytes().split(b"\n")[0] + b"\n"
    server.clear()
    root = make(tmp_path / "real", count=1, concurrency=1)
    # Room for the pending line, not for the outcome after it.
    done = restricted(root, server, "apply", "--auto-approve", fsize=len(pending_line) + 8)
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    assert f"cannot record the outcome of {key(0)}" in line
    assert f"its request went out, so {key(0)} stays unknown ('?')" in line
    assert len(server.received) == 1
    assert [e["event"] for e in events(root)] == ["pending"]
    state = FileLedger(ledger_path(root), "x").read().states[key(0)]
    assert state.status is KeyStatus.UNKNOWN
    assert apply(root) == 0  # held, not sent again
    assert len(server.received) == 1


# -- the sandbox ledger is never the real one ---------------------------------------------------


@pytest.mark.parametrize(
    "path", [".commbox/sandbox-ledger.jsonl", "./.commbox/../.commbox/sandbox-ledger.jsonl"]
)
def test_the_real_ledger_cannot_be_the_sandbox_ledger(
    tmp_path: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path)
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + f"ledger:\n  path: {path}\n")
    assert main(["-C", str(tmp_path), "validate"]) == 1
    err = capsys.readouterr().err
    assert "commbox.yaml:7:9: ledger.path:" in err
    assert "is the sandbox's ledger; the real ledger must be another file" in err


def test_a_sandbox_ledger_linked_to_the_real_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(tmp_path)
    ledger_path(tmp_path).parent.mkdir()
    ledger_path(tmp_path).write_text("")
    ledger_path(tmp_path).with_name("sandbox-ledger.jsonl").symlink_to("ledger.jsonl")
    assert main(["-C", str(tmp_path), "apply", "--sandbox", "--auto-approve"]) == 1
    assert ".commbox/sandbox-ledger.jsonl is the real ledger .commbox/ledger.jsonl" in (
        capsys.readouterr().err
    )
    assert ledger_path(tmp_path).read_text() == ""
