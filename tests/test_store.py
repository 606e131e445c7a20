"""A fan-out past SPILL_AFTER messages is kept on disk: every command gives exactly what it
gives with the messages in memory, and a build holds no request as an object."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from commbox_yaml import store
from commbox_yaml.cli import main
from commbox_yaml.compile import Request
from commbox_yaml.report.progress import Progress
from commbox_yaml.sandbox import SandboxServer
from commbox_yaml.send import SendResult
from tests.projects import build_project, write
from tests.sending import delivered, events

TOKEN = "tok-5a1e0c93b7d24f18"

COMMBOX = """\
version: 1
api: {concurrency: 4, rate_per_s: 0, timeout_s: 5}
streams:
  sms: 5fd0c1
  email: b9910a75a46c492c9cf46a910cdba0012
vars: [vars/common.yaml]
sensitive: [pin]
"""

# Keys out of address order, messages skipped by `when`, a second definition in the same file
# and a message in another file: the plan sorts them all by file, line and address.
MESSAGES = """\
name: notice
channel: sms
stream: sms
id: "notice-{{ version }}"
for_each: people
key: "{{ item.id }}"
when: "{{ item.active }}"
user_stream_provider_id: "{{ item.phone }}"
message: "{{ product }} {{ version }} for {{ item.name }} (pin {{ pin }})"
---
name: digest
channel: sms
stream: sms
user_stream_provider_id: "972544444401"
message: "{{ people | length }} people"
"""
OTHER = """\
name: always
channel: sms
stream: sms
send: always
user_stream_provider_id: "972544444400"
message: "ping {{ version }}"
"""


def _people(count: int) -> str:
    rows = []
    for n in reversed(range(count)):  # ids in reverse: build order is not plan order
        rows.append(
            f"  - {{id: p{n:03d}, name: Name{n}, phone: '97254{n:07d}', "
            f"active: {'false' if n % 7 == 3 else 'true'}}}"
        )
    return "\n".join(rows)


def make(root: Path, count: int = 40, version: str = "1.0") -> Path:
    return write(
        root,
        {
            "commbox.yaml": COMMBOX,
            "messages/a.yaml": MESSAGES,
            "messages/b.yaml": OTHER,
            "vars/common.yaml": (
                f"version: '{version}'\nproduct: Acme\npin: '80417'\npeople:\n{_people(count)}\n"
            ),
        },
    )


def run(root: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-C", str(root), "--no-color", *args])
    return code, out.getvalue(), err.getvalue()


def both(
    root: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """The command's result with the messages in memory, then with all of them on disk."""
    held = run(root, *args)
    with monkeypatch.context() as patch:
        patch.setattr(store, "SPILL_AFTER", 0)
        spilled = run(root, *args)
    return held, spilled


COMMANDS = (
    ("validate", "--json"),
    ("validate",),
    ("plan",),
    ("plan", "--json"),
    ("plan", "--format", "markdown"),
    ("plan", "--replace", "notice-1.0[p00*]"),
    ("plan", "--target", "notice[p005]", "--json"),
    ("render", "notice", "--json"),
    ("render", "notice[p010]", "--text"),
)


def _applied(root: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    """A ledger with every kind of state: sent, changed since, and unknown."""
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    assert run(root, "apply", "--auto-approve")[0] == 0
    lines = (root / ".commbox" / "ledger.jsonl").read_text().splitlines()
    pending = next(json.loads(x) for x in lines if '"pending"' in x and "p012" in x)
    dangling = {**pending, "run": "crashed", "attempt": 2}
    with (root / ".commbox" / "ledger.jsonl").open("a") as ledger:
        ledger.write(json.dumps(dangling) + "\n")  # p012: a try with no outcome: unknown
    text = (root / "messages" / "a.yaml").read_text()
    (root / "messages" / "a.yaml").write_text(text.replace("(pin", "- pin"))  # all changed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_gives_the_same_with_the_messages_on_disk(
    command: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: SandboxServer,
) -> None:
    root = make(tmp_path)
    fresh = both(root, monkeypatch, *command)
    assert fresh[0] == fresh[1]
    assert fresh[0][0] == 0, fresh[0]
    _applied(root, monkeypatch, server)
    after = both(root, monkeypatch, *command)
    assert after[0] == after[1]


def test_a_plan_lists_messages_in_file_line_and_address_order_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path)
    held, spilled = both(root, monkeypatch, "plan", "--json")
    assert held == spilled
    addresses = [m["address"] for m in json.loads(spilled[1])["messages"]]
    notices = [f"notice[p{n:03d}]" for n in range(40)]
    assert addresses == [*notices, "digest", "always"]
    actions = {m["address"]: m["action"] for m in json.loads(spilled[1])["messages"]}
    assert actions["notice[p003]"] == "skipped"
    assert actions["notice[p004]"] == "send"


