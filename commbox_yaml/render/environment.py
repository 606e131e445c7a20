"""The Jinja environment templates run in: the sandbox (with taint for display), undefined
variables as errors, and templates loaded from the project root only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

from commbox_yaml.errors import UserError
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
    """Templates from the project root only: `{% include %}` through a symlinked folder that
    leads outside it is refused, as `message_file` and every other path are."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        pieces = split_template_path(template)
        if not Path(self.root, *pieces).resolve().is_relative_to(self.root):
            raise UserError(
                f"template {template!r} resolves outside the project root (a symlink?); "
                "keep templates inside the folder of commbox.yaml"
            )
        return super().get_source(environment, template)


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
