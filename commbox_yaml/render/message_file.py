"""`message_file`: a message's text from a template file under the project root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import UserError
from commbox_yaml.render.budget import TemplateTimeout
from commbox_yaml.render.environment import a_folder, outside_root
from commbox_yaml.render.values import Templates
from commbox_yaml.render.wording import failure
from commbox_yaml.written import SEEN


def message_file(
    templates: Templates,
    definition: Definition,
    relative: Any,
    scope: dict[str, Any],
    item_key: str | None,
) -> str:
    """The text of the template file `relative` names, rendered in `scope`."""
    mark = len(SEEN)
    path = _template_file(templates, definition, relative, item_key)
    name = templates.project.display(path)
    try:
        text = templates.env.get_template(name).render(scope)
    except TemplateTimeout:
        raise
    except Exception as exc:  # any error a user's template raises is the user's to fix
        source = path.read_text("utf-8", errors="replace")
        where = definition.where("message_file")
        raise templates.failed(
            exc, where, "message_file", item_key, name, context=(scope, source)
        ) from None
    templates.check_written(mark, definition, ("message_file",), item_key)
    return text


def _template_file(
    templates: Templates, definition: Definition, relative: Any, item_key: str | None
) -> Path:
    """The file `relative` names: inside the root, and a file (not a folder)."""
    where = definition.where("message_file")
    if not isinstance(relative, str):
        raise failure(where, "message_file", "must be a file path", item_key)
    root = templates.project.root
    try:
        path = templates.project.resolve(relative, where, "message_file")
    except UserError as exc:
        outside = None if "\x00" in relative else outside_root(root, relative)
        message = exc.problem.message if outside is None else f"{relative!r} {outside}"
        raise failure(exc.problem.location, "message_file", message, item_key) from None
    if path.is_dir():
        raise failure(where, "message_file", f"{relative!r} {a_folder(relative, path)}", item_key)
    if not path.is_file():
        raise failure(where, "message_file", f"file {relative!r} not found", item_key)
    return path