def test_a_saved_plan_from_disk_is_the_same_and_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer
) -> None:
    root = make(tmp_path)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    assert run(root, "plan", "-out", "held.plan")[0] == 0
    monkeypatch.setattr(store, "SPILL_AFTER", 0)
    assert run(root, "plan", "-out", "spilled.plan")[0] == 0

    def saved(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((root / name).read_text())
        del data["created_at"]
        return data

    assert saved("held.plan") == saved("spilled.plan")
    code, _out, err = run(root, "apply", "spilled.plan")
    assert code == 0, err
    sent = [e for e in events(root) if e["event"] == "sent"]
    assert len(sent) == 36  # 40 people, 6 of them inactive, and two single messages
    assert sum(delivered(server).values()) == 36
    assert max(delivered(server).values()) == 1
    assert run(root, "plan", "--detailed-exitcode")[0] == 2  # `always` is sent every time


def test_a_duplicate_key_is_found_on_disk_naming_both_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path)
    (root / "messages" / "b.yaml").write_text(
        OTHER.replace("name: always", "name: again").replace("send: always\n", "")
        + 'id: "notice-{{ version }}[p007]"\n'
    )
    held, spilled = both(root, monkeypatch, "validate")
    assert held == spilled
    assert held[0] == 1
    assert re.search(r"ledger key 'notice-1\.0\[p007\]' is also the key of notice\[p007\]", held[2])


def test_a_spilled_build_holds_no_request_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path, count=200)
    monkeypatch.setattr(store, "SPILL_AFTER", 50)
    result = build_project(root)
    assert result.messages.spilled
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Request)]
    requests = list(result.requests)
    inactive = sum(1 for n in range(200) if n % 7 == 3)
    assert len(requests) == len(result.requests) == 200 - inactive + 2
    assert len({r.fingerprint for r in requests}) == len(requests)


def test_a_fan_out_that_fits_is_kept_in_memory(tmp_path: Path) -> None:
    result = build_project(make(tmp_path, count=30))
    assert not result.messages.spilled


def test_a_fan_out_past_the_limit_is_spilled_before_its_first_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is told how many messages are coming: a big fan-out is never held whole."""
    root = make(tmp_path, count=100)
    monkeypatch.setattr(store, "SPILL_AFTER", 60)
    seen: list[int] = []
    original = store.BuiltMessages.add

    def add(self: store.BuiltMessages, entry: store.Entry) -> None:
        seen.append(len(self._held) if self._held is not None else -1)
        original(self, entry)

    monkeypatch.setattr(store.BuiltMessages, "add", add)
    build_project(root)
    assert seen[0] == -1  # already on disk when the first message came


def test_a_temporary_directory_that_cannot_hold_the_messages_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer
) -> None:
    root = make(tmp_path)
    not_a_directory = tmp_path / "not-a-directory"
    not_a_directory.write_text("")
    monkeypatch.setattr(store, "SPILL_AFTER", 0)
    monkeypatch.setattr("tempfile.tempdir", str(not_a_directory))
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    code, _out, err = run(root, "apply", "--auto-approve")
    assert code == 1
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("error: cannot write the messages of this plan to a temporary file")
    assert "TMPDIR" in err
    assert server.requests == 0
    assert events(root) == []  # nothing written: the build failed before any claim


def test_requests_are_found_by_their_number_among_skipped_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path, count=30)
    held = build_project(root)
    monkeypatch.setattr(store, "SPILL_AFTER", 0)
    spilled = build_project(root)
    assert spilled.messages.spilled
    assert not held.messages.spilled
    every = [r.address for r in held.requests]
    assert len(every) == len(held.requests) == len(spilled.requests) == 30 - 4 + 2
    for number in (0, 1, 5, len(every) - 1, -1):
        assert held.requests[number].address == spilled.requests[number].address == every[number]
    assert [r.address for r in spilled.requests[2:6]] == every[2:6]
    with pytest.raises(IndexError):
        spilled.requests[len(every)]


def test_an_apply_from_disk_holds_only_the_messages_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer
) -> None:
    root = make(tmp_path, count=200)
    monkeypatch.setattr(store, "SPILL_AFTER", 50)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    live: list[int] = []
    update = Progress.update

    def counting(self: Progress, index: int, result: SendResult) -> None:
        live.append(sum(1 for o in gc.get_objects() if isinstance(o, Request)))
        update(self, index, result)

    monkeypatch.setattr(Progress, "update", counting)
    code, _out, err = run(root, "apply", "--auto-approve")
    assert code == 0, err
    inactive = sum(1 for n in range(200) if n % 7 == 3)
    assert len(live) == 200 - inactive + 2
    assert sum(delivered(server).values()) == len(live)
    # concurrency 4: the messages in flight, each worker's last one, and one being read
    assert max(live) <= 3 * 4, max(live)
