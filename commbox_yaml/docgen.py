"""docs/reference.md from the JSON Schemas: every commbox.yaml key and every message key.

    python -m commbox_yaml.docgen docs/reference.md     # write it
    python -m commbox_yaml.docgen                       # print it

The schemas are the one source: their `description`s are what `validate` and editors show, so
the reference says the same. A test fails when docs/reference.md differs from this output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commbox_yaml.resources import CHANNEL_NAMES, schema

REGENERATE = "python -m commbox_yaml.docgen docs/reference.md"
_MAX_ENUM_SHOWN = 6
_TYPE_NAMES = {"object": "mapping", "array": "list"}


@dataclass(frozen=True)
class Row:
    """One key of a schema: its dotted path, what it takes, and what it means."""

    path: str
    kind: str
    required: bool | str  # True, or when it is required ("yes, unless `reply_to`")
    description: str


def rows(node: dict[str, Any], prefix: str = "") -> Iterator[Row]:
    """Every property under `node`, depth first; `[]` marks the items of a list."""
    required = set(node.get("required", ()))
    # Required unless the `if` holds (a reply_to child takes them from its parent).
    unless = set(node.get("else", {}).get("required", ())) if "if" in node else set()
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        need: bool | str = name in required or (name in unless and _unless(node))
        yield Row(path, kind(sub), need, sub.get("description", ""))
        yield from _nested(sub, path)


def _unless(node: dict[str, Any]) -> str:
    condition = " + ".join(f"`{k}`" for k in node["if"].get("required", ()))
    return f"yes, unless {condition}"


def _nested(sub: dict[str, Any], path: str) -> Iterator[Row]:
    for alternative in _alternatives(sub):
        yield from rows(alternative, f"{path}.")
        items = alternative.get("items")
        if isinstance(items, dict):
            for item in _alternatives(items):
                yield from rows(item, f"{path}[].")


def _alternatives(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node and the branches of its anyOf / oneOf: the shapes a value may take."""
    return [node, *node.get("anyOf", ()), *node.get("oneOf", ())]


def kind(node: dict[str, Any]) -> str:
    """What a key takes, in a few words: `string`, `integer or string`, `'once' or 'always'`."""
    if "const" in node:
        return f"`{_literal(node['const'])}`"
    if "enum" in node:
        values = node["enum"]
        if len(values) <= _MAX_ENUM_SHOWN:
            return " or ".join(f"`{_literal(v)}`" for v in values)
        numbers = any(isinstance(v, int) for v in values)
        names = any(isinstance(v, str) for v in values)
        return "integer or name" if numbers and names else f"one of {len(values)} values"
    types: list[str] = []
    for alternative in _alternatives(node):
        found = alternative.get("type")
        listed: list[str] = found if isinstance(found, list) else [found] if found else []
        for name in listed:
            shown = _TYPE_NAMES.get(name, name)
            if shown not in types:
                types.append(shown)
    return " or ".join(types) if types else "any"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'" if isinstance(value, str) else str(value)


def table(found: Sequence[Row]) -> list[str]:
    lines = ["| key | takes | required | description |", "| --- | --- | --- | --- |"]
    for row in found:
        text = " ".join(row.description.split()).replace("|", "\\|")
        lines.append(f"| `{row.path}` | {row.kind} | {_required_text(row.required)} | {text} |")
    return lines


def _required_text(required: bool | str) -> str:
    if isinstance(required, str):
        return required
    return "yes" if required else ""


def _one_of_required(node: dict[str, Any]) -> str:
    groups = [
        " + ".join(f"`{k}`" for k in branch.get("required", ())) for branch in node.get("oneOf", ())
    ]
    groups = [g for g in groups if g]
    return f"Exactly one of {', '.join(groups)} is required.\n" if groups else ""


def render_reference() -> str:
    """The whole of docs/reference.md."""
    out = [
        "# Reference: commbox.yaml and message keys",
        "",
        f"<!-- Generated from schemas/*.schema.json by `{REGENERATE}`; do not edit. -->",
        "",
        "Every key commbox-yaml accepts, from the JSON Schemas that `validate` checks against",
        "(`commbox-yaml schema NAME` prints them). A key not listed here is an error.",
        "`a.b` is the key `b` inside the mapping `a`; `a[].b` is `b` inside each item of the list",
        "`a`.",
        "",
    ]
    project = schema("commbox")
    out += ["## commbox.yaml", "", project.get("description", ""), ""]
    out += table(list(rows(project)))
    out += ["", "## Message definitions", ""]
    channels = {name: list(rows(schema(name))) for name in CHANNEL_NAMES}
    shared = _shared(channels)
    out += [
        "Each YAML document in a message file is one definition; its `channel` picks the",
        "schema. Every string value may be a Jinja template, checked after rendering.",
        "",
        "### Keys of every channel",
        "",
        "Where the channels differ (presets, requirements), the channel's own table below says so.",
        "",
    ]
    out += table([row for row in channels[CHANNEL_NAMES[0]] if row.path in shared])
    for name in CHANNEL_NAMES:
        spec = schema(name)
        own = [row for row in channels[name] if row.path not in shared]
        out += [
            "",
            f"### {name}",
            "",
            f"{spec.get('title', name)}. {_one_of_required(spec)}".rstrip(),
            "",
        ]
        out += table(own)
    return "\n".join(out) + "\n"


def _shared(channels: dict[str, list[Row]]) -> set[str]:
    """Keys every channel has with the same meaning (and the same requirement)."""
    first, *others = channels.values()
    return {row.path for row in first if all(row in other for other in others)}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    text = render_reference()
    if not args:
        sys.stdout.write(text)
        return 0
    Path(args[0]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
