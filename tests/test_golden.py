"""Output, error positions and fingerprints stay exactly what they were.

tests/golden/*.json holds, for every fixture project (tests/cases/valid/*, tests/cases/invalid/*,
tests/reference/project, examples/release-notice), the exit code, stdout and stderr of
`validate --json` and `plan --json` run on a fresh copy, with the copy's path replaced by
`<ROOT>`. The test runs them again and compares; regenerate on purpose with

    .venv/bin/python -m tests.test_golden --write
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from commbox_yaml import store
from commbox_yaml.cli import main
from tests.test_cases import CASES, _prepare

REPO = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden"
PROJECTS: dict[str, Path] = {
    **{f"valid-{p.name}": p for p in sorted((CASES / "valid").iterdir()) if p.is_dir()},
    **{f"invalid-{p.name}": p for p in sorted((CASES / "invalid").iterdir()) if p.is_dir()},
    "reference-project": REPO / "tests" / "reference" / "project",
    "example-release-notice": REPO / "examples" / "release-notice",
}
COMMANDS = (("validate", "--json"), ("plan", "--json"))


def _run(root: Path, args: list[str], command: tuple[str, ...]) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-C", str(root), *args, *command])
    return {
        "command": " ".join(command),
        "exit": code,
        "stdout": _normal(out.getvalue(), root),
        "stderr": _normal(err.getvalue(), root),
    }


def _normal(text: str, root: Path) -> Any:
    text = text.replace(str(root.resolve()), "<ROOT>").replace(str(root), "<ROOT>")
    try:
        return json.loads(text)  # compared as a value: compact or indented is the same JSON
    except ValueError:
        return text


def results(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    source = PROJECTS[name]
    out = []
    for command in COMMANDS:
        work = tmp_path / command[0]
        work.mkdir()
        if source.parent.parent == CASES:
            root, args = _prepare(source, work, monkeypatch)
        else:
            root, args = work / "project", []
            shutil.copytree(source, root, symlinks=True)
            for var in [v for v in os.environ if v.startswith("COMMBOX_")]:
                monkeypatch.delenv(var)
        out.append(_run(root, args, command))
    return out


@pytest.mark.parametrize("name", list(PROJECTS))
def test_golden(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads((GOLDEN / f"{name}.json").read_text("utf-8"))
    assert results(name, tmp_path, monkeypatch) == expected


@pytest.mark.parametrize("name", list(PROJECTS))
def test_golden_with_every_message_kept_on_disk(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same output, errors and fingerprints when a build spills its messages to disk (as a
    fan-out past store.SPILL_AFTER does)."""
    expected = json.loads((GOLDEN / f"{name}.json").read_text("utf-8"))
    monkeypatch.setattr(store, "SPILL_AFTER", 0)
    assert results(name, tmp_path, monkeypatch) == expected


def _write() -> None:
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    for name in PROJECTS:
        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
            found = results(name, Path(tmp), patch)
        text = json.dumps(found, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
        (GOLDEN / f"{name}.json").write_text(text, "utf-8")


if __name__ == "__main__" and "--write" in sys.argv:
    _write()
