"""init [DIR]: the starter project, written from package data, never over existing files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.resources.abc import Traversable
from pathlib import Path

import pytest
import yaml

from commbox_yaml import __version__
from commbox_yaml.cli import main
from commbox_yaml.commands.init import scaffold_files
from commbox_yaml.resources import templates
from tests.projects import build_project

EXPECTED = [
    "commbox.yaml",
    ".commbox/.gitignore",
    ".commbox/ledger.jsonl",
    ".gitattributes",
    ".github/workflows/commbox.yml",
    "messages/customer-whatsapp.yaml",
    "messages/oncall-sms.yaml",
    "messages/release-email.yaml",
    "messages/team-chat.yaml",
    "vars/common.yaml",
]


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("COMMBOX_VAR_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


def test_init_writes_a_project_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new" / "project"  # missing folders are created
    assert main(["--no-color", "init", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"init: wrote a starter project in {target}\n")
    for path in EXPECTED:
        assert f"  + {path}\n" in out
    assert f"commbox-yaml -C {target} validate" in out
    assert sorted(EXPECTED) == _tree(target)

    assert main(["-C", str(target), "validate"]) == 0
    assert capsys.readouterr().out == "validate: 5 messages from 4 files valid.\n"
    built = build_project(target)
    assert not built.problems
    assert {r.channel for r in built.requests} == {"email", "sms", "whatsapp", "chat"}


def test_init_defaults_to_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(tmp_path), "init"]) == 0
    assert sorted(EXPECTED) == _tree(tmp_path)
    out = capsys.readouterr().out
    assert str(tmp_path) in out.splitlines()[0]


def test_init_relative_dir_is_under_dash_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(tmp_path), "init", "notices"]) == 0
    assert sorted(EXPECTED) == _tree(tmp_path / "notices")
    assert main(["-C", str(tmp_path / "notices"), "validate"]) == 0


def test_every_file_comes_from_the_package_data(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    data = templates() / "init"
    for path in EXPECTED:
        source = data
        for part in path.split("/"):
            source = source / ("dot-" + part[1:] if part.startswith(".") else part)
        written = (tmp_path / path).read_bytes()
        assert written == source.read_bytes().replace(
            b"__COMMBOX_YAML_VERSION__", __version__.encode()
        ), path


def test_the_package_data_has_no_hidden_names() -> None:
    # setuptools leaves hidden files and folders out of a wheel: they are spelt dot-NAME.
    def walk(folder: Traversable) -> Iterator[Traversable]:
        for entry in folder.iterdir():
            yield entry
            if entry.is_dir():
                yield from walk(entry)

    names = [entry.name for entry in walk(templates() / "init")]
    assert names
    assert not [n for n in names if n.startswith(".") and n != "__pycache__"]
    assert [f.path.as_posix() for f in scaffold_files()] == EXPECTED


def test_the_ledger_is_empty_and_the_sandbox_ledger_ignored(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    assert (tmp_path / ".commbox" / "ledger.jsonl").read_bytes() == b""
    ignored = (tmp_path / ".commbox" / ".gitignore").read_text().splitlines()
    assert "sandbox-ledger.jsonl" in ignored
    assert "*.lock" in ignored
    assert "ledger.jsonl" not in ignored


def test_the_ci_workflow(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    text = (tmp_path / ".github" / "workflows" / "commbox.yml").read_text()
    workflow = yaml.safe_load(text)
    action = "OWNER/commbox-yaml@v0"  # the placeholder the comments and `init` explain
    plan_steps = [s["with"] for s in workflow["jobs"]["plan"]["steps"] if s.get("uses") == action]
    apply_steps = [s for s in workflow["jobs"]["apply"]["steps"] if s.get("uses") == action]
    assert [s["command"] for s in plan_steps] == ["validate", "plan"]
    (apply_step,) = apply_steps
    assert apply_step["with"] == {"command": "apply", "commit-ledger": "true"}
    assert apply_step["env"] == {"COMMBOX_API_TOKEN": "${{ secrets.COMMBOX_API_TOKEN }}"}
    assert workflow["jobs"]["plan"]["permissions"]["pull-requests"] == "write"
    assert workflow["jobs"]["apply"]["permissions"]["contents"] == "write"
    assert workflow["jobs"]["apply"]["if"].endswith("github.ref == 'refs/heads/main'")
    assert workflow["jobs"]["apply"]["concurrency"]["cancel-in-progress"] is False
    (test_step,) = [s for s in workflow["jobs"]["test-send"]["steps"] if s.get("uses") == action]
    assert test_step["with"] == {"command": "apply", "test-to": "${{ inputs.test-to }}"}
    assert workflow["jobs"]["test-send"]["permissions"] == {"contents": "read"}
    assert "ledger.must_exist: true" in text
    assert f"@v{__version__}" in text
    assert "__COMMBOX_YAML_VERSION__" not in text


def test_the_ledger_merges_as_a_union(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    rules = [
        line.split()
        for line in (tmp_path / ".gitattributes").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules == [[".commbox/ledger.jsonl", "merge=union"]]


def test_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "messages" / "team-chat.yaml"
    mine.parent.mkdir()
    mine.write_text("my own\n")
    assert main(["-C", str(tmp_path), "init"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert f"{tmp_path}/messages/team-chat.yaml already exists" in lines[0]
    assert _tree(tmp_path) == ["messages/team-chat.yaml"]
    assert mine.read_text() == "my own\n"


def test_an_existing_project_file_is_named_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{tmp_path}/commbox.yaml already exists" in line


def test_a_file_where_a_folder_goes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "vars").write_text("not a folder\n")
    assert main(["init", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{tmp_path}/vars exists and is not a folder" in line
    assert _tree(tmp_path) == ["vars"]


def test_dir_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("")
    assert main(["init", str(tmp_path / "taken")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "taken exists and is not a folder" in line
    assert _tree(tmp_path) == ["taken"]


def test_a_dangling_symlink_counts_as_existing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "commbox.yaml").symlink_to(tmp_path / "nowhere.yaml")
    assert main(["init", str(tmp_path)]) == 1
    assert "commbox.yaml already exists" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.yaml").exists()


def test_a_file_above_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("")
    assert main(["init", str(tmp_path / "taken" / "deeper" / "project")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{tmp_path}/taken exists and is not a folder" in line
    assert _tree(tmp_path) == ["taken"]
