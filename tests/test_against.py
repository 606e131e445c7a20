"""What changed since a git ref: the project as of the ref, built from a real git repository
under tmp_path, and the old -> new text of each changed field, words marked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commbox_yaml.cli import main
from commbox_yaml.errors import UserError
from commbox_yaml.preview.against import requests_at
from commbox_yaml.preview.diff import changed_fields, field_texts, marked, word_diff
from commbox_yaml.project import load_project
from tests.projects import project

NOTICE = """\
name: notice
channel: sms
stream: sms
id: "notice-{{ version }}"
user_stream_provider_id: "972544444444"
message: "Acme {{ version }} is out: {{ news }}"
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.org",
            "HOME": str(root),
            "PATH": "/usr/bin:/bin:/usr/local/bin",
        },
    )
    return done.stdout.strip()


def repository(tmp_path: Path) -> Path:
    """A repository whose project lives in a subfolder, with one commit on main."""
    repo = tmp_path / "repo"
    root = project(repo / "notices", NOTICE, "version: '1.4'\nnews: faster sends\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    return root


# -- the words ------------------------------------------------------------------------------------


def test_a_changed_word_is_marked_and_the_rest_kept() -> None:
    pieces = word_diff("Acme 1.4 is out: faster sends", "Acme 1.5 is out: faster, safer sends")
    assert marked(pieces) == "Acme [-1.4-]{+1.5+} is out: faster{+, safer+} sends"


@given(st.text(), st.text())
def test_the_pieces_give_back_both_texts(old: str, new: str) -> None:
    pieces = word_diff(old, new)
    assert "".join(p.text for p in pieces if p.kind != "added") == old
    assert "".join(p.text for p in pieces if p.kind != "removed") == new


def test_fields_are_compared_as_text_by_their_path() -> None:
    old = {"data": {"Message": "hi", "Content": {"to": [{"address": "a@x.org"}]}, "Type": 4}}
    new = {"data": {"Message": "hi!", "Content": {"to": [{"address": "b@x.org"}]}, "Type": 4}}
    changes = changed_fields(old, new)
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("data.Message", "hi", "hi!"),
        ("data.Content.to[0].address", "a@x.org", "b@x.org"),
    ]
    assert dict(field_texts({"n": 4, "b": True})) == {"n": "4", "b": "true"}
    only_old = changed_fields({"data": {"X": "1"}}, {"data": {}})
    assert [(c.path, c.old, c.new) for c in only_old] == [("data.X", "1", None)]


# -- the project as of a ref ----------------------------------------------------------------------


def test_the_requests_as_of_a_ref_are_built_from_that_commit(tmp_path: Path) -> None:
    root = repository(tmp_path)
    (root / "vars" / "common.yaml").write_text("version: '1.4'\nnews: faster, safer sends\n")
    before = requests_at("main", load_project(root), [], [])
    assert before.existed
    assert before.commit == git(root, "rev-parse", "HEAD")
    previous = before.requests["notice-1.4"]
    assert previous.body["data"]["Message"] == "Acme 1.4 is out: faster sends"
    now = requests_at("HEAD", load_project(root), [], ["news=anything"])
    assert now.requests["notice-1.4"].body["data"]["Message"] == "Acme 1.4 is out: anything"
    assert git(root, "status", "--porcelain") == "M notices/vars/common.yaml"  # untouched


def test_a_ref_before_the_project_existed_has_no_requests(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "before")
    root = project(repo / "notices", NOTICE, "version: '1.4'\nnews: n\n")
    against = requests_at("main", load_project(root), [], [])
    assert not against.existed
    assert against.requests == {}


@pytest.mark.parametrize(
    ("ref", "says"),
    [("no-such-branch", "no commit is named 'no-such-branch'"), ("--output=x", "not a git ref")],
)
def test_an_unknown_ref_is_one_clear_error(tmp_path: Path, ref: str, says: str) -> None:
    root = repository(tmp_path)
    with pytest.raises(UserError, match=says):
        requests_at(ref, load_project(root), [], [])


def test_outside_a_git_repository_is_one_clear_error(tmp_path: Path) -> None:
    root = project(tmp_path / "plain", NOTICE, "version: '1.4'\nnews: n\n")
    with pytest.raises(UserError, match="is not in a git repository"):
        requests_at("main", load_project(root), [], [])


# -- plan --against ------------------------------------------------------------------------------

EXTRA = """\
name: extra
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: "an extra one"
"""


def test_plan_json_says_for_each_message_what_changed_since_the_ref(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repository(tmp_path)
    (root / "messages" / "extra.yaml").write_text(EXTRA)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "an extra message")
    (root / "vars" / "common.yaml").write_text("version: '1.4'\nnews: faster, safer sends\n")
    (root / "messages" / "extra.yaml").unlink()
    (root / "messages" / "later.yaml").write_text(EXTRA.replace("extra", "later"))
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--json", "--against", "HEAD"]) == 0
    plan = json.loads(capsys.readouterr().out)
    by_key = {m["key"]: m["against"] for m in plan["messages"]}
    assert by_key["notice-1.4"]["status"] == "changed"
    assert by_key["notice-1.4"]["changed_fields"] == ["data.Message"]
    previous = by_key["notice-1.4"]["previous_request"]["body"]["data"]["Message"]
    assert previous == "Acme 1.4 is out: faster sends"
    assert by_key["later"] == {
        "ref": "HEAD",
        "status": "new",
        "changed_fields": [],
        "previous_request": None,
    }
    assert [r["key"] for r in plan["against"]["removed"]] == ["extra"]
    assert plan["against"]["commit"] == git(root, "rev-parse", "HEAD")
    # Committed: nothing differs any more.
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "1.4 news")
    assert main(["-C", str(root), "plan", "--json", "--against", "HEAD"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {m["against"]["status"] for m in plan["messages"]} == {"same"}
    assert plan["against"]["removed"] == []


def test_the_text_and_markdown_plans_show_old_and_new_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repository(tmp_path)
    (root / "vars" / "common.yaml").write_text("version: '1.4'\nnews: faster, safer sends\n")
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--against", "main"]) == 0
    text = capsys.readouterr().out
    assert "Changed since main" in text
    assert "data.Message: Acme 1.4 is out: faster{+, safer+} sends" in text
    assert main(["-C", str(root), "plan", "--format", "markdown", "--against", "main"]) == 0
    markdown = capsys.readouterr().out
    assert "#### Changed since `main`" in markdown
    assert "<details><summary><code>notice</code></summary>" in markdown
    assert "faster<ins>, safer</ins> sends" in markdown
