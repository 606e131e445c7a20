"""Requests speak CommBox as CommBox documents it: every fixture project's bodies against a JSON
Schema of the Create Object body, the content type and multipart parts as sent, stream ids in the
path, and one request captured by a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from commbox_yaml.build import build
from commbox_yaml.cli import main
from commbox_yaml.compile import Request
from commbox_yaml.project import load_project
from commbox_yaml.sandbox import SandboxServer
from commbox_yaml.variables import load_variables
from tests.projects import build_project, write
from tests.sending import apply

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CREATE_OBJECT = json.loads((TESTS / "commbox" / "create-object.schema.json").read_text("utf-8"))
# A reply (reply_to) is a Create Child Object body: CommBox's example's keys, in its order.
CHILD = json.loads((TESTS / "commbox" / "create-child-object.json").read_text("utf-8"))
CHILD_KEYS = list(CHILD["examples"]["On behalf of Agent - Sending an email"]["data"])
PROJECTS = [
    *sorted(p for p in (TESTS / "cases" / "valid").iterdir() if p.is_dir()),
    TESTS / "reference" / "project",
    ROOT / "examples" / "release-notice",
]


def _options(case: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """The environment, --var-file and --var options a fixture's case.json asks for."""
    path = case / "case.json"
    options: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    args: list[str] = options.get("args", [])
    var_files = [args[i + 1] for i, a in enumerate(args) if a == "--var-file"]
    cli_vars = [args[i + 1] for i, a in enumerate(args) if a == "--var"]
    return dict(options.get("env", {})), var_files, cli_vars


def _requests(case: Path, tmp_path: Path) -> list[Request]:
    root = tmp_path / "project"
    shutil.copytree(case, root, ignore=shutil.ignore_patterns("expected.*", "case.json"))
    environ, var_files, cli_vars = _options(case)
    project = load_project(root)
    result = build(project, load_variables(project, var_files, cli_vars, environ))
    assert result.problems == []
    assert result.requests
    return result.requests


def _wire_body(request: Request) -> dict[str, Any]:
    """The body as the server reads it (for multipart, the `data` field's JSON text parsed),
    without the keys a definition passed through `raw:` for fields CommBox's docs lack."""
    if request.multipart:
        body = {"data": json.loads(request.data_field)}
    else:
        body = json.loads(json.dumps(request.body, ensure_ascii=False))
    for key in request.message.values.get("raw") or {}:
        del body["data"][key]
    return body


def test_the_create_object_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(CREATE_OBJECT)


@pytest.mark.parametrize("case", PROJECTS, ids=[p.name for p in PROJECTS])
def test_every_fixture_request_is_a_create_object_body(case: Path, tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(CREATE_OBJECT)
    for request in _requests(case, tmp_path):
        if request.parent_key is not None:
            data = _wire_body(request)["data"]
            assert list(data) == CHILD_KEYS, request.address
            assert isinstance(data["UserIdentity"], int), request.address
            assert request.path.endswith(f"/objects/{{OBJECT_ID of {request.parent_key}}}/child")
            continue
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(_wire_body(request))
        ]
        assert errors == [], f"{request.address}: {errors}"
        assert request.path.startswith("/streams/")
        assert request.path.count("/") == 3  # the id is one segment, whatever it holds


def test_the_schema_catches_what_commbox_refuses() -> None:
    # The check above could not fail if the schema accepted anything.
    validator = jsonschema.Draft202012Validator(CREATE_OBJECT)
    good = {
        "Type": 4,
        "UserStreamProviderId": "972544444444",
        "UserStreamProviderType": 5,
        "Message": "hi",
        "User": {"Phone1": "972544444444"},
    }
    assert validator.is_valid({"data": good})
    for change in (
        {"UserStreamProviderId": "+972544444444"},
        {"User": {"Phone1": "+972 54-444-4444"}},
        {"User": {"UniqueId": "x" * 51}},
        {"Type": 19},
        {"StatusId": 12},
        {"Content": {"to": ["00972522222222"]}},
        {"Content": {"whatsapp_language_code": "en-US"}},
        {"Streamid": 1},
    ):
        assert not validator.is_valid({"data": {**good, **change}}), change


# -- content type and parts ---------------------------------------------------------------------


REFERENCE = TESTS / "reference" / "project"


def test_render_json_shows_the_content_type_and_the_parts_as_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["-C", str(REFERENCE), "render", "mail-multiple-attachments", "--json"]) == 0
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    request = message["request"]
    assert request["content_type"] == "multipart/form-data"
    data_part, *file_parts = request["parts"]
    assert data_part["name"] == "data"
    # The data field's text exactly as sent: the reference's own example text.
    bodies = TESTS / "reference" / "bodies"
    reference = json.loads((bodies / "mail-multiple-attachments.json").read_text())
    assert data_part["value"] == reference["data"]
    files = REFERENCE / "files"
    assert file_parts == [
        {
            "name": "file",
            "filename": name,
            "content_type": mime,
            "bytes": (files / name).stat().st_size,
        }
        for name, mime in (
            ("report.pdf", "application/pdf"),
            ("analysis.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (
                "presentation.pptx",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ),
        )
    ]


