"""The CI files a newcomer copies: action.yml, the workflow `init` writes, and the GitLab example.

They must parse, name only commands and flags that exist, and do what they say: the action's
script and the GitLab jobs are run here with bash, against a real commbox-yaml, the sandbox,
real git repositories, and a small HTTP server standing in for the GitHub and GitLab APIs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from commbox_yaml.cli import main, make_parser
from commbox_yaml.sandbox import Fault, SandboxServer
from tests.test_fit import _invocations, _parse

TOP = Path(__file__).resolve().parent.parent
ACTION = TOP / "action.yml"
GITLAB = TOP / "examples" / "ci" / "gitlab-ci.yml"
BIN = Path(sys.executable).parent  # holds the commbox-yaml this test suite runs
COMMANDS = ("validate", "plan", "apply")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("COMMBOX_", "GITHUB_", "CI_"))]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("NO_COLOR", raising=False)


def _action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return loaded


def _run_script() -> str:
    (step,) = [s for s in _action()["runs"]["steps"] if s.get("id") == "run"]
    script: str = step["run"]
    return script


# -- the files parse and name only what exists -------------------------------------------------


def test_the_action_is_a_composite_action_with_the_documented_inputs() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert inputs["command"]["required"] is True
    assert {"command", "working-directory", "args"} <= set(inputs)
    assert all("description" in spec for spec in inputs.values())
    install = " ".join(s.get("run", "") for s in action["runs"]["steps"])
    assert 'install --quiet --disable-pip-version-check "$GITHUB_ACTION_PATH"' in install
    # Every input the steps read exists, and every input is read.
    text = ACTION.read_text()
    used = set(re.findall(r"inputs\.([a-z-]+)", text))
    assert used == set(inputs)


def test_the_action_names_only_commands_and_flags_that_exist() -> None:
    found = _invocations(_run_script())
    assert {tuple(argv[:1]) for argv in found} >= {("validate",), ("plan",)}
    parser = make_parser()
    commands = {_parse(parser, argv).command for argv in found}
    assert commands == {*COMMANDS, "preview"}


def test_the_gitlab_example_names_only_commands_and_flags_that_exist() -> None:
    pipeline = yaml.safe_load(GITLAB.read_text())
    jobs = {
        name: job for name, job in pipeline.items() if isinstance(job, dict) and "script" in job
    }
    assert set(jobs) == {"commbox-validate", "commbox-plan", "commbox-apply"}
    assert set(pipeline["stages"]) == {"validate", "plan", "apply"}
    parser = make_parser()
    commands = set()
    for job in jobs.values():
        for argv in _invocations("\n".join(job["script"])):
            commands.add(_parse(parser, argv).command)
    assert commands == {*COMMANDS, "preview"}
    apply_rule = jobs["commbox-apply"]["rules"][0]["if"]
    assert apply_rule == "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"
    assert jobs["commbox-apply"]["resource_group"]
    assert "merge_request_event" in jobs["commbox-plan"]["rules"][0]["if"]


def test_the_init_workflow_uses_the_action(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "commbox.yml").read_text())
    inputs = _action()["inputs"]
    uses = 0
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("OWNER/commbox-yaml@"):
                uses += 1
                assert step["with"]["command"] in COMMANDS
                assert set(step["with"]) <= set(inputs)
                assert not _invocations(step.get("run", ""))
    assert uses == 4
    # A test send from a manual run: the recipients come from the run's input, to `test-to`.
    dispatch = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads `on` as true
    assert dispatch["test-to"]["required"] is True
    test = workflow["jobs"]["test-send"]
    assert test["if"] == "github.event_name == 'workflow_dispatch'"
    (step,) = [s for s in test["steps"] if "with" in s and s["with"]["command"] == "apply"]
    assert step["with"]["test-to"] == "${{ inputs.test-to }}"
    assert test["concurrency"]["group"] == workflow["jobs"]["apply"]["concurrency"]["group"]


def test_every_input_reaches_the_script_through_the_environment() -> None:
    """No input is written into a shell script: `${{ }}` in `run:` would run what it holds."""
    action = _action()
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", "")
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
    env = step["env"]
    assert env["TEST_TO"] == "${{ inputs.test-to }}"
    assert env["APPLY_PLAN"] == "${{ inputs.plan-file }}"
    assert env["EXPECT_DIGEST"] == "${{ inputs.expect-digest }}"
    for name in ("test-to", "plan-file", "expect-digest"):
        assert action["inputs"][name]["default"] == ""


# -- a stand-in for the GitHub and GitLab comment APIs -------------------------------------------


# Who each token is. GitHub's Actions token and GitLab's job token cannot read /user.
USERS = {"github-token": "github-actions[bot]", "job-token": "ci-user", "project-token": "bot-42",
         "personal-token": "octo-release"}  # fmt: skip
READS_USER = {"project-token", "personal-token"}


class NotesApi:
    """Comments on one pull request (GitHub) or notes on one merge request (GitLab), each
    with its author as the API gives it (`user.login` on GitHub, `author.username` on GitLab)."""

    def __init__(self, flavour: str, existing: int = 0) -> None:
        self.flavour = flavour
        self.comments: list[dict[str, Any]] = []
        for n in range(existing):
            self.add(1000 + n, f"someone else's comment {n}", "someone")
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.calls.append(("GET", self.path, dict(self.headers)))
                if urlsplit(self.path).path.endswith("/user"):
                    token = api.token(dict(self.headers))
                    if token not in READS_USER:
                        self._reply(403, {"message": "Resource not accessible by integration"})
                    else:
                        self._reply(200, {"login": USERS[token], "username": USERS[token]})
                    return
                query = parse_qs(urlsplit(self.path).query)
                page, size = int(query["page"][0]), int(query["per_page"][0])
                listed = api.comments[(page - 1) * size : page * size]
                more = page * size < len(api.comments)
                self._reply(200, listed, {"X-Next-Page": str(page + 1) if more else ""})

            def do_POST(self) -> None:
                body = self._body()
                api.calls.append(("POST", self.path, dict(self.headers)))
                author = USERS[api.token(dict(self.headers))]
                self._reply(201, api.add(1 + len(api.comments) + 5000, body["body"], author))

            def do_PATCH(self) -> None:
                self._update("PATCH")

            def do_PUT(self) -> None:
                self._update("PUT")

            def _update(self, method: str) -> None:
                body = self._body()
                api.calls.append((method, self.path, dict(self.headers)))
                wanted = int(self.path.rstrip("/").rsplit("/", 1)[1])
                (comment,) = [c for c in api.comments if c["id"] == wanted]
                comment["body"] = body["body"]
                self._reply(200, comment)

            def _body(self) -> dict[str, Any]:
                loaded: dict[str, Any] = json.loads(
                    self.rfile.read(int(self.headers["Content-Length"]))
                )
                return loaded

            def _reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, number: int, body: str, author: str) -> dict[str, Any]:
        who = (
            {"user": {"login": author}}
            if self.flavour == "github"
            else {"author": {"username": author}}
        )
        comment = {"id": number, "body": body, **who}
        self.comments.append(comment)
        return comment

    def token(self, headers: dict[str, str]) -> str:
        if self.flavour == "github":
            return headers["Authorization"].removeprefix("Bearer ")
        return headers.get("Private-Token") or headers["Job-Token"]

    def __enter__(self) -> NotesApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ours(self, marker: str) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["body"].startswith(marker)]


# -- running the action's script as GitHub runs it ----------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=_git_env()
    )
    return result.stdout


def _git_env() -> dict[str, str]:
    # No proxy of the machine's: every server here is on 127.0.0.1.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and not k.lower().endswith("_proxy")
    }
    env.update(
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
    )  # fmt: skip
    return env


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Path]:
    """A clone of a bare 'origin' whose main holds an init'd project under notices/."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    work = tmp_path / "work"
    _git(tmp_path, "clone", "--quiet", str(origin), str(work))
    _git(work, "checkout", "--quiet", "-b", "main")
    assert main(["init", str(work / "notices")]) == 0
    _git(work, "add", "-A")
    _git(work, "commit", "--quiet", "-m", "notices")
    _git(work, "push", "--quiet", "origin", "main")
    return work, origin


