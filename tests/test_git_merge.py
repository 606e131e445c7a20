"""The ledger in git: two branches that each sent a message merge cleanly (`init` writes
.gitattributes with merge=union), and the merged ledger sends nothing twice.

Real git, a real project from `init`, real sends to the sandbox over a socket.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer

LEDGER = ".commbox/ledger.jsonl"


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
    )  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=check
    )


@pytest.fixture
def sending(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """Real sends (not --sandbox: that has a ledger of its own) to the sandbox server."""
    for name in [n for n in os.environ if n.startswith(("COMMBOX_", "GITHUB_", "CI_"))]:
        monkeypatch.delenv(name)
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)  # the sandbox is on 127.0.0.1
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", "t0ken-7c1e9a44d2b05f3e")
    return server


def _project(root: Path, union: bool) -> None:
    _git(root, "init", "--quiet", "--initial-branch=main")
    assert main(["init", str(root)]) == 0
    if not union:
        (root / ".gitattributes").unlink()
    _git(root, "add", "-A")
    _git(root, "commit", "--quiet", "-m", "notices")


def _apply_on_branch(root: Path, branch: str, address: str) -> None:
    _git(root, "checkout", "--quiet", "-b", branch, "main")
    assert main(["-C", str(root), "apply", "--auto-approve", "--target", address]) == 0
    _git(root, "commit", "--quiet", "-am", f"sent {address}")


def _sent_keys(root: Path) -> list[str]:
    events = [json.loads(line) for line in (root / LEDGER).read_text().splitlines()]
    return sorted(e["key"] for e in events if e["event"] == "sent")


def test_two_branches_merge_and_nothing_is_sent_twice(
    tmp_path: Path, sending: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, union=True)
    _apply_on_branch(tmp_path, "release", "release-email")
    _apply_on_branch(tmp_path, "oncall", "oncall-sms")
    assert len(sending.accepted) == 2

    _git(tmp_path, "checkout", "--quiet", "release")
    merged = _git(tmp_path, "merge", "--no-edit", "oncall", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert _sent_keys(tmp_path) == ["release-0.1.0", "release-0.1.0-oncall"]

    capsys.readouterr()
    assert main(["-C", str(tmp_path), "plan", "--json"]) == 0
    actions = {m["address"]: m["action"] for m in json.loads(capsys.readouterr().out)["messages"]}
    assert actions["release-email"] == "unchanged"
    assert actions["oncall-sms"] == "unchanged"
    assert sorted(a for a, action in actions.items() if action == "send") == [
        "customer-whatsapp[first-customer]",
        "customer-whatsapp[second-customer]",
        "team-chat",
    ]

    assert main(["-C", str(tmp_path), "apply", "--auto-approve"]) == 0
    assert len(sending.accepted) == 5  # each message once, over both branches and the merge
    keys = _sent_keys(tmp_path)
    assert len(keys) == len(set(keys)) == 5
    _git(tmp_path, "commit", "--quiet", "-am", "sent the rest")
    assert main(["-C", str(tmp_path), "plan", "--detailed-exitcode"]) == 0


def test_without_the_union_attribute_the_ledgers_conflict(
    tmp_path: Path, sending: SandboxServer
) -> None:
    # Why `init` writes .gitattributes: both branches append at the same place.
    _project(tmp_path, union=False)
    _apply_on_branch(tmp_path, "release", "release-email")
    _apply_on_branch(tmp_path, "oncall", "oncall-sms")
    _git(tmp_path, "checkout", "--quiet", "release")
    merged = _git(tmp_path, "merge", "--no-edit", "oncall", check=False)
    assert merged.returncode != 0
    assert f"Merge conflict in {LEDGER}" in merged.stdout
