"""The Jinja environment templates run in: the sandbox (with taint for display), undefined
variables as errors, and templates loaded from the project root only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

from commbox_yaml.errors import Location, UserError
from commbox_yaml.taint import TaintingSandbox


class EnvVars(dict[str, str]):
    """`env` in templates; its own type so that a missing name gets its own explanation."""


def environment(root: Path) -> TaintingSandbox:
    return TaintingSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        loader=RootLoader(root),
        finalize=_printable,
    )


class RootLoader(jinja2.FileSystemLoader):
    """Templates from the project root only: `{% include %}` through a symlink that leads
    outside it is refused, as `message_file` and every other path are. A template must be
    UTF-8 text; one that is not is reported at its first byte that is not."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        pieces = split_template_path(template)
        if not Path(self.root, *pieces).resolve().is_relative_to(self.root):
            outside = outside_root(self.root, "/".join(pieces)) or (
                "resolves outside the project root (a symlink?); keep templates inside the "
                "folder of commbox.yaml"
            )
            raise UserError(f"template {template!r} {outside}")
        folder = Path(self.root, *pieces)
        if folder.is_dir():
            raise UserError(f"template {template!r} {a_folder(template, folder)}")
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            raise not_utf8(template, exc) from None


def a_folder(relative: str, folder: Path) -> str:
    """Why a folder will not do as a template, naming a file in it when it holds one."""
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    example = f", such as '{relative.rstrip('/')}/{files[0]}'" if files else ""
    return f"is a folder, not a file; name a template file{example}"


def outside_root(root: Path, relative: str) -> str | None:
    """Why `relative` leads out of the root through a symlink, saying where to and which link
    it is; None when it stays inside, or leaves it otherwise (`..`, an absolute path)."""
    target = (root / relative).resolve()
    link = None if target.is_relative_to(root) else _first_symlink(root, relative)
    if link is None:
        return None
    link_target = (root / link).resolve()
    where = (
        f": {link} is a symlink to {target}"
        if link_target == target
        else f", to {target} ({link} is a symlink to {link_target})"
    )
    return (
        f"resolves outside the project root{where}; keep templates inside the folder of "
        "commbox.yaml: copy the file in, or point the link inside"
    )


def _first_symlink(root: Path, relative: str) -> str | None:
    """The first part of `relative` (as written) that is a symlink leading out of the root."""
    parts = Path(relative).parts
    for end in range(1, len(parts) + 1):
        path = root.joinpath(*parts[:end])
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            return "/".join(parts[:end])
    return None


def not_utf8(template: str, exc: UnicodeDecodeError) -> UserError:
    """At the first byte of a template file that is not UTF-8: its line and column."""
    data, offset = exc.object, exc.start
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return UserError(
        f"template {template!r} is not UTF-8 text (byte 0x{data[offset]:02x} at offset "
        f"{offset}); save it as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)",
        Location(template, line, col),
    )


def _printable(value: Any) -> Any:
    """What `{{ ... }}` may print: a method or a class would print its memory address,
    which is never what was meant and would change the fingerprint on every run."""
    if callable(value) and not isinstance(value, jinja2.Undefined):
        raise UserError(
            f"the expression gives a {type(value).__name__}, which is not text, a number, "
            "true/false, a list or a mapping (a method needs () to be called, or a key that "
            "is also a method name needs ['key'])"
        )
    return value
