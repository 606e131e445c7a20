"""Writing small real projects under a temporary folder, for tests."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from commbox_yaml.build import Build, build
from commbox_yaml.project import load_project
from commbox_yaml.variables import load_variables

COMMBOX_YAML = """\
version: 1
streams:
  email: b9910a75a46c492c9cf46a910cdba0012
  sms: 5fd0c1
vars: [vars/common.yaml]
"""


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path -> text or bytes) under root; text is dedented."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))
    return root


def project(
    root: Path,
    messages: str,
    variables: str = "{}\n",
    extra: dict[str, str | bytes] | None = None,
    commbox: str = COMMBOX_YAML,
) -> Path:
    """A project with a commbox.yaml (the standard one by default), one message file
    (messages/main.yaml), one vars file, and `extra`."""
    files: dict[str, str | bytes] = {
        "commbox.yaml": commbox,
        "messages/main.yaml": messages,
        "vars/common.yaml": variables,
    }
    files.update(extra or {})
    return write(root, files)


FANOUT = """\
name: notice
channel: sms
stream: sms
id: "notice-{{ version }}"
for_each: people
user_stream_provider_id: "972544444444"
message: "notice {{ version }} for {{ item }}"
"""


def fanout(
    root: Path,
    commbox: str,
    people: Sequence[str],
    messages: str = FANOUT,
    variables: str = "version: 1\n",
    extra: Mapping[str, str | bytes] | None = None,
) -> Path:
    """A project of one message sent to each of `people`: the shape the apply, ledger and
    reconcile tests share (messages/notice.yaml; vars/common.yaml is `variables` and the list
    of people)."""
    listed = ", ".join(f"'{person}'" for person in people)
    files: dict[str, str | bytes] = {
        "commbox.yaml": commbox,
        "messages/notice.yaml": messages,
        "vars/common.yaml": f"{variables}people: [{listed}]\n",
    }
    files.update(extra or {})
    return write(root, files)


def build_project(
    root: Path,
    var_files: tuple[str, ...] = (),
    cli_vars: tuple[str, ...] = (),
    environ: dict[str, str] | None = None,
    targets: tuple[str, ...] = (),
) -> Build:
    loaded = load_project(root)
    variables = load_variables(loaded, var_files, cli_vars, environ or {})
    return build(loaded, variables, targets)


SMS = """\
name: note
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
message: hello
"""
