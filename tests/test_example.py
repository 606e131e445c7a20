"""examples/release-notice: the project the README points new users at must keep working."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import build_project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "release-notice"
CUSTOMERS = ["globex", "initech", "hooli", "tzafon-logistics", "sol-y-mar", "brauhaus-nord"]
SENT = [
    "release-email",
    "oncall-sms",
    *(f"customer-whatsapp[{c}]" for c in CUSTOMERS if c != "hooli"),
    "team-chat",
]
SKIPPED = ["customer-whatsapp[hooli]"]  # no WhatsApp opt-in
# Variables from the environment would change what the example renders.
_OUTSIDE = ("CI_COMMIT_TAG", "GITHUB_REF_NAME", "GITHUB_ACTIONS", "NO_COLOR")


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [*_OUTSIDE, *(n for n in os.environ if n.startswith("COMMBOX_VAR_"))]:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "release-notice"
    shutil.copytree(EXAMPLE, root)
    return root


def test_validate(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(example), "validate"]) == 0
    assert capsys.readouterr().out == (
        "validate: 9 messages from 4 files valid (1 skipped by 'when').\n"
    )


def test_validate_json_counts(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(example), "validate", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "valid": True,
        "messages": 9,
        "skipped": 1,
        "files": 4,
        "errors": [],
        "warnings": [],
    }


def test_addresses(example: Path) -> None:
    built = build_project(example)
    assert sorted(r.address for r in built.requests) == sorted(SENT)
    assert [m.address for m in built.skipped] == SKIPPED


@pytest.mark.parametrize("address", SENT)
def test_render_each_message(
    example: Path, address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(example), "--no-color", "render", address]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {address}  (key ")
    assert re.search(r"^POST /streams/[0-9a-f]{32}/objects$", out, re.MULTILINE)


@pytest.mark.parametrize("address", SENT)
def test_render_each_message_json(
    example: Path, address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(example), "render", address, "--json"]) == 0
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    assert message["address"] == address
    assert message["key"].startswith("release-1.4.0")
    assert message["request"]["body"]["data"]["ManagerId"] == 36197  # from defaults:


def test_render_skipped_item(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(example), "render", "customer-whatsapp[hooli]"]) == 0
    assert capsys.readouterr().out == "# customer-whatsapp[hooli]: skipped ('when' is false)\n"


def test_render_fan_out_by_name(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(example), "render", "customer-whatsapp", "--json"]) == 0
    messages = json.loads(capsys.readouterr().out)["messages"]
    assert [m["address"] for m in messages] == [a for a in SENT if a.startswith("customer-")]
    globex = messages[0]["request"]["body"]["data"]["Content"]
    assert globex == {
        "to": ["14155550123"],
        "whatsapp_hsm_name": "release_announcement",
        "whatsapp_localizable_params": [
            "Hank Scorpio",
            "Acme Ledger",
            "1.4.0",
            "https://acme.example/releases/1.4.0",
        ],
        "whatsapp_language_code": "en",
    }


def test_release_email_uploads_the_pdf_and_includes_the_signature(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(example), "render", "release-email", "--json"]) == 0
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    (upload,) = message["request"]["files"]
    assert upload["path"] == "dist/release-notes-1.4.0.pdf"
    assert upload["bytes"] == (example / upload["path"]).stat().st_size
    data = message["request"]["body"]["data"]
    assert data["Content"]["subject"] == "Acme Ledger 1.4.0 is out"
    assert data["Message"].startswith("Hello,\n\nAcme Ledger 1.4.0 is available today")
    assert "  - Bank feeds for SEPA Instant and FedNow\n" in data["Message"]
    assert data["Message"].endswith("The Acme Ledger team\nAcme Inc. · releases@acme.example\n")


def test_the_attachment_is_a_real_pdf() -> None:
    pdf = (EXAMPLE / "dist" / "release-notes-1.4.0.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-1.")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert 1024 < len(pdf) < 16 * 1024
    startxref = re.search(rb"startxref\s+(\d+)", pdf)
    assert startxref
    assert pdf[int(startxref.group(1)) :].startswith(b"xref")
    offsets = re.findall(rb"(\d{10}) 00000 n ", pdf)
    for number, offset in enumerate(offsets, start=1):
        assert pdf[int(offset) :].startswith(b"%d 0 obj" % number)


def test_the_bridge_pin_is_redacted(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMBOX_VAR_support_pin", "739155")
    assert main(["-C", str(example), "render", "oncall-sms"]) == 0
    out = capsys.readouterr().out
    assert "739155" not in out
    assert "Release bridge PIN (sensitive)." in out


def test_announce_customers_false_skips_every_whatsapp(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(example), "validate", "--var", "announce_customers=false"]) == 0
    assert "(6 skipped by 'when')" in capsys.readouterr().out


def test_render_as_a_subprocess(example: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _OUTSIDE}
    env = {k: v for k, v in env.items() if not k.startswith("COMMBOX_VAR_")}
    done = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(example), "render", "release-email"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**env, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "POST /streams/3f9c2a7d81e64b0c9a5d17e2b48f6c03/objects" in done.stdout
    assert "Content-Type: multipart/form-data" in done.stdout
    assert 'part "file": release-notes-1.4.0.pdf (application/pdf, ' in done.stdout
