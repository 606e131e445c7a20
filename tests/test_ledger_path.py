"""`ledger path`, and the CI recipes that commit the ledger back with it: the file commbox.yaml
names, wherever that is, and nothing when the ledger is in PostgreSQL. The plan comment they
update is their own (marker and author), never someone else's that quotes the marker."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.pg import ROLE_PASSWORD, PgServer
from tests.projects import SMS, project
from tests.test_ci import (
    ACTION,
    GITLAB,
    NotesApi,
    _clean_environment,  # noqa: F401 - an autouse fixture, used by being imported
    _git,
    _gitlab_job,
    _run_action,
    _run_gitlab,
    repo,  # noqa: F401 - a fixture, used by being imported
)

MARKER = "<!-- commbox-yaml-plan: notices -->"


def _path(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main([*argv, "ledger", "path"]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


# -- the command -------------------------------------------------------------------------------


def test_ledger_path_prints_the_file_commbox_yaml_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, SMS).resolve()
    assert _path(capsys, "-C", str(root)) == f"{root}/.commbox/ledger.jsonl\n"
    commbox = root / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "ledger: {path: records/sent.jsonl}\n")
    assert _path(capsys, "-C", str(root)) == f"{root}/records/sent.jsonl\n"
    # From a folder inside the project, as from its root; the file need not exist yet.
    assert _path(capsys, "-C", str(root / "messages")) == f"{root}/records/sent.jsonl\n"
    assert not (root / "records").exists()
    monkeypatch.chdir(root / "messages")
    assert _path(capsys) == f"{root}/records/sent.jsonl\n"
    capsys.readouterr()
    assert main(["ledger", "path", "--sandbox"]) == 0
    assert capsys.readouterr().out == f"{root}/.commbox/sandbox-ledger.jsonl\n"


def test_ledger_path_takes_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path, SMS)
    assert main(["-C", str(root), "ledger", "path", "x"]) == 1
    assert capsys.readouterr().err == (
        "error: ledger path takes no KEY or FILE: it prints where the ledger is\n"
    )


def test_ledger_path_of_a_database_shows_no_password_and_connects_to_nothing(
    tmp_path: Path,
    postgres: PgServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = postgres.new_database()
    root = project(tmp_path, SMS)
    commbox = root / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "ledger: {namespace: team}\n")
    monkeypatch.setenv("COMMBOX_LEDGER_URL", postgres.url(database, password=ROLE_PASSWORD))
    before = postgres.sessions(database)
    shown = _path(capsys, "-C", str(root))
    assert shown == (
        f"postgresql://commbox@127.0.0.1:{postgres.port}/{database} (namespace team)\n"
    )
    assert ROLE_PASSWORD not in shown
    assert postgres.sessions(database) == before


# -- the GitHub Action ----------------------------------------------------------------------------


def test_the_recipes_ask_commbox_yaml_where_the_ledger_is() -> None:
    action, gitlab = ACTION.read_text(), GITLAB.read_text()
    assert "ledger=$(commbox-yaml ledger path)" in action
    assert 'ledger=$(commbox-yaml -C "$COMMBOX_DIR" ledger path)' in gitlab
    for text in (action, gitlab):
        assert '.commbox/ledger.jsonl"' not in text  # no hard-coded ledger file in a command
    assert "ledger-path" not in yaml.safe_load(action)["inputs"]


def _move_the_ledger(work: Path) -> None:
    """commbox.yaml puts the ledger in records/sent.jsonl, committed to main."""
    commbox = work / "notices" / "commbox.yaml"
    commbox.write_text(
        commbox.read_text().replace("path: .commbox/ledger.jsonl", "path: records/sent.jsonl", 1)
    )
    _git(work, "commit", "--quiet", "-am", "the ledger lives in records/")
    _git(work, "push", "--quiet", "origin", "main")


def test_action_commits_the_ledger_where_commbox_yaml_puts_it(
    repo: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    server: SandboxServer,
) -> None:
    work, origin = repo
    _move_the_ledger(work)
    sending = {
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox",
        "COMMIT_LEDGER": "true",
    }
    result, files = _run_action(work / "notices", tmp_path, "apply", **sending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::warning" not in result.stdout
    assert len(server.accepted) == 5
    ledger = _git(origin, "show", "main:notices/records/sent.jsonl")
    assert sum('"sent"' in line for line in ledger.splitlines()) == 5
    # A fresh checkout (the next run) has the ledger, so nothing is sent again.
    fresh = tmp_path / "fresh"
    _git(tmp_path, "clone", "--quiet", str(origin), str(fresh))
    again, files = _run_action(fresh / "notices", tmp_path, "apply", **sending)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to send" in files["summary.md"]
    assert len(server.accepted) == 5


def test_action_has_nothing_to_commit_for_a_database_ledger(
    repo: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    server: SandboxServer,
    postgres: PgServer,
) -> None:
    work, origin = repo
    database = postgres.new_database()
    head = _git(origin, "rev-parse", "main")
    sending = {
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox",
        "COMMIT_LEDGER": "true",
        "COMMBOX_LEDGER_URL": postgres.url(database, password=ROLE_PASSWORD),
    }
    result, _files = _run_action(work / "notices", tmp_path, "apply", **sending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(server.accepted) == 5
    assert "the ledger is in PostgreSQL (postgresql://commbox@127.0.0.1:" in result.stdout
    assert "nothing to commit" in result.stdout
    assert ROLE_PASSWORD not in result.stdout + result.stderr
    assert _git(origin, "rev-parse", "main") == head


def test_action_updates_its_own_comment_not_one_that_quotes_the_marker(
    repo: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    work, _ = repo
    with NotesApi("github", existing=2) as api:
        # Someone pasted the marker first: their comment must not be overwritten.
        api.add(900, f"{MARKER}\nlook at this", "mallory")
        pr = {"PR_NUMBER": "7", "GITHUB_API_URL": api.url}
        for _ in range(2):
            result, _files = _run_action(work / "notices", tmp_path, "plan", **pr)
            assert result.returncode == 0, result.stderr
        mine = [c for c in api.ours(MARKER) if c["user"]["login"] == "github-actions[bot]"]
        (comment,) = mine
        assert "5 to send" in comment["body"]
        (theirs,) = [c for c in api.comments if c["id"] == 900]
        assert theirs["body"] == f"{MARKER}\nlook at this"
        # With a personal token, the comment is that person's: found by their login.
        api.add(901, f"{MARKER}\nbot-like", "github-actions[bot]")
        result, _files = _run_action(
            work / "notices", tmp_path, "plan", GH_TOKEN="personal-token", **pr
        )
        assert result.returncode == 0, result.stderr
        (personal,) = [c for c in api.ours(MARKER) if c["user"]["login"] == "octo-release"]
    methods = [m for m, _, _ in api.calls if m in ("POST", "PATCH")]
    assert methods == ["POST", "PATCH", "POST"]
    patched = [path for m, path, _ in api.calls if m == "PATCH"]
    assert patched == [f"/repos/acme/notices/issues/comments/{comment['id']}"]
    assert personal["id"] != comment["id"]


# -- the GitLab recipe ---------------------------------------------------------------------------


def test_gitlab_pushes_the_ledger_where_commbox_yaml_puts_it(
    repo: tuple[Path, Path],  # noqa: F811
    server: SandboxServer,
) -> None:
    work, origin = repo
    _move_the_ledger(work)
    _git(work, "checkout", "--quiet", "--detach")
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
    assert "warning" not in result.stdout
    ledger = _git(origin, "show", "main:notices/records/sent.jsonl")
    assert sum('"sent"' in line for line in ledger.splitlines()) == 5


def test_gitlab_has_nothing_to_push_for_a_database_ledger(
    repo: tuple[Path, Path],  # noqa: F811
    server: SandboxServer,
    postgres: PgServer,
) -> None:
    work, origin = repo
    database = postgres.new_database()
    head = _git(origin, "rev-parse", "main")
    env = {
        "COMMBOX_BASE_URL": server.url,
        "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox",
        "COMMBOX_GITLAB_TOKEN": "project-token",
        "COMMBOX_LEDGER_URL": postgres.url(database, password=ROLE_PASSWORD),
        "CI_REPOSITORY_URL": f"file://{origin}",
        "CI_DEFAULT_BRANCH": "main",
        "CI_SERVER_HOST": "gitlab.example.com",
    }
    result = _run_gitlab(work, _gitlab_job("commbox-apply"), **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(server.accepted) == 5
    assert "the ledger is in PostgreSQL" in result.stdout
    assert ROLE_PASSWORD not in result.stdout + result.stderr
    assert _git(origin, "rev-parse", "main") == head


def test_gitlab_updates_its_own_note_not_one_that_quotes_the_marker(
    repo: tuple[Path, Path],  # noqa: F811
) -> None:
    work, _ = repo
    with NotesApi("gitlab", existing=1) as api:
        api.add(900, f"{MARKER}\nnot the bot's", "mallory")
        env = {
            "CI_API_V4_URL": f"{api.url}/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": "9",
            "CI_JOB_TOKEN": "job-token",
            "GITLAB_USER_LOGIN": "ci-user",
            "COMMBOX_GITLAB_TOKEN": "project-token",
        }
        for _ in range(2):
            result = _run_gitlab(work, _gitlab_job("commbox-plan"), **env)
            assert result.returncode == 0, result.stdout + result.stderr
    (mine,) = [c for c in api.ours(MARKER) if c["author"]["username"] == "bot-42"]
    assert "5 to send" in mine["body"]
    (theirs,) = [c for c in api.comments if c["id"] == 900]
    assert theirs["body"] == f"{MARKER}\nnot the bot's"
    assert [m for m, _, _ in api.calls if m != "GET"] == ["POST", "PUT"]


def test_action_apply_summary_keeps_a_servers_backticks_inside_its_fence(
    repo: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    server: SandboxServer,
) -> None:
    """A description holding ``` cannot close the summary's code block and add Markdown."""
    from commbox_yaml.sandbox import Fault

    work, _ = repo
    server.script(Fault(status=400, description="no ```` \n# Click [here](https://evil.example)"))
    sending = {"COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": "t0ken-for-the-sandbox"}
    result, files = _run_action(work / "notices", tmp_path, "apply", **sending)
    assert result.returncode == 1
    lines = files["summary.md"].splitlines()
    assert lines[1] == lines[-1] == "`````"
    assert sum(line.startswith("```") for line in lines) == 2
    assert not any(line.startswith("# Click") for line in lines)
