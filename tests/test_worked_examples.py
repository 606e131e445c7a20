"""The README's worked examples, rehearsed against the sandbox: "incident updates in one
conversation" (examples/incident-updates) and "a scheduled WhatsApp announcement"
(examples/whatsapp-announcement).

The README shows the example files and the requests they make; these tests check that the files
are the ones shown, and that the sandbox, over real sockets, receives exactly what the README
says each step sends.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.sandbox import SandboxServer
from tests.sending import apply, events, point_at, states

TOP = Path(__file__).resolve().parent.parent
README = (TOP / "README.md").read_text("utf-8")
INCIDENT = TOP / "examples" / "incident-updates"
ANNOUNCEMENT = TOP / "examples" / "whatsapp-announcement"
TOKEN = "tok-worked-3c9e"
STREAM = "5b1e7c0a9d2f4e63a8c4b17d90e2f3a6"
CUSTOMERS = {"globex": "ops@globex.example", "initech": "it@initech.example"}
V2_PATH = "/v2/whatsapp/sendtemplatedmessage/hNyRN_fLUy7rrOrN9jLpipA%3D%3D"


def _shown(marker: str, language: str) -> str:
    """The README's code block right after `<!-- marker -->`."""
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```{language}\n(.*?)```", README, re.DOTALL)
    assert found, f"README.md has no {language} block after <!-- {marker} -->"
    return found.group(1)


@pytest.mark.parametrize(
    "relative",
    [
        "examples/incident-updates/messages/incident.yaml",
        "examples/whatsapp-announcement/messages/maintenance.yaml",
    ],
)
def test_the_readme_shows_the_example_files_as_they_are(relative: str) -> None:
    assert _shown(relative, "yaml") == (TOP / relative).read_text("utf-8")


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> SandboxServer:
    point_at(monkeypatch, server.url, TOKEN)
    return server


def _copy(example: Path, tmp_path: Path) -> Path:
    root = tmp_path / example.name
    shutil.copytree(example, root, ignore=shutil.ignore_patterns(".commbox"))
    return root


def _posts(server: SandboxServer) -> list[tuple[str, dict[str, Any]]]:
    return [(r.path, r.data or {}) for r in server.received if r.method == "POST"]


# -- incident updates in one conversation -------------------------------------------------------