def _run_action(
    where: Path, tmp_path: Path, command: str, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The action's main step, run the way GitHub runs a `shell: bash` step."""
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    files = {name: runner / name for name in ("summary.md", "output.txt")}
    for path in files.values():
        path.write_text("")
    env = {
        **_git_env(),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RUNNER_TEMP": str(runner),
        "GITHUB_STEP_SUMMARY": str(files["summary.md"]),
        "GITHUB_OUTPUT": str(files["output.txt"]),
        "GITHUB_REPOSITORY": "acme/notices",
        "COMMAND": command,
        "ARGS": "",
        "WORKDIR": "notices",
        "COMMENT": "true",
        "COMMIT_LEDGER": "false",
        "TEST_TO": "",
        "APPLY_PLAN": "",
        "EXPECT_DIGEST": "",
        "LEDGER_BRANCH": "main",
        "PR_NUMBER": "",
        "GH_TOKEN": "github-token",
        **inputs,
    }
    script = runner / "step.sh"
    script.write_text(_run_script())
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=where, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    return result, {name: path.read_text() for name, path in files.items()}


def _outputs(files: dict[str, str]) -> dict[str, str]:
    """The step's outputs (`name=value` lines of $GITHUB_OUTPUT)."""
    return dict(line.split("=", 1) for line in files["output.txt"].splitlines())


def test_action_validate_reports_and_fails_on_an_error(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = repo
    result, files = _run_action(work / "notices", tmp_path, "validate")
    assert result.returncode == 0, result.stderr
    assert "validate: 5 messages from 4 files valid." in result.stdout
    assert files["output.txt"] == "exit-code=0\n"

    broken = work / "notices" / "messages" / "oncall-sms.yaml"
    broken.write_text(broken.read_text().replace("{{ product }}", "{{ prodcut }}"))
    result, files = _run_action(work / "notices", tmp_path, "validate", GITHUB_ACTIONS="true")
    assert result.returncode == 1
    assert files["output.txt"] == "exit-code=1\n"
    # Annotations name the file from the repository's top, where GitHub looks for it.
    assert "::error file=notices/messages/oncall-sms.yaml,line=8" in result.stdout
    assert "did you mean 'product'?" in result.stderr


def test_action_plan_comments_once_and_updates_in_place(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = repo
    marker = "<!-- commbox-yaml-plan: notices -->"
    with NotesApi("github", existing=130) as api:  # ours lands on the second page
        pr = {"PR_NUMBER": "7", "GITHUB_API_URL": api.url}
        first, files = _run_action(work / "notices", tmp_path, "plan", **pr)
        assert first.returncode == 0, first.stderr
        (comment,) = api.ours(marker)
        assert "5 to send" in comment["body"]
        assert "5 to send" in files["summary.md"]
        outputs = _outputs(files)
        assert outputs["exit-code"] == "0"
        assert (Path(outputs["preview"]) / "index.html").is_file()
        assert outputs["preview-name"] == "commbox-preview-notices"
        assert "Preview every message" in comment["body"]
        assert "/acme/notices/actions/runs/" in comment["body"]

        # A quoted glob and a bracketed address pass through `args` intact.
        args = "--target 'customer-whatsapp[first-customer]' --replace 'release-*'"
        second, _ = _run_action(work / "notices", tmp_path, "plan", ARGS=args, **pr)
        assert second.returncode == 0, second.stderr
        (updated,) = api.ours(marker)
        assert updated["id"] == comment["id"]
        assert "1 to send" in updated["body"]
        assert "customer-whatsapp[first-customer]" in updated["body"]
        assert "release-email" not in updated["body"]

    methods = [method for method, _, _ in api.calls if method != "GET"]
    assert methods == ["POST", "PATCH"]
    (_, path, headers) = next(c for c in api.calls if c[0] == "PATCH")
    assert path == f"/repos/acme/notices/issues/comments/{comment['id']}"
    assert headers["Authorization"] == "Bearer github-token"
    assert len(api.comments) == 131


def test_action_plan_on_a_pull_request_shows_what_changed_since_its_base(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = repo
    sms = work / "notices" / "messages" / "oncall-sms.yaml"
    text = sms.read_text()
    assert "is going out now" in text
    sms.write_text(text.replace("is going out now", "is going out today"))
    marker = "<!-- commbox-yaml-plan: notices -->"
    with NotesApi("github") as api:
        pr = {"PR_NUMBER": "7", "GITHUB_API_URL": api.url, "GITHUB_BASE_REF": "main"}
        result, files = _run_action(work / "notices", tmp_path, "plan", **pr)
        assert result.returncode == 0, result.stderr
        (comment,) = api.ours(marker)
    body = comment["body"]
    assert "#### Changed since `origin/main`" in body
    assert "is going out <del>now</del><ins>today</ins>" in body
    assert re.search(r"Plan digest: `sha256:[0-9a-f]{64}`", body)
    site = Path(_outputs(files)["preview"])
    assert "<th>Since origin/main</th>" in (site / "index.html").read_text()


def test_action_plan_outside_a_pull_request_writes_the_summary_only(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = repo
    result, files = _run_action(
        work / "notices",
        tmp_path,
        "plan",
        ARGS="--detailed-exitcode",
        GITHUB_API_URL="http://127.0.0.1:9",
    )
    assert result.returncode == 0, result.stderr  # 2 "would send" is not a failed step
    assert _outputs(files)["exit-code"] == "2"
    assert "5 to send" in files["summary.md"]


def test_action_comment_failure_is_a_warning(repo: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = repo
    # Port 9 (discard) refuses: as a fork's read-only token would, the comment fails.
    result, files = _run_action(
        work / "notices", tmp_path, "plan", PR_NUMBER="7", GITHUB_API_URL="http://127.0.0.1:9"
    )
    assert result.returncode == 0
    assert "::warning::could not comment the plan" in result.stdout
    assert "5 to send" in files["summary.md"]


def test_action_apply_sends_and_commits_the_ledger(
    repo: tuple[Path, Path], tmp_path: Path, server: SandboxServer
) -> None:
    work, origin = repo
    # Someone else pushed meanwhile: the ledger commit must be rebased onto theirs.
    other = tmp_path / "other"
    _git(tmp_path, "clone", "--quiet", str(origin), str(other))
    (other / "README.md").write_text("notices\n")
    _git(other, "add", "README.md")
    _git(other, "commit", "--quiet", "-m", "readme")
    _git(other, "push", "--quiet", "origin", "main")

    sending = {
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox",
        "COMMIT_LEDGER": "true",
    }
    result, files = _run_action(work / "notices", tmp_path, "apply", **sending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Apply complete: 5 sent, 0 failed, 0 unknown." in files["summary.md"]
    assert files["output.txt"] == "exit-code=0\n"
    assert len(server.accepted) == 5

    ledger = _git(origin, "show", "main:notices/.commbox/ledger.jsonl")
    sent = [json.loads(line) for line in ledger.splitlines() if '"sent"' in line]
    assert len(sent) == 5
    log = _git(origin, "log", "--format=%s", "main")
    assert log.splitlines()[:2] == ["commbox: record sends [skip ci]", "readme"]

    # The next run finds everything in the ledger it committed: nothing is sent again.
    _git(work, "pull", "--quiet", "origin", "main")
    again, files = _run_action(work / "notices", tmp_path, "apply", **sending)
    assert again.returncode == 0
    assert "nothing to send" in files["summary.md"]
    assert len(server.accepted) == 5


def test_action_test_to_sends_to_the_test_recipients_only(
    repo: tuple[Path, Path], tmp_path: Path, server: SandboxServer
) -> None:
    work, _ = repo
    sending = {"COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox"}
    recipients = "qa@test.example,\n  +1 (555) 010-9999\n"
    result, files = _run_action(work / "notices", tmp_path, "apply", TEST_TO=recipients, **sending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Test sends complete: 4 sent, 0 failed, 0 unknown." in files["summary.md"]
    assert "skipped: chat has no recipient to replace" in files["summary.md"]
    assert len(server.accepted) == 4
    for received in server.accepted:
        whole = json.dumps(received.data)
        assert "qa@test.example" in whole or "15550109999" in whole
    ledger = work / "notices" / ".commbox" / "ledger.jsonl"
    keys = {json.loads(line)["key"] for line in ledger.read_text().splitlines()}
    assert len(keys) == 4
    assert all(key.startswith("test:") for key in keys)

    # A recipient is an argument, never shell code.
    hostile = "$(touch pwned),`touch pwned2`"
    result, files = _run_action(work / "notices", tmp_path, "apply", TEST_TO=hostile, **sending)
    assert result.returncode == 1
    assert "--test-to '$(touch pwned)' is neither" in result.stdout
    assert not list((work / "notices").glob("pwned*"))
    assert len(server.accepted) == 4


def test_action_applies_the_approved_plan_file_only(
    repo: tuple[Path, Path], tmp_path: Path, server: SandboxServer
) -> None:
    work, _ = repo
    sending = {"COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox"}
    planned, files = _run_action(
        work / "notices", tmp_path, "plan", ARGS="-out approved.plan", **sending
    )
    assert planned.returncode == 0, planned.stderr
    (approved,) = set(re.findall(r"sha256:[0-9a-f]{64}", files["summary.md"]))
    other = "sha256:" + "0" * 64

    # A digest without a plan file, and a plan file whose digest was not approved: nothing.
    result, files = _run_action(work / "notices", tmp_path, "apply", EXPECT_DIGEST=approved)
    assert result.returncode == 1
    assert "::error::expect-digest checks a plan file" in result.stdout
    assert files["output.txt"] == "exit-code=1\n"
    result, _ = _run_action(
        work / "notices", tmp_path, "apply",
        APPLY_PLAN="approved.plan", EXPECT_DIGEST=other, **sending,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"not the approved {other}" in result.stdout
    assert server.received == []

    result, files = _run_action(
        work / "notices", tmp_path, "apply",
        APPLY_PLAN="approved.plan", EXPECT_DIGEST=approved, **sending,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "Apply complete: 5 sent, 0 failed, 0 unknown." in files["summary.md"]
    assert len(server.accepted) == 5


def test_action_refuses_an_unknown_command(repo: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = repo
    result, files = _run_action(work / "notices", tmp_path, "destroy")
    assert result.returncode == 1
    assert "::error::command must be validate, plan or apply" in result.stdout
    assert files["output.txt"] == "exit-code=1\n"


# -- the GitLab example's jobs -----------------------------------------------------------------


def _gitlab_job(name: str) -> str:
    job = yaml.safe_load(GITLAB.read_text())[name]
    return "\n".join(job["script"])


def _run_gitlab(where: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    variables = yaml.safe_load(GITLAB.read_text())["variables"]
    full = {
        **_git_env(),
        **variables,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "COMMBOX_DIR": "notices",
        **env,
    }
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=where, env=full, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("token", ["project-token", ""])
def test_gitlab_plan_posts_one_note_and_updates_it(repo: tuple[Path, Path], token: str) -> None:
    work, _ = repo
    marker = "<!-- commbox-yaml-plan: notices -->"
    with NotesApi("gitlab", existing=3) as api:
        env = {
            "CI_API_V4_URL": f"{api.url}/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": "9",
            "CI_JOB_TOKEN": "job-token",
            "GITLAB_USER_LOGIN": "ci-user",
            "COMMBOX_GITLAB_TOKEN": token,
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
            "CI_PROJECT_URL": "https://gitlab.example/acme/notices",
            "CI_JOB_ID": "77",
        }
        sms = work / "notices" / "messages" / "oncall-sms.yaml"
        sms.write_text(sms.read_text().replace("is going out now", "is going out today"))
        for _ in range(2):
            result = _run_gitlab(work, _gitlab_job("commbox-plan"), **env)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "warning" not in result.stdout
    (note,) = api.ours(marker)
    assert "5 to send" in note["body"]
    assert [m for m, _, _ in api.calls if m != "GET"] == ["POST", "PUT"]
    (_, path, headers) = next(c for c in api.calls if c[0] == "PUT")
    assert path == f"/api/v4/projects/42/merge_requests/9/notes/{note['id']}"
    if token:
        assert headers["Private-Token"] == "project-token"
    else:
        assert headers["Job-Token"] == "job-token"
    assert (work / "plan.md").read_text().startswith("#")
    # Against the target branch, and the preview kept as the job's artifact preview/.
    assert "is going out <del>now</del><ins>today</ins>" in note["body"]
    assert "/-/jobs/77/artifacts/browse/preview/" in note["body"]
    assert (work / "preview" / "index.html").is_file()


def test_gitlab_apply_sends_and_pushes_the_ledger(
    repo: tuple[Path, Path], server: SandboxServer
) -> None:
    work, origin = repo
    _git(work, "checkout", "--quiet", "--detach")  # GitLab runs jobs on a detached HEAD
    env = {
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox",
        "COMMBOX_GITLAB_TOKEN": "project-token",
        "CI_REPOSITORY_URL": f"file://{origin}",
        "CI_DEFAULT_BRANCH": "main",
        "CI_SERVER_HOST": "gitlab.example.com",
    }
    result = _run_gitlab(work, _gitlab_job("commbox-apply"), **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(server.accepted) == 5
    ledger = _git(origin, "show", "main:notices/.commbox/ledger.jsonl")
    assert sum('"sent"' in line for line in ledger.splitlines()) == 5

    # A send that fails still has its ledger pushed, and fails the job.
    server.script(Fault(status=400, description="no such customer"))
    variables = work / "notices" / "vars" / "common.yaml"
    variables.write_text(variables.read_text().replace("0.1.0", "0.1.1"))  # new keys: 5 sends
    result = _run_gitlab(work, _gitlab_job("commbox-apply"), **env)
    assert result.returncode == 1
    assert "Apply complete: 4 sent, 1 failed, 0 unknown." in result.stdout
    ledger = _git(origin, "show", "main:notices/.commbox/ledger.jsonl")
    assert sum('"sent"' in line for line in ledger.splitlines()) == 9
    assert sum('"failed"' in line for line in ledger.splitlines()) == 1


def test_action_plan_with_an_error_comments_nothing(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = repo
    broken = work / "notices" / "messages" / "team-chat.yaml"
    broken.write_text(broken.read_text().replace("{{ version }}", "{{ verison }}", 1))
    with NotesApi("github") as api:
        result, files = _run_action(
            work / "notices",
            tmp_path,
            "plan",
            PR_NUMBER="7",
            GITHUB_API_URL=api.url,
            GITHUB_ACTIONS="true",
        )
    assert result.returncode == 1
    assert files["output.txt"] == "exit-code=1\n"
    assert "::error file=notices/messages/team-chat.yaml,line=5" in result.stdout
    assert "did you mean 'version'?" in result.stderr
    assert api.calls == []
    assert files["summary.md"] == ""


def test_action_refuses_args_it_cannot_split(repo: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = repo
    result, files = _run_action(work / "notices", tmp_path, "validate", ARGS="--var 'a=b")
    assert result.returncode == 1
    assert "::error::the args input is not shell words" in result.stdout
    assert files["output.txt"] == "exit-code=1\n"
