"""Text from a server, a message or a variable is printed on one line, control characters
escaped: no line of any output can start a CI workflow command (`::warning::`), and `##[`
(the runner's older prefix, read anywhere in a line) never appears, unless the tool wrote it.

The output is read as GitHub's runner reads it: split at CR, LF and CRLF, each line's leading
white space dropped."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.projects import write
from tests.sending import raw_server, read_request

TOKEN = "tok-workflow-7c1d9e"
INJECTED = "bad request\n::warning title=pwned::from the server\r::error::cr too ##[warning]old"
SHOWN = "bad request\\n::warning title=pwned::from the server\\r::error::cr too ##\\[warning]old"
VARIABLE = "ops\n::warning title=x::from a variable\r##[error]legacy\u2028::notice::ls"

COMMBOX = """\
version: 1
api: {concurrency: 1, rate_per_s: 0, timeout_s: 5, max_attempts: 1}
streams: {chat: 5fd0c1}
vars: [vars/common.yaml]
"""
MESSAGES = """\
name: note
channel: chat
stream: chat
for_each: [fails, unknown]
user_stream_provider_id: "{{ who }}"
message: "note {{ item }}\\n::warning::from the body"
"""


def _project(root: Path) -> Path:
    return write(
        root,
        {
            "commbox.yaml": COMMBOX,
            "messages/note.yaml": MESSAGES,
            "vars/common.yaml": json.dumps({"who": VARIABLE}) + "\n",
        },
    )


def _run(root: Path, *argv: str, **env: str) -> tuple[int, str]:
    """The CLI as a CI step runs it, stdout and stderr into one log."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("COMMBOX_", "GITHUB_"))}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), *argv],
        env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout


def _commands(log: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """The lines of `log` GitHub's runner would take as workflow commands."""
    found = []
    for line in re.split(r"\r\n|\r|\n", log):
        stripped = line.lstrip()
        if stripped.startswith(allowed) and allowed:
            continue
        if stripped.startswith("::") or "##[" in line:
            found.append(line)
    return found


def _answer(sock: socket.socket, received: list[bytes]) -> None:
    request = read_request(sock)
    received.append(request)
    status, reason = (400, "Bad Request") if b"note fails" in request else (500, "Oops")
    body = json.dumps({"status": status, "description": INJECTED, "response_time": 1}).encode()
    sock.sendall(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def test_a_servers_description_cannot_write_workflow_commands(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with raw_server(_answer) as server:
        env = {"COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": TOKEN, "GITHUB_ACTIONS": "true"}
        code, log = _run(root, "--no-color", "apply", "--auto-approve", **env)
        assert len(server.received) == 2
    assert code == 1
    assert f"HTTP 400: {SHOWN}" in log
    assert f"HTTP 500: {SHOWN}" in log
    assert _commands(log) == []
    # The description is in the ledger now: every command that shows it keeps it on one line.
    seen = {}
    for argv in (
        ["plan"],
        ["plan", "--format", "markdown"],
        ["plan", "--json"],
        ["ledger", "show", "note[unknown]"],
        ["ledger", "show", "note[unknown]", "--json"],
        ["ledger", "list"],
        ["ledger", "export"],
        ["render", "note[fails]"],
        ["render", "note[fails]", "--text"],
        ["render", "note[fails]", "--json"],
    ):
        code, log = _run(root, *argv, GITHUB_ACTIONS="true")
        assert code == 0, (argv, log)
        assert _commands(log) == [], argv
        seen[" ".join(argv)] = log
    assert SHOWN in seen["plan"]
    assert SHOWN.replace("\\", "\\\\") in seen["plan --format markdown"]  # a table cell's escape
    planned = json.loads(seen["plan --json"])["messages"][1]["request"]["body"]["data"]
    assert planned["UserStreamProviderId"] == VARIABLE  # JSON escapes, and reads back the same
    assert json.loads(seen["ledger show note[unknown] --json"])["description"] == INJECTED
    exported = [json.loads(line) for line in seen["ledger export"].splitlines()]
    assert INJECTED in [event.get("description") for event in exported]
    # render --text shows the message's own lines as lines, none of them a command.
    assert "\\::warning::from the body" in seen["render note[fails] --text"].splitlines()


def test_a_variable_in_the_text_plan_stays_on_its_line(tmp_path: Path) -> None:
    root = _project(tmp_path)
    code, log = _run(root, "plan")
    assert code == 0, log
    assert _commands(log) == []
    assert "ops\\n::warning title=x::from a variable\\r##\\[error]legacy\\u2028::notice::ls" in log
    code, log = _run(root, "plan", "--format", "markdown")
    assert _commands(log) == []


def test_a_subject_with_a_line_break_never_reaches_the_start_of_a_line(tmp_path: Path) -> None:
    """Refused by validation; the error shows it escaped, and under GitHub Actions the only
    workflow commands are the tool's own annotations."""
    root = write(
        tmp_path,
        {
            "commbox.yaml": "version: 1\nstreams: {email: b9910a75a46c492c9cf46a910cdba0012}\n",
            "messages/mail.yaml": (
                "name: mail\nchannel: email\nstream: email\nuser_stream_provider_id: a@x.org\n"
                'subject: "{{ title }}"\nto: [a@example.org]\nmessage: hi\n'
            ),
        },
    )
    title = "title=Release\n::warning title=fake::subject\r::error::x"
    for argv in (["validate"], ["plan"], ["plan", "--format", "markdown"]):
        code, log = _run(root, "--var", f"title={title}", *argv, GITHUB_ACTIONS="true")
        assert code == 1
        commands = _commands(log, allowed=("::error file=messages/mail.yaml,line=5,col=10::",))
        assert commands == [], argv
        annotations = [line for line in log.splitlines() if line.startswith("::error")]
        assert len(annotations) == 1
        assert "'title=Release\\n::warning title=fake::subject\\r::error::x'" in annotations[0]


def test_an_internal_error_and_debug_traceback_stay_one_line_each(tmp_path: Path) -> None:
    """An exception's text (which may quote a server) is escaped too, also with --debug."""
    from commbox_yaml.cli import run_command
    from commbox_yaml.context import Context
    from commbox_yaml.output import Console

    class Out:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    def broken(ctx: Context, args: object) -> int:
        raise RuntimeError("boom\n::warning::from an exception")

    for debug in (False, True):
        err = Out()
        console = Console(stdout=Out(), stderr=err, color=False)  # type: ignore[arg-type]
        ctx = Context(directory=tmp_path, console=console, debug=debug)
        assert run_command(broken, ctx, type("Args", (), {"command": "x"})()) == 1  # type: ignore[arg-type]
        assert _commands(err.text) == []
        assert "internal error: RuntimeError: boom\\n::warning::from an exception" in err.text


def test_a_usage_error_quotes_the_words_given_on_one_line(tmp_path: Path) -> None:
    root = _project(tmp_path)
    for argv in (["plan", "--x\n::warning::y"], ["bad\r::warning::y"]):
        code, log = _run(root, *argv)
        assert code == 1
        assert "::warning::y" in log
        assert _commands(log) == [], argv
