"""Data files shipped inside the package: schemas and built-in templates."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

CHANNEL_NAMES = ("email", "sms", "whatsapp", "chat")


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema `schemas/<name>.schema.json` (a channel name or 'commbox')."""
    text = (files("commbox_yaml.schemas") / f"{name}.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def templates() -> Traversable:
    """The folder of built-in templates."""
    return files("commbox_yaml.templates")
