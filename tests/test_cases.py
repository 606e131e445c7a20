"""Fixture projects: every folder under tests/cases/invalid must fail validation with the
errors listed in its expected.txt; every folder under tests/cases/valid must pass with the
summary in its expected.json.

expected.txt holds one line per expected error, `FILE:LINE:COL: TEXT` (or `FILE: TEXT` for an
error that names a file but no line): some printed error must carry exactly that location and
contain TEXT. An optional case.json sets the environment (`env`, `unset`) and extra global
options (`args`) for the run. Content that git carries badly (bytes that are not UTF-8, symlinks)
is written by a builder below, keyed by the case's folder name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commbox_yaml.cli import main

CASES = Path(__file__).parent / "cases"
INVALID = sorted(p for p in (CASES / "invalid").iterdir() if p.is_dir())
VALID = sorted(p for p in (CASES / "valid").iterdir() if p.is_dir())
CASE_FILES = ("expected.txt", "expected.json", "case.json")
# Cases whose input is hostile to the parser: refused quickly, not after minutes of work.
TIMED = {"billion-laughs": 2.0, "recursive-alias": 2.0}
# A handful run as a real process too, as a user (or pre-commit) would.
SUBPROCESS = ("yaml-syntax-error", "not-utf8", "undefined-in-for-each-item", "billion-laughs")

_LOCATED = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): (?P<text>.+)$")
_FILE_ONLY = re.compile(r"^(?P<file>[^:\s]+): (?P<text>.+)$")
_ERROR_LINE = re.compile(r"^error: (?P<file>[^:\s]+)(?::(?P<line>\d+):(?P<col>\d+))?: ")


# -- builders: files written at test time ----------------------------------------------------


def _not_utf8(root: Path) -> None:
    (root / "messages" / "latin1.yaml").write_bytes(
        b"name: cafe-sms\nchannel: sms\nstream: phone\n"
        b'user_stream_provider_id: "972544444444"\nmessage: caf\xe9 ouvert\n'
    )


def _utf16(root: Path) -> None:
    text = 'name: wide-sms\nchannel: sms\nstream: phone\nuser_stream_provider_id: "1234"\n'
    (root / "messages" / "wide.yaml").write_bytes(text.encode("utf-16"))  # with a BOM


def _symlink_out(root: Path) -> None:
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours\n")
    try:
        (root / "files" / "link.txt").symlink_to(outside / "secret.txt")
    except OSError as exc:  # pragma: no cover - e.g. Windows without the privilege
        pytest.skip(f"cannot create a symlink here: {exc}")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "not-utf8": _not_utf8,
    "utf16-bom": _utf16,
    "attachment-symlink-escapes-root": _symlink_out,
}


# -- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    file: str
    line: int  # 0: the error names the file but no line
    col: int
    text: str

    @property
    def prefix(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: " if self.line else f"{self.file}: "


def _expected(case: Path) -> list[Expected]:
    out = []
    for raw in (case / "expected.txt").read_text("utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        found = _LOCATED.match(raw)
        if found:
            out.append(
                Expected(found["file"], int(found["line"]), int(found["col"]), found["text"])
            )
            continue
        found = _FILE_ONLY.match(raw)
        assert found, f"{case.name}/expected.txt: cannot read {raw!r}"
        out.append(Expected(found["file"], 0, 0, found["text"]))
    assert out, f"{case.name}/expected.txt lists no error"
    return out


def _options(case: Path) -> dict[str, Any]:
    path = case / "case.json"
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    return loaded


def _prepare(case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A copy of the case under tmp_path, the environment it asks for, and its extra options."""
    root = tmp_path / "project"
    shutil.copytree(case, root, ignore=shutil.ignore_patterns(*CASE_FILES), symlinks=True)
    builder = BUILDERS.get(case.name)
    if builder is not None:
        builder(root)
    for name in list(os.environ):
        if name.startswith("COMMBOX_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    options = _options(case)
    for name in options.get("unset", []):
        monkeypatch.delenv(name, raising=False)
    for name, value in options.get("env", {}).items():
        monkeypatch.setenv(name, value)
    return root, list(options.get("args", []))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def _check_text_output(case: Path, stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    lines = _error_lines(stderr)
    assert lines, f"no error printed:\n{stderr}"
    expected = _expected(case)
    located_anywhere = {e.file for e in expected if not e.line}
    for want in expected:
        assert any(
            line.startswith("error: " + want.prefix) and want.text in line for line in lines
        ), f"missing: {want.prefix}{want.text}\nprinted:\n{stderr}"
    order = []
    for line in lines:
        found = _ERROR_LINE.match(line)
        assert found, f"error without a location: {line}"
        if found["line"] is None:
            assert found["file"] in located_anywhere, f"error without a line: {line}"
            continue
        order.append((found["file"], int(found["line"]), int(found["col"])))
    assert order == sorted(order), f"errors not sorted by file and line:\n{stderr}"


# -- invalid projects --------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID, ids=[p.name for p in INVALID])
def test_invalid_case(
    case: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, args = _prepare(case, tmp_path, monkeypatch)
    started = time.perf_counter()
    code = main(["-C", str(root), *args, "validate"])
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert out == ""
    _check_text_output(case, err)
    if case.name in TIMED:
        assert elapsed < TIMED[case.name], f"took {elapsed:.2f} s"


@pytest.mark.parametrize("case", INVALID, ids=[p.name for p in INVALID])
def test_invalid_case_json(
    case: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, args = _prepare(case, tmp_path, monkeypatch)
    code = main(["-C", str(root), *args, "validate", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == ""  # also errors found before any message is read come as JSON
    result = json.loads(out)
    assert result["valid"] is False
    assert "Traceback" not in err
    assert "internal error" not in err
    shown = [
        (
            e["file"],
            e["line"] or 0,
            e["col"] or 0,
            ": ".join(
                part
                for part in (f"[{e['key']}]" if e["key"] is not None else "", e["path"])
                if part
            )
            + (": " if e["key"] is not None or e["path"] else "")
            + e["message"],
        )
        for e in result["errors"]
    ]
    for want in _expected(case):
        assert any(
            (f, line, col) == (want.file, want.line, want.col) and want.text in text
            for f, line, col, text in shown
        ), f"missing: {want.prefix}{want.text}\nJSON errors: {result['errors']}"


@pytest.mark.parametrize("name", SUBPROCESS)
def test_invalid_case_as_a_process(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES / "invalid" / name
    root, args = _prepare(case, tmp_path, monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), *args, "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    _check_text_output(case, proc.stderr)


# -- valid projects ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", VALID, ids=[p.name for p in VALID])
def test_valid_case(
    case: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, args = _prepare(case, tmp_path, monkeypatch)
    expected = json.loads((case / "expected.json").read_text("utf-8"))
    assert main(["-C", str(root), *args, "validate", "--json"]) == 0, capsys.readouterr()
    result = json.loads(capsys.readouterr().out)
    assert result["errors"] == []
    assert {k: result[k] for k in expected} == expected

    assert main(["-C", str(root), *args, "validate"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"validate: {expected['messages']} message")
    assert out.rstrip().endswith("valid.") or "skipped by 'when'" in out


def test_every_case_folder_is_complete() -> None:
    assert len(INVALID) >= 40
    assert len(VALID) >= 8
    for case in INVALID:
        assert (case / "commbox.yaml").is_file(), case.name
        assert (case / "expected.txt").is_file(), case.name
    for case in VALID:
        assert (case / "commbox.yaml").is_file(), case.name
        assert (case / "expected.json").is_file(), case.name
    assert set(BUILDERS) <= {p.name for p in INVALID}
