"""The documents a newcomer reads: the README's commands work as written, the pre-commit
snippet names a real hook, docs/reference.md matches the schemas, LICENSE and CHANGELOG exist."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from commbox_yaml import __version__
from commbox_yaml.cli import make_parser
from commbox_yaml.docgen import REGENERATE, render_reference
from commbox_yaml.resources import CHANNEL_NAMES, schema
from tests.test_fit import _invocations, _parse

TOP = Path(__file__).resolve().parent.parent
README = (TOP / "README.md").read_text("utf-8")
REFERENCE = TOP / "docs" / "reference.md"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


# -- docs/reference.md -------------------------------------------------------------------------


def test_reference_is_generated_from_the_schemas() -> None:
    written = REFERENCE.read_text("utf-8") if REFERENCE.exists() else ""
    assert written == render_reference(), (
        f"docs/reference.md differs from the schemas' descriptions: run `{REGENERATE}` "
        "and commit the result"
    )


def _property_paths(node: Any, prefix: str = "") -> set[str]:
    """Every key a schema declares, found by walking it whole (not the way docgen does)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.add(prefix + name)
            found |= _property_paths(sub, prefix + name + ".")
        for key, sub in node.items():
            if key == "items":
                found |= _property_paths(sub, prefix[:-1] + "[]." if prefix else "")
            elif key in ("anyOf", "oneOf", "allOf"):
                for branch in sub:
                    found |= _property_paths(branch, prefix)
    return found


@pytest.mark.parametrize("name", ["commbox", *CHANNEL_NAMES])
def test_reference_has_every_key_with_its_description(name: str) -> None:
    text = render_reference()
    paths = _property_paths(schema(name))
    assert paths
    for path in paths:
        assert f"| `{path}` |" in text, f"{name}: {path} is missing from the reference"
    for description in _descriptions(schema(name)):
        assert " ".join(description.split()).replace("|", "\\|") in text


def _descriptions(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for sub in node.get("properties", {}).values():
            out.append(sub["description"])
        for value in node.values():
            out += _descriptions(value) if isinstance(value, (dict, list)) else []
    elif isinstance(node, list):
        for value in node:
            out += _descriptions(value)
    return out


def test_the_generator_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "reference.md"
    result = subprocess.run(
        [sys.executable, "-m", "commbox_yaml.docgen", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert target.read_text("utf-8") == render_reference()


# -- the README --------------------------------------------------------------------------------


def test_the_quick_start_and_its_follow_ups_work_from_a_clone(tmp_path: Path) -> None:
    # The clone's parts they read, in a scratch folder (the commands write files).
    shutil.copytree(TOP / "examples", tmp_path / "examples")
    quick_start = _blocks(README.split("## Quick start", 1)[1], "sh")[0].strip()
    follow_ups = README.split("<!-- quick-start-follow-up -->", 1)[1]
    commands = [quick_start.split(" && ")[-1], *_blocks(follow_ups, "sh")[0].splitlines()]
    assert len(commands) >= 5
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMMBOX_", "GITHUB_"))}
    env.pop("CI_COMMIT_TAG", None)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/commbox-yaml", command
        result = subprocess.run(
            [sys.executable, "-m", "commbox_yaml", *argv[1:]],
            cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        assert result.stderr == "", command
    assert (tmp_path / "my-notices" / "commbox.yaml").is_file()
    assert (tmp_path / "my-notices" / ".gitattributes").is_file()


@pytest.mark.parametrize(
    "document", ["README.md", "examples/release-notice/README.md"], ids=lambda d: d
)
def test_every_command_line_in_the_docs_exists(document: str) -> None:
    parser = make_parser()
    found = 0
    for block in _blocks((TOP / document).read_text("utf-8"), "sh"):
        for argv in _invocations(block):
            _parse(parser, argv)
            found += 1
    assert found >= 3


def test_the_pre_commit_snippet_names_the_hook_with_a_working_rev() -> None:
    (snippet,) = [b for b in _blocks(README, "yaml") if "commbox-yaml-validate" in b]
    config = yaml.safe_load(snippet)
    (repo,) = config["repos"]
    assert repo["rev"] == f"v{__version__}"  # the tag of this version
    (hook,) = repo["hooks"]
    hooks = yaml.safe_load((TOP / ".pre-commit-hooks.yaml").read_text("utf-8"))
    (defined,) = [h for h in hooks if h["id"] == hook["id"]]
    assert defined["language"] == "python"
    assert defined["pass_filenames"] is False
    entry = shlex.split(defined["entry"])
    assert entry[0] == "commbox-yaml"
    # pre-commit runs `entry args...`: the -C given as args comes after the command.
    parsed = _parse(make_parser(), [*entry[1:], *hook["args"]])
    assert parsed.command == "validate"
    assert parsed.c_directory == "notices"
    assert re.match(defined["files"], "notices/messages/release.yaml")
    assert re.search(defined["files"], "notices/templates/body.txt.j2")


def test_license_matches_the_package_metadata() -> None:
    project = tomllib.loads((TOP / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["license"] == "MIT"
    text = (TOP / "LICENSE").read_text("utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text


def test_the_changelog_has_an_unreleased_section_and_this_version() -> None:
    text = (TOP / "CHANGELOG.md").read_text("utf-8")
    sections = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert sections[0] == "Unreleased"
    assert __version__ in sections
    unreleased = text.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    assert re.search(r"^### (Added|Changed|Fixed|Removed|Deprecated|Security)$", unreleased, re.M)
    assert unreleased.count("\n- ") >= 3
