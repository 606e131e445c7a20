"""-C DIR: a folder that is not there, or a file, is an error, never the project above it."""

from __future__ import annotations

from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import SMS, project


@pytest.fixture
def inside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is a project's root, whose one message would be planned."""
    root = project(tmp_path / "enclosing", SMS)
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize(
    "command", [["validate"], ["plan"], ["ledger", "list"], ["render", "note"]]
)
def test_a_missing_folder_is_an_error_not_the_enclosing_project(
    inside_a_project: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", "no-such-folder", *command]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: no such folder: no-such-folder (-C takes an existing folder)\n"
    assert not (inside_a_project / "no-such-folder").exists()


def test_a_missing_folder_after_the_command_too(
    inside_a_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "-C", "gone/deeper"]) == 1
    assert capsys.readouterr().err.startswith("error: no such folder: gone/deeper")


def test_init_into_a_missing_minus_c_folder_writes_nothing(
    inside_a_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", "nowhere", "init", "fresh"]) == 1
    assert "no such folder: nowhere" in capsys.readouterr().err
    assert not (inside_a_project / "nowhere").exists()


def test_a_file_is_not_a_folder(inside_a_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", "commbox.yaml", "validate"]) == 1
    assert capsys.readouterr().err == (
        "error: -C commbox.yaml is a file, not a folder; give its folder\n"
    )


def test_an_existing_subfolder_still_finds_the_project_above(
    inside_a_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", "messages", "validate"]) == 0
    assert "1 message" in capsys.readouterr().out
