"""Jinja templating of definitions: the sandbox, native single-expression values,
for_each / key / when, message_file.

environment.py holds the sandbox, budget.py the time budget, wording.py the wording of
Jinja's errors and lookup.py the fast path; renderer.py puts a definition's messages together
from items.py (for_each, key), message.py (one message's fields), values.py (one value),
message_file.py (a message's text from a file) and sensitive.py (what the templates do with
sensitive variables).
"""

from __future__ import annotations

from commbox_yaml.render.model import OfMessage, RenderedMessage
from commbox_yaml.render.renderer import Renderer

__all__ = ["OfMessage", "RenderedMessage", "Renderer"]
