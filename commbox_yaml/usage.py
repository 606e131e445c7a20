"""Which variables the templates use: names read by any template of any definition.

Found by parsing (Jinja's `meta.find_undeclared_variables`), not by rendering, so a variable
used only in a message skipped by `when`, or in one item of a for_each, still counts. Each
distinct template text is parsed once; message files are followed through their includes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jinja2
from jinja2 import meta, nodes

from commbox_yaml.definitions import Definition

_MARKERS = ("{{", "{%", "{#")
_EXPRESSIONS = ("when", "for_each")  # written as a bare expression, without {{ }}


def used_names(env: jinja2.Environment, definitions: Iterable[Definition]) -> set[str] | None:
    """Every name the templates read, or None when that cannot be known (a template file
    named by a template, an include whose name is computed): then nothing is called unused."""
    names: set[str] = set()
    seen_sources: set[str] = set()
    seen_files: set[str] = set()
    for definition in definitions:
        for source in _sources(definition.data):
            if source not in seen_sources:
                seen_sources.add(source)
                if not _add_names(env, source, names, seen_files):
                    return None
        message_file = definition.data.get("message_file")
        if isinstance(message_file, str):
            if any(marker in message_file for marker in _MARKERS):
                return None  # which file is only known once rendered
            if not _add_file(env, message_file, names, seen_files):
                return None
    return names


def _sources(data: dict[str, Any]) -> Iterator[str]:
    for key, value in data.items():
        if key in _EXPRESSIONS and isinstance(value, str):
            stripped = value.strip()
            yield stripped if stripped.startswith("{{") else "{{ " + stripped + " }}"
        elif key != "message_file":
            yield from _strings(value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if any(marker in value for marker in _MARKERS):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _add_names(env: jinja2.Environment, source: str, names: set[str], files: set[str]) -> bool:
    try:
        parsed = env.parse(source)
    except jinja2.TemplateSyntaxError:
        return True  # rendering reports it; its names cannot be read
    names |= meta.find_undeclared_variables(parsed)
    for included in meta.find_referenced_templates(parsed):
        if included is None or not _add_file(env, included, names, files):
            return False
    return True


def _add_file(env: jinja2.Environment, name: str, names: set[str], files: set[str]) -> bool:
    if name in files:
        return True
    files.add(name)
    if env.loader is None:
        return False
    try:
        source, _, _ = env.loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        return True  # rendering reports the missing file
    return _add_names(env, source, names, files)


def field_names(
    env: jinja2.Environment,
    key: str,
    value: Any,
    env_names: Iterable[str] = (),
    follow_file: bool = True,
) -> set[str] | None:
    """The names the templates of one key read (includes followed), or None when that cannot
    be known; `env.NAME` too for each NAME of `env_names` the key reads. The file that
    message_file names is followed too, unless `follow_file` is false (then the names its
    path is made of count)."""
    names: set[str] = set()
    files: set[str] = set()
    if key == "message_file" and follow_file:
        if not isinstance(value, str) or any(marker in value for marker in _MARKERS):
            return None  # which file is only known once rendered
        if not _add_file(env, value, names, files):
            return None
        return names
    for source in _strings(value) if key == "message_file" else _sources({key: value}):
        if not _add_names(env, source, names, files):
            return None
        try:
            parsed = env.parse(source)
        except jinja2.TemplateSyntaxError:
            continue  # rendering reports it
        for node in parsed.find_all((nodes.Getattr, nodes.Getitem)):
            name = _env_name(node)
            if name is not None and name in env_names:
                names.add(f"env.{name}")
    return names


def _env_name(node: nodes.Node) -> str | None:
    """NAME of `env.NAME` or `env['NAME']`; None for any other attribute or item."""
    if isinstance(node, nodes.Getattr):
        base, name = node.node, node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base, name = node.node, node.arg.value
    else:
        return None
    is_env = isinstance(base, nodes.Name) and base.name == "env"
    return name if is_env and isinstance(name, str) else None
