"""Files named on the command line: a folder, a missing folder or a file in the way is one
clear line and exit 1, and nothing is left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import SMS, project


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project(tmp_path, SMS)
    (tmp_path / "out").mkdir()
    (tmp_path / "afile").write_text("not a folder\n")
    return tmp_path


@pytest.mark.parametrize(
    ("out", "error"),
    [
        ("out", "error: -out out is a folder; name a file (in it, or elsewhere)"),
        (
            "nodir/x.plan",
            "error: -out nodir/x.plan: the folder {root}/nodir does not exist; create it first "
            "(mkdir -p), or name a file in an existing folder",
        ),
        ("afile/x.plan", "error: -out afile/x.plan: {root}/afile is a file, not a folder"),
    ],
)
def test_plan_out_that_cannot_be_written(
    root: Path, out: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(root)
    assert main(["-C", str(root), "plan", "-out", out]) == 1
    captured = capsys.readouterr()
    assert captured.err == error.format(root=root) + "\n"
    assert "internal error" not in captured.err
    assert captured.out == ""  # the plan is not shown as if it had been saved
    assert _files(root) == before  # no out.tmp, no x.plan, no folder made


def test_a_user_file_named_like_the_temporary_one_is_kept(root: Path) -> None:
    (root / "release.plan.tmp").write_text("mine\n")
    assert main(["-C", str(root), "plan", "-out", "release.plan"]) == 0
    assert (root / "release.plan.tmp").read_text() == "mine\n"
    assert json.loads((root / "release.plan").read_text())["messages"][0]["key"] == "note"
    assert sorted(p.name for p in root.iterdir() if "plan" in p.name) == [
        "release.plan",
        "release.plan.tmp",
    ]


def test_a_saved_plan_is_an_ordinary_file(root: Path) -> None:
    """Written through a private temporary file, the plan still gets the usual permissions."""
    mask = os.umask(0o022)
    try:
        assert main(["-C", str(root), "plan", "-out", "out/release.plan"]) == 0
    finally:
        os.umask(mask)
    assert (root / "out" / "release.plan").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["apply", "out"], "error: plan file out is a folder, not a file"),
        (["apply", "nodir/x.plan"], "error: plan file nodir/x.plan does not exist"),
        (
            ["ledger", "import", "out"],
            "error: out is a folder, not a file: 'ledger import' reads a ledger file",
        ),
        (
            ["ledger", "import", "nodir/ledger.jsonl"],
            "error: nodir/ledger.jsonl does not exist: 'ledger import' reads a ledger file",
        ),
        (
            ["validate", "--var-file", "out"],
            "error: out: var file 'out' is a folder, not a file",
        ),
    ],
)
def test_reading_a_folder_or_a_missing_file_says_so(
    root: Path, argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(root)
    assert main(["-C", str(root), *argv]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == error
    assert _files(root) == before
