"""init [DIR]: write a starter project: commbox.yaml, one message per channel, vars, CI.

The files are package data (`templates/init/`), read with importlib.resources. A path part
written `dot-NAME` there becomes `.NAME` (`dot-github/` is `.github/`): setuptools leaves
hidden files and folders out of a wheel.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

from commbox_yaml import __version__
from commbox_yaml.commands._help import epilog
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.project import PROJECT_FILE
from commbox_yaml.resources import templates

SCAFFOLD = "init"
_DOT_PREFIX = "dot-"
_VERSION_MARK = b"__COMMBOX_YAML_VERSION__"


@dataclass(frozen=True)
class ScaffoldFile:
    """One file of the starter project: where it goes, and its bytes."""

    path: PurePosixPath  # relative to the new project's root
    content: bytes


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "init",
        parents=parents,
        help="write a starter project",
        description="Write a starter project into DIR (default: the current folder):\n"
        "commbox.yaml, one message per channel, a vars file, a GitHub Actions workflow,\n"
        "an empty ledger, and .gitattributes (merge=union for the ledger).\n"
        "Existing files are never overwritten.",
        epilog=epilog(
            ["commbox-yaml init notices", "commbox-yaml -C notices validate"],
            ["NO_COLOR"],
            [("0", "written"), ("1", "a file is in the way (nothing written), or a usage error")],
        ),
    )
    # Not `directory`: that name holds the global -C option.
    parser.add_argument("target", nargs="?", default=".", metavar="DIR")


def run(ctx: Context, args: argparse.Namespace) -> int:
    target = ctx.directory / args.target
    files = scaffold_files()
    _refuse_existing(target, files)
    written = write_scaffold(target, files)
    console = ctx.console
    shown = _shown(target)
    console.out(f"init: wrote a starter project in {shown}")
    for path in written:
        console.out(f"  {console.style('+', 'green')} {path}")
    console.out()
    console.out_lines(_next_steps(shown))
    return 0


def scaffold_files() -> list[ScaffoldFile]:
    """The starter project's files, from the package data: commbox.yaml, then by path."""
    found: list[ScaffoldFile] = []
    _collect(templates() / SCAFFOLD, PurePosixPath(), found)
    if not found:
        raise UserError("the init templates are missing from this installation of commbox-yaml")
    # commbox.yaml first: in an existing project, it is the file an error should name.
    return sorted(found, key=lambda f: (f.path.as_posix() != PROJECT_FILE, f.path.as_posix()))


def _collect(folder: Traversable, relative: PurePosixPath, out: list[ScaffoldFile]) -> None:
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue  # editor and build leftovers; real dotfiles are spelt dot-NAME
        name = entry.name
        if name.startswith(_DOT_PREFIX):
            name = "." + name[len(_DOT_PREFIX) :]
        if entry.is_dir():
            _collect(entry, relative / name, out)
        else:
            content = entry.read_bytes().replace(_VERSION_MARK, __version__.encode())
            out.append(ScaffoldFile(relative / name, content))


def _refuse_existing(target: Path, files: list[ScaffoldFile]) -> None:
    """Raise, naming the first file (or a folder in the way) that already exists."""
    for folder in (target, *target.parents):  # DIR, or its nearest existing ancestor
        if os.path.lexists(folder):
            if not folder.is_dir():
                raise UserError(f"{_shown(folder)} exists and is not a folder")
            break
    for item in files:
        for parent in reversed(item.path.parents[:-1]):  # [:-1]: not target itself
            folder = target / parent
            if os.path.lexists(folder) and not folder.is_dir():
                raise UserError(
                    f"{_shown(folder)} exists and is not a folder; init needs it as one"
                )
        destination = target / item.path
        if os.path.lexists(destination):
            raise UserError(
                f"{_shown(destination)} already exists; init never overwrites a file "
                "(move it away, or init into another folder)"
            )


def write_scaffold(target: Path, files: list[ScaffoldFile]) -> list[str]:
    """Write every file under target (which is created if missing); the paths written."""
    written: list[str] = []
    for item in files:
        destination = target / item.path
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("xb") as handle:  # "x": never overwrite, even in a race
                handle.write(item.content)
        except OSError as exc:
            done = f" after writing {len(written)} file(s)" if written else ""
            raise UserError(
                f"cannot write {_shown(destination)}: {exc.strerror or exc}{done}"
            ) from None
        written.append(item.path.as_posix())
    return written


def _shown(path: Path) -> str:
    text = os.path.normpath(path)
    return text if text != "." else "the current folder"


def _next_steps(shown: str) -> str:
    where = "" if shown == "the current folder" else f" -C {shown}"
    return "\n".join(
        [
            "Next steps:",
            "  1. Put your stream ids under 'streams:' in commbox.yaml, your agent id under",
            "     'defaults.manager_id', and real recipients in vars/common.yaml.",
            f"  2. Check every message:    commbox-yaml{where} validate",
            f"  3. See the exact request:  commbox-yaml{where} render release-email",
            f"  4. Rehearse, no account:   commbox-yaml{where} apply --sandbox --auto-approve",
            "  5. Commit the project with .commbox/ledger.jsonl and .gitattributes (the ledger",
            "     merges as a union). .github/workflows/commbox.yml plans on pull requests and",
            "     applies on main: replace OWNER/commbox-yaml@v0 in it with the repository you",
            "     get commbox-yaml from, and add the secret COMMBOX_API_TOKEN.",
        ]
    )