def test_incident_updates_go_into_each_customers_conversation_step_by_step(
    tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(INCIDENT, tmp_path)

    # investigating: the first notice opens one conversation per customer
    assert apply(root) == 0
    opened = _posts(sandbox)
    assert [path for path, _ in opened] == [f"/streams/{STREAM}/objects"] * 2
    assert [data["Content"]["to"][0]["address"] for _, data in opened] == list(CUSTOMERS.values())
    ids = {c: states(root)[f"INC-2041-open[{c}]"].object_id for c in CUSTOMERS}
    assert all(ids.values())

    # identified, then resolved: one child per customer, in that customer's conversation
    for stage, text in (("identified", "Cause identified: "), ("resolved", "Resolved at ")):
        sandbox.clear()
        assert apply(root, "--var", f"stage={stage}") == 0
        children = _posts(sandbox)
        assert [path for path, _ in children] == [
            f"/streams/{STREAM}/objects/{ids[c]}/child" for c in CUSTOMERS
        ]
        for (_, data), (customer, address) in zip(children, CUSTOMERS.items(), strict=True):
            assert list(data) == [
                "IsManager", "UserIdentity", "Type", "UserStreamProviderId",
                "UserStreamProviderType", "Message",
            ]  # fmt: skip
            assert data["IsManager"] is True
            assert data["UserIdentity"] == 36197  # defaults: manager_id
            assert (data["Type"], data["UserStreamProviderType"]) == (5, 4)
            assert data["UserStreamProviderId"] == address
            assert str(data["Message"]).startswith(text), customer
        key = f"INC-2041-{stage}[globex]"
        assert states(root)[key].status is KeyStatus.SENT
        assert {e.get("parent") for e in events(root) if e["key"] == key} == {
            "INC-2041-open[globex]"
        }

    # a third run sends nothing: every key is sent
    sandbox.clear()
    capsys.readouterr()
    assert apply(root, "--var", "stage=resolved") == 0
    assert _posts(sandbox) == []


def test_from_scratch_one_apply_sends_each_notice_then_its_two_updates(
    tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(INCIDENT, tmp_path)
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--var", "stage=resolved"]) == 0
    plan = capsys.readouterr().out
    assert "Plan: 2 to send, 0 unchanged, 0 changed (held), 0 unknown, 4 waiting" in plan
    assert "  > incident-identified[globex]" in plan

    assert apply(root, "--var", "stage=resolved") == 0
    posts = _posts(sandbox)
    assert len(posts) == 6
    ids = {c: states(root)[f"INC-2041-open[{c}]"].object_id for c in CUSTOMERS}
    for customer in CUSTOMERS:
        child = f"/streams/{STREAM}/objects/{ids[customer]}/child"
        where = [i for i, (path, _) in enumerate(posts) if path == child]
        opened = [
            i
            for i, (path, data) in enumerate(posts)
            if path.endswith("/objects") and data["UserStreamProviderId"] == CUSTOMERS[customer]
        ]
        assert len(where) == 2
        assert len(opened) == 1
        assert opened[0] < min(where), posts  # each update after its notice's reply
        assert [str(posts[i][1]["Message"]).split(":")[0] for i in where] == [
            "Cause identified",
            "Resolved at 10",
        ]


# -- a scheduled WhatsApp announcement ----------------------------------------------------------


def _announced_body() -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(_shown("maintenance-announcement[globex]", "json"))
    return shown


def test_render_json_gives_the_request_the_readme_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert (
        main(["-C", str(ANNOUNCEMENT), "render", "--json", "maintenance-announcement[globex]"]) == 0
    )
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    assert message["key"] == "maintenance-2027-01-16[globex]"
    assert message["request"]["path"] == V2_PATH
    assert message["request"]["body"] == _announced_body()


def test_the_announcement_goes_one_recipient_a_request_scheduled(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    root = _copy(ANNOUNCEMENT, tmp_path)
    when = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    assert apply(root, "--var", f"announce_at={when.isoformat()}") == 0
    globex, initech = (r for r in sandbox.received if r.method == "POST")
    assert (globex.path, initech.path) == (V2_PATH, V2_PATH)
    expected = _announced_body()
    expected["data"][0]["schedule"] = int(when.timestamp())
    assert globex.body == expected
    (item,) = initech.body["data"]
    assert item["template_data"]["to"] == "972537280000"
    assert item["schedule"] == int(when.timestamp())
    recorded = states(root)
    for customer, received in (("globex", globex), ("initech", initech)):
        state = recorded[f"maintenance-2027-01-16[{customer}]"]
        assert state.status is KeyStatus.SENT
        assert state.whatsapp_id in received.whatsapp_ids


def test_a_recipient_whatsapp_refuses_is_failed_and_a_past_schedule_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(ANNOUNCEMENT, tmp_path)
    with SandboxServer(whatsapp_invalid=("+972 53-728-0000",)) as refusing:
        point_at(monkeypatch, refusing.url, TOKEN)
        future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        assert apply(root, "--var", f"announce_at={future}") == 1
        recorded = states(root)
        assert recorded["maintenance-2027-01-16[globex]"].status is KeyStatus.SENT
        failed = recorded["maintenance-2027-01-16[initech]"]
        assert failed.status is KeyStatus.FAILED
        assert "Provider returned failure" in capsys.readouterr().out

        # The next apply tries initech again; a schedule already past sends nothing.
        refusing.clear()
        assert apply(root, "--var", "announce_at=2026-01-14T09:00:00+00:00") == 1
        assert [r for r in refusing.received if r.method == "POST"] == []
        assert "is already past, so nothing was sent" in capsys.readouterr().out
