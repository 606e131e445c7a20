"""Mistakes a new user makes first: each gets one line saying where, what, and how to fix it.

The CLI runs in-process as a user runs it, on real projects under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from commbox_yaml.cli import main
from tests.projects import project

SMS = """\
name: oncall
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: "hello"
"""


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 1
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    return lines[0]


def test_commbox_yaml_as_a_folder_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "commbox.yaml").mkdir()
    line = _error(capsys, "-C", str(tmp_path), "validate")
    assert "commbox.yaml is a folder, not a file" in line
    assert "no commbox.yaml found" not in line


def test_a_var_file_that_is_a_folder_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS)
    (tmp_path / "vars" / "prod").mkdir()
    line = _error(capsys, "-C", str(tmp_path), "validate", "--var-file", "vars/prod")
    assert "is a folder" in line
    assert "not found" not in line


def test_ledger_import_of_a_folder_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS)
    (tmp_path / "old-ledger").mkdir()
    line = _error(capsys, "-C", str(tmp_path), "ledger", "import", str(tmp_path / "old-ledger"))
    assert "is a folder" in line
    assert "no such ledger file" not in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--sandbox", "ledger", "list"],
            "--sandbox is an option of ledger, so it goes after it: 'commbox-yaml -C ",
        ),
        (
            ["--sandbox", "plan", "--json"],
            " plan --sandbox --json'",
        ),
        (
            ["validate", "--sandbox"],
            "--sandbox is an option of apply, ledger, plan, preview, reconcile only",
        ),
        (["plan", "--detailled-exitcode"], "did you mean '--detailed-exitcode'?"),
    ],
)
def test_an_option_in_the_wrong_place_says_where_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    project(tmp_path, SMS)
    line = _error(capsys, "-C", str(tmp_path), *argv)
    assert expected in line
    assert "did you mean '--sandbox'" not in line
