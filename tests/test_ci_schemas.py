"""The CI files we ship pass their published schemas: init's GitHub workflow, the composite
action, and the GitLab example, checked by check-jsonschema with its built-in (vendored,
offline) schemas; and every workflow job has a timeout (its custom rule)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from commbox_yaml.cli import main

REPO = Path(__file__).resolve().parent.parent
# Any attempt to reach the network fails at once: the built-in schemas are package data.
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
WORKFLOW_SCHEMAS = ("vendor.github-workflows", "custom.github-workflows-require-timeout")


def _check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow as `init` writes it."""
    root = tmp_path_factory.mktemp("init")
    assert main(["--no-color", "init", str(root)]) == 0
    return root / ".github" / "workflows" / "commbox.yml"


@pytest.mark.parametrize("schema", WORKFLOW_SCHEMAS)
def test_the_init_workflow_passes(workflow: Path, schema: str) -> None:
    result = _check(schema, workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_every_job_of_the_init_workflow_has_a_timeout(workflow: Path) -> None:
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    assert set(jobs) == {"plan", "apply", "test-send"}
    for job in jobs.values():
        assert 0 < job["timeout-minutes"] <= 60


def test_a_job_without_a_timeout_is_refused(workflow: Path, tmp_path: Path) -> None:
    """The timeout rule can fail: the same workflow with one timeout taken out does."""
    lines = workflow.read_text(encoding="utf-8").splitlines(keepends=True)
    first = next(n for n, line in enumerate(lines) if "timeout-minutes:" in line)
    untimed = tmp_path / "untimed.yml"
    untimed.write_text("".join(lines[:first] + lines[first + 1 :]), encoding="utf-8")
    result = _check("custom.github-workflows-require-timeout", untimed)
    assert result.returncode == 1
    assert "'timeout-minutes' is a required property" in result.stdout
    assert _check("vendor.github-workflows", untimed).returncode == 0


def test_the_action_passes() -> None:
    result = _check("vendor.github-actions", REPO / "action.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gitlab_example_passes() -> None:
    result = _check("vendor.gitlab-ci", REPO / "examples" / "ci" / "gitlab-ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr
