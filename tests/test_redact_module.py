"""The Redactor lives in redact.py: the pipeline's modules do not import the terminal module."""

from __future__ import annotations

import ast
import importlib.util
import io
from pathlib import Path

import pytest

from commbox_yaml.output import Console
from commbox_yaml.redact import REDACTED, Redactor

PIPELINE = [
    "commbox_yaml.compile",
    "commbox_yaml.store",
    "commbox_yaml.variables",
    "commbox_yaml.build",
    "commbox_yaml.send.pool",
    "commbox_yaml.send.policy",
    "commbox_yaml.send.judge",
]


def _imported(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", PIPELINE)
def test_pipeline_modules_do_not_import_the_terminal(module: str) -> None:
    imported = _imported(module)
    assert "commbox_yaml.output" not in imported
    assert "commbox_yaml.redact" in imported


def test_console_redacts_with_the_redactor() -> None:
    out = io.StringIO()
    Console(stdout=out, color=False, redactor=Redactor(["hunter22"])).out("pw hunter22 HUNTER22")
    assert out.getvalue() == f"pw {REDACTED} {REDACTED}\n"