def test_a_json_request_says_so_and_has_no_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(REFERENCE), "render", "sms", "--json"]) == 0
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    assert message["request"]["content_type"] == "application/json"
    assert message["request"]["parts"] == []


def test_plan_json_carries_the_content_type_of_every_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(REFERENCE, root)
    assert main(["-C", str(root), "plan", "--json"]) == 0
    messages = json.loads(capsys.readouterr().out)["messages"]
    types = {m["address"]: m["request"]["content_type"] for m in messages}
    assert types["mail"] == "application/json"
    assert types["mail-single-attachment"] == "multipart/form-data"
    assert types["mail-multiple-attachments"] == "multipart/form-data"


def test_human_render_shows_the_content_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(REFERENCE), "render", "sms"]) == 0
    out = capsys.readouterr().out
    assert "POST /streams/5fd0c1/objects\nContent-Type: application/json\n" in out


# -- stream ids in the path -----------------------------------------------------------------


ENCRYPTED = "hNyRN_fLUy7rrOrN9jLpipA=="
MESSAGE = """\
name: note
channel: sms
stream: {stream}
user_stream_provider_id: "972544444444"
message: hello
"""


def _stream_project(root: Path, stream: str, streams: str = "") -> Path:
    commbox = "version: 1\n" + (f"streams:\n{streams}" if streams else "")
    return write(root, {"commbox.yaml": commbox, "messages/m.yaml": MESSAGE.format(stream=stream)})


@pytest.mark.parametrize(
    ("stream", "streams", "path"),
    [
        ("17566", "", "/streams/17566/objects"),
        ('"17566"', "", "/streams/17566/objects"),
        ("support", "  support: 17566\n", "/streams/17566/objects"),
        (ENCRYPTED, "", "/streams/hNyRN_fLUy7rrOrN9jLpipA%3D%3D/objects"),
        ("hNyRN_fLUy7rrOrN9jLpipA%3d%3d", "", "/streams/hNyRN_fLUy7rrOrN9jLpipA%3D%3D/objects"),
        ("odd", '  odd: "ab/cd+ef=="\n', "/streams/ab%2Fcd%2Bef%3D%3D/objects"),
        ("odd", '  odd: "a?b#cd"\n', "/streams/a%3Fb%23cd/objects"),
        ("mail", "  mail: b9910a75a46c492c9cf46a910cdba0012\n",
         "/streams/b9910a75a46c492c9cf46a910cdba0012/objects"),
        ("5fd0c1", "", "/streams/5fd0c1/objects"),
    ],
)  # fmt: skip
def test_stream_ids_are_percent_encoded_once(
    tmp_path: Path, stream: str, streams: str, path: str
) -> None:
    result = build_project(_stream_project(tmp_path, stream, streams))
    assert result.problems == []
    (request,) = result.requests
    assert request.path == path


def test_both_spellings_of_an_encrypted_id_are_one_stream(tmp_path: Path) -> None:
    plain = build_project(_stream_project(tmp_path / "a", ENCRYPTED)).requests[0]
    encoded = build_project(_stream_project(tmp_path / "b", "hNyRN_fLUy7rrOrN9jLpipA%3D%3D"))
    aliased = build_project(_stream_project(tmp_path / "c", "wa", f'  wa: "{ENCRYPTED}"\n'))
    assert plain.stream == encoded.requests[0].stream == aliased.requests[0].stream == ENCRYPTED
    assert plain.fingerprint == encoded.requests[0].fingerprint == aliased.requests[0].fingerprint
    number = build_project(_stream_project(tmp_path / "d", "17566")).requests[0]
    text = build_project(_stream_project(tmp_path / "e", '"17566"')).requests[0]
    assert number.fingerprint == text.fingerprint


def test_a_request_with_an_encrypted_id_reaches_a_real_server(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream_id = "hN+yR/N_fLUy7rrOrN9jLpipA=="
    root = _stream_project(tmp_path, "wa", f'  wa: "{stream_id}"\n')
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", "t0ken-for-tests")
    assert apply(root) == 0
    (received,) = server.received
    assert received.path == "/streams/hN%2ByR%2FN_fLUy7rrOrN9jLpipA%3D%3D/objects"
    assert received.stream_id == stream_id  # the server decoded the one path segment
    assert received.accepted
    assert received.headers["content-type"] == "application/json"
    assert received.data is not None
    assert received.data["UserStreamProviderId"] == "972544444444"


def test_a_multipart_request_reaches_a_real_server_with_its_parts(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    shutil.copytree(REFERENCE, root)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", "t0ken-for-tests")
    assert apply(root, "--target", "mail-single-attachment") == 0
    (received,) = server.received
    assert received.path == "/streams/b9910a75a46c492c9cf46a910cdba0012/objects"
    assert received.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert [(f.filename, f.content_type) for f in received.files] == [
        ("invoice.pdf", "application/pdf")
    ]
    bodies = TESTS / "reference" / "bodies"
    expected = json.loads((bodies / "mail-single-attachment.json").read_text())
    assert received.data == json.loads(expected["data"])
