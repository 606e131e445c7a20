"""The command line as a user runs it: exit codes, output, redaction, options."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commbox_yaml.cli import main
from commbox_yaml.resources import CHANNEL_NAMES, schema
from tests.projects import SMS, build_project, project

REFERENCE = Path(__file__).parent / "reference" / "project"


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REFERENCE, root)
    return root


def test_validate_ok(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(reference), "validate"]) == 0
    assert capsys.readouterr().out == "validate: 7 messages from 2 files valid.\n"


def test_global_options_after_the_command(reference: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["validate", "-C", str(reference), "--no-color"]) == 0
    assert "7 messages" in capsys.readouterr().out


def test_render_json_matches_the_plan_message_shape(
    reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(reference), "render", "mail-single-attachment", "--json"]) == 0
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    assert message["address"] == "mail-single-attachment"
    assert message["key"] == "mail-single-attachment"
    assert message["stream"] == "b9910a75a46c492c9cf46a910cdba0012"
    assert message["fingerprint"].startswith("sha256:")
    request = message["request"]
    assert request["method"] == "POST"
    assert request["path"] == "/streams/b9910a75a46c492c9cf46a910cdba0012/objects"
    assert request["body"]["data"]["StatusId"] == 13
    (attachment,) = request["files"]
    assert attachment["path"] == "files/invoice.pdf"
    assert attachment["bytes"] == (reference / "files" / "invoice.pdf").stat().st_size


def test_render_text_lists_multipart_parts(reference: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["-C", str(reference), "render", "mail-multiple-attachments"]) == 0
    out = capsys.readouterr().out
    assert "POST /streams/b9910a75a46c492c9cf46a910cdba0012/objects" in out
    assert "multipart/form-data" in out
    assert out.count('part "file": ') == 3


def test_render_unknown_address(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(reference), "render", "nope"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "error: no message matches the address 'nope'; 'commbox-yaml plan' lists every address\n"
    )


def test_sensitive_values_are_redacted_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = SMS.replace("message: hello", "message: 'code {{ pin }} now'") + (
        "---\nname: bad\nchannel: email\nstream: email\nuser_stream_provider_id: '{{ pin }}@x'\n"
        "subject: s\nto: ['{{ pin }}@']\nmessage: m\n"
    )
    project(tmp_path, messages, "pin: '80417'\n")
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "sensitive: [pin]\n")
    assert main(["-C", str(tmp_path), "validate"]) == 1
    assert main(["-C", str(tmp_path), "validate", "--json"]) == 1
    main(["-C", str(tmp_path), "render", "note"])
    main(["-C", str(tmp_path), "render", "note", "--json"])
    out, err = capsys.readouterr()
    assert "80417" not in out + err
    assert "'(sensitive)@' is not an email address" in err
    assert "code (sensitive) now" in out
    # only the request itself carries the value
    assert (
        build_project(tmp_path, targets=("note",)).requests[0].sent_data["Message"]
        == "code 80417 now"
    )


def test_github_annotations(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    project(tmp_path, SMS.replace("message: hello", "message: '{{ nope }}'"))
    assert main(["-C", str(tmp_path), "validate"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(
        "::error file=messages/main.yaml,line=5,col=10::message: 'nope' is undefined"
    )


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    project(tmp_path, SMS.replace("message: hello", "message: '{{ nope }}'"))
    result = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(tmp_path), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "\x1b[" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: messages/main.yaml:5:10: message: 'nope' is undefined")


def test_no_project_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(tmp_path), "validate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no commbox.yaml found" in err


def test_usage_error_exits_1_since_2_is_the_detailed_exitcode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["frobnicate"]) == 1
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", [*CHANNEL_NAMES, "commbox"])
def test_schemas_are_valid_and_every_property_is_described(name: str) -> None:
    spec = schema(name)
    jsonschema.Draft202012Validator.check_schema(spec)
    assert spec["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                assert "description" in sub, f"{name}: {where}.{key} has no description"
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(spec, name)


def test_schema_command_prints_a_combined_schema_that_checks_definitions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema"]) == 0
    combined = json.loads(capsys.readouterr().out)
    validator = jsonschema.Draft202012Validator(combined)
    good = {
        "name": "n",
        "channel": "sms",
        "stream": "s",
        "user_stream_provider_id": "1",
        "message": "m",
    }
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({**good, "subject": "only email has one"}))
    assert main(["schema", "whatsapp"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "CommBox WhatsApp template message"


def test_fingerprint_is_stable_across_key_order_and_runs(tmp_path: Path) -> None:
    a = project(tmp_path / "a", SMS + "user: {first_name: Jo, last_name: Doe}\nmanager_id: 1\n")
    b = project(tmp_path / "b", "manager_id: 1\nuser: {last_name: Doe, first_name: Jo}\n" + SMS)
    first, second = build_project(a).requests[0], build_project(b).requests[0]
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint == build_project(a).requests[0].fingerprint
    changed = project(tmp_path / "c", SMS.replace("hello", "hello!"))
    assert build_project(changed).requests[0].fingerprint != first.fingerprint


def test_fingerprint_is_the_same_on_every_machine(reference: Path) -> None:
    # A fingerprint is compared with ledgers written elsewhere: its recipe must not drift.
    # The recipe: sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of stream,
    # body and attachment hashes.
    by_address = {r.address: r for r in build_project(reference).requests}
    body = json.loads((REFERENCE.parent / "bodies" / "mail.json").read_text())
    canonical = {"stream": "b9910a75a46c492c9cf46a910cdba0012", "body": body, "files": []}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert by_address["mail"].fingerprint == expected
    assert expected == "sha256:c8da65642e6f6687a582aa26c843b2b732dccf581e177dabb3de4c4ef44bb2d9"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=_json)
def test_canonical_json_is_the_recipe(value: object) -> None:
    # compile.py keeps one encoder instead of json.dumps building one per value hashed.
    from commbox_yaml.compile import canonical_json

    recipe = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == recipe.encode()
