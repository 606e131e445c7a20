"""schema [CHANNEL]: print the JSON Schemas, for editors and other tools."""

from __future__ import annotations

import argparse
import copy
from typing import Any

from commbox_yaml.commands._help import USAGE_ERROR, epilog
from commbox_yaml.context import Context
from commbox_yaml.resources import CHANNEL_NAMES, schema

_CHOICES = (*CHANNEL_NAMES, "commbox")


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schema",
        parents=parents,
        help="print the JSON Schema(s)",
        description="Print a channel's JSON Schema, 'commbox' for commbox.yaml, or with no\n"
        "argument one schema for any message definition (for # yaml-language-server: $schema=).",
        epilog=epilog(
            ["commbox-yaml schema > message.schema.json", "commbox-yaml schema commbox"],
            [],
            [("0", "printed"), USAGE_ERROR],
        ),
    )
    parser.add_argument(
        "channel",
        nargs="?",
        choices=_CHOICES,
        metavar="CHANNEL",
        help=f"one of {', '.join(_CHOICES)}",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    ctx.console.json(schema(args.channel) if args.channel else combined_schema())
    return 0


def combined_schema() -> dict[str, Any]:
    """One schema for a message of any channel: each channel's schema picked by `channel`."""
    defs = {}
    for name in CHANNEL_NAMES:
        channel_schema = copy.deepcopy(schema(name))
        channel_schema.pop("$schema", None)
        channel_schema.pop("$id", None)
        defs[name] = channel_schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://commbox-yaml.dev/schemas/message.schema.json",
        "title": "commbox-yaml message definition",
        "description": "A message definition for any channel; `channel` picks the rules.",
        "type": "object",
        "required": ["channel"],
        "properties": {
            "channel": {
                "description": "The channel: " + ", ".join(CHANNEL_NAMES) + ".",
                "enum": list(CHANNEL_NAMES),
            },
        },
        "allOf": [
            {
                "if": {"properties": {"channel": {"const": name}}, "required": ["channel"]},
                "then": {"$ref": f"#/$defs/{name}"},
            }
            for name in CHANNEL_NAMES
        ],
        "$defs": defs,
    }
