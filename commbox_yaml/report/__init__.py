"""How plans and apply results are shown: text for people, JSON for tools, Markdown for PRs."""

from __future__ import annotations

from collections.abc import Callable

from commbox_yaml.output import Console
from commbox_yaml.plan import Plan
from commbox_yaml.report import data, markdown, text

# Each shows a plan on the console; the flag is --detail (every message, never compact).
REPORTERS: dict[str, Callable[[Console, Plan, bool], None]] = {
    "text": text.show_plan,
    "json": data.show_plan,
    "markdown": markdown.show_plan,
}

__all__ = ["REPORTERS"]
