"""Strict YAML loading that remembers where every value came from.

The only module that parses YAML. Values come out as plain JSON-like Python data;
a side table (`Positions`) maps each value's path to its `file:line:col`, so later
stages (templates, schemas, compilation) can point back at the source line.

Strict means: duplicate keys are errors, alias expansion is bounded (no "billion
laughs"), only JSON types are produced (timestamps stay strings), and files must
be UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from commbox_yaml.errors import Location, UserError
from commbox_yaml.written import wrap

PathKey = tuple[str | int, ...]

# A document may share subtrees through aliases; what counts is the size it would
# have once every alias is expanded (as a template or a JSON dump would see it).
MAX_EXPANDED_NODES = 200_000
MAX_EXPANSION_RATIO = 10
# Deeper data is a mistake or an attack, and would exhaust Python's recursion further on.
MAX_DEPTH = 64
SHARED_STRINGS = 4096  # distinct texts _Streamed shares

_BaseLoader: type[yaml.SafeLoader]
try:
    _BaseLoader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader without the YAML 1.1 timestamp type: dates stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = {
    _STR: "construct_yaml_str",
    "tag:yaml.org,2002:int": "construct_yaml_int",
    "tag:yaml.org,2002:float": "construct_yaml_float",
    "tag:yaml.org,2002:bool": "construct_yaml_bool",
    "tag:yaml.org,2002:null": "construct_yaml_null",
}


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document was written."""

    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)
    # Numbers written in a form YAML reads surprisingly (01234567 is octal 342391, 1:30 is
    # 90): the text as written, so an error can show what the user typed.
    texts: dict[PathKey, str] = field(default_factory=dict)

    def locate(self, path: PathKey) -> Location | None:
        """The position of the value at `path`, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            loc = self.values.get(path[:end])
            if loc is not None:
                return loc
        return None

    def locate_key(self, path: PathKey) -> Location | None:
        """The position of the key naming `path`, falling back to the value's."""
        return self.keys.get(path) or self.locate(path)

    def under(self, prefix: PathKey) -> Positions:
        """The positions below `prefix`, re-rooted so that `prefix` becomes ()."""
        n = len(prefix)
        return Positions(
            {p[n:]: loc for p, loc in self.values.items() if p[:n] == prefix},
            {p[n:]: loc for p, loc in self.keys.items() if p[:n] == prefix},
            {p[n:]: text for p, text in self.texts.items() if p[:n] == prefix},
        )


@dataclass
class Document:
    """One YAML document: its data and the positions of its values."""

    value: Any
    positions: Positions
    location: Location


def read_text(path: Path, display: str) -> str:
    """A file's text, decoded as UTF-8, with a located error when it is not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError("file not found", Location(display)) from None
    except IsADirectoryError:
        raise UserError("is a directory, not a file", Location(display)) from None
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", Location(display)) from None
    return decode_utf8(data, display)


def decode_utf8(data: bytes, display: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff",):
        raise UserError("file is UTF-16/32 encoded; re-save it as UTF-8", Location(display, 1, 1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise UserError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); re-save the file as UTF-8",
            Location(display, line, col),
        ) from None
    return text.removeprefix("\ufeff")


def load_documents(
    path: Path, display: str, depth: int | None = None, written: bool = False
) -> list[Document]:
    """Every non-empty document in a YAML file (`depth`, `written`: see iter_documents)."""
    return list(iter_documents(read_text(path, display), display, depth, written))


def load_single(
    path: Path, display: str, depth: int | None = None, written: bool = False
) -> Document | None:
    """The one document of a file (None when empty); several documents are an error."""
    docs = load_documents(path, display, depth, written)
    if len(docs) > 1:
        raise UserError("holds several YAML documents; only one is allowed here", docs[1].location)
    return docs[0] if docs else None


def iter_documents(
    text: str, display: str, depth: int | None = None, written: bool = False
) -> Iterator[Document]:
    """The documents of `text`. Positions are kept for paths of at most `depth` keys and
    indexes (all when None): a var file of 10,000 customers needs only its names located, and
    a position per value costs more than the value itself. With `written`, a number, true/false
    or null whose text a template would not write back (`1.10`, `NO`, `~`) is kept wrapped
    with that text and its position (see written.py)."""
    # Only an alias (`*name`) shares a node: without one, no document can expand.
    aliases = "*" in text
    loader = _Loader(text)
    try:
        if not any(mark in text for mark in _NODE_MARKS):
            yield from _Streamed(loader, display, depth, written).documents()
            return
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node guards this
                continue
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                continue
            yield _Builder(loader, display, depth, aliases, written).document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
        what = exc.problem or exc.context or "invalid YAML"
        raise UserError(f"YAML syntax error: {what}", where) from None
    except yaml.YAMLError as exc:
        raise UserError(f"YAML error: {exc}", Location(display)) from None
    finally:
        loader.dispose()


# Anchors, aliases and merge keys need the composed node graph (see _Builder). A document
# without any of them is built straight from the parser's events (see _Streamed).
_NODE_MARKS = ("*", "&", "<<")


class _Streamed:
    """Builds documents straight from parser events, as _Builder builds them from nodes.

    The node graph of a var file with 100,000 customers (a node and two marks per value)
    takes several times the memory of the data itself; events are dropped as they are read.
    Only for documents without anchors, aliases and merge keys.
    """

    def __init__(
        self, loader: yaml.SafeLoader, display: str, depth: int | None, written: bool
    ) -> None:
        self.loader: Any = loader  # libyaml's event API is untyped
        self.display = display
        self.depth = depth
        self.written = written
        self.nodes = _Builder(loader, display, depth, False, written)  # scalars, as there
        self.strings: dict[str, str] = {}

    def shared(self, text: str) -> str:
        """One object per distinct short text: 100,000 customers repeat the same 6 keys and
        a few languages, and YAML makes a new string for each. Bounded, as most texts of a
        big file are unique."""
        found = self.strings.get(text)
        if found is not None:
            return found
        if len(self.strings) < SHARED_STRINGS and len(text) <= 32:
            self.strings[text] = text
        return text

    def loc(self, event: Any) -> Location:
        mark = event.start_mark
        return Location(self.display, mark.line + 1, mark.column + 1)

    def documents(self) -> Iterator[Document]:
        loader = self.loader
        loader.get_event()  # the stream's start
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()  # the document's start
            self.nodes.positions = Positions()
            start = loader.peek_event()
            if isinstance(start, yaml.ScalarEvent) and self.tag(start) == _NULL:
                loader.get_event()
                loader.get_event()  # the document's end
                continue
            value = self.build(())
            loader.get_event()
            yield Document(value, self.nodes.positions, self.loc(start))

    def tag(self, event: Any) -> str:
        tag: str | None = getattr(event, "tag", None)
        if tag is not None and tag != "!":
            return tag
        if isinstance(event, yaml.ScalarEvent):
            kind: type[yaml.Node] = yaml.ScalarNode
            value: str | None = event.value
        else:
            kind = (
                yaml.SequenceNode
                if isinstance(event, yaml.SequenceStartEvent)
                else yaml.MappingNode
            )
            value = None
        resolved: str = self.loader.resolve(kind, value, event.implicit)
        return resolved

    def scalar_node(self, event: Any) -> yaml.ScalarNode:
        return yaml.ScalarNode(self.tag(event), event.value, event.start_mark, None, event.style)

    def build(self, path: PathKey) -> Any:
        event = self.loader.get_event()
        builder = self.nodes
        if len(path) > MAX_DEPTH:
            raise builder.too_deep(yaml.ScalarNode("", "", event.start_mark, None))
        located = self.depth is None or len(path) <= self.depth
        if located:
            builder.positions.values.setdefault(path, self.loc(event))
        if isinstance(event, yaml.ScalarEvent):
            node = self.scalar_node(event)
            value = builder.scalar(node)
            if type(value) is str:
                return self.shared(value)
            if located and _surprising(value, node.value):
                builder.positions.texts.setdefault(path, node.value)
            if self.written:
                value = wrap(value, node.value, self.loc(event), _dotted(path))
            return value
        if isinstance(event, yaml.SequenceStartEvent):
            builder.check_tag(self.container(event), "tag:yaml.org,2002:seq")
            items: list[Any] = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                items.append(self.build((*path, len(items))))
            self.loader.get_event()
            return items
        if isinstance(event, yaml.MappingStartEvent):
            builder.check_tag(self.container(event), "tag:yaml.org,2002:map")
            return self.mapping(path)
        raise UserError("unsupported YAML node", self.loc(event))  # pragma: no cover

    def container(self, event: Any) -> yaml.Node:
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        return kind(self.tag(event), [], event.start_mark, None)

    def mapping(self, path: PathKey) -> dict[Any, Any]:
        builder, loader = self.nodes, self.loader
        out: dict[Any, Any] = {}
        first_at: dict[Any, Location] = {}
        located = self.depth is None or len(path) < self.depth
        while not loader.check_event(yaml.MappingEndEvent):
            event = loader.get_event()
            if not isinstance(event, yaml.ScalarEvent):
                raise UserError("mapping keys must be plain scalars", self.loc(event))
            key_node = self.scalar_node(event)
            name = builder.scalar(key_node)
            if not isinstance(name, str):
                name = key_node.value  # keys are text, as written (see _Builder.mapping)
            where = self.loc(event)
            first = first_at.get(name)
            if first is not None:
                raise UserError(
                    f"duplicate key {name!r} (first defined at line {first.line}); "
                    "YAML would silently keep only the last one",
                    where,
                )
            first_at[name] = where
            name = self.shared(name) if type(name) is str else name
            if located:
                builder.positions.keys[(*path, name)] = where
            out[name] = self.build((*path, name))
        loader.get_event()
        return out


class _Builder:
    """Turns a composed node graph into plain data plus positions."""

    def __init__(
        self,
        loader: yaml.SafeLoader,
        display: str,
        depth: int | None,
        aliases: bool,
        written: bool = False,
    ) -> None:
        self.loader = loader
        self.display = display
        self.depth = depth
        self.aliases = aliases
        self.written = written
        self.positions = Positions()
        self.built: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}

    def loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.display, mark.line + 1, mark.column + 1)

    def document(self, node: yaml.Node) -> Document:
        if self.aliases:  # without aliases every node is built once: nothing to expand
            distinct: set[int] = set()
            expanded = self.expanded_size(node, set(), distinct)
            limit = max(MAX_EXPANDED_NODES, MAX_EXPANSION_RATIO * len(distinct))
            if expanded > limit:
                raise UserError(
                    f"YAML aliases expand to more than {limit:,} values; "
                    "remove the alias chain (this looks like a 'billion laughs' document)",
                    self.loc(node),
                )
        value = self.build(node, ())
        return Document(value, self.positions, self.loc(node))

    def expanded_size(self, node: yaml.Node, active: set[int], distinct: set[int]) -> int:
        key = id(node)
        distinct.add(key)
        known = self.sizes.get(key)
        if known is not None:
            return known
        if key in active:
            raise UserError("recursive YAML alias: a value contains itself", self.loc(node))
        if len(active) > MAX_DEPTH:
            raise self.too_deep(node)
        size = 1
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            active.add(key)
            children: list[yaml.Node] = (
                [n for pair in node.value for n in pair]
                if isinstance(node, yaml.MappingNode)
                else list(node.value)
            )
            for child in children:
                size += self.expanded_size(child, active, distinct)
                if size > 10 * MAX_EXPANDED_NODES * MAX_EXPANSION_RATIO:
                    break  # already far past any limit; stop counting
            active.discard(key)
        self.sizes[key] = size
        return size

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        key = id(node)
        if key in self.built:  # an alias: share the value built at its anchor
            return self.built[key]
        if len(path) > MAX_DEPTH:
            raise self.too_deep(node)
        located = self.depth is None or len(path) <= self.depth
        if located:
            self.positions.values.setdefault(path, self.loc(node))
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node)
            if located and _surprising(value, node.value):
                self.positions.texts.setdefault(path, node.value)
            if self.written and type(value) is not str:
                value = wrap(value, node.value, self.loc(node), _dotted(path))
        elif isinstance(node, yaml.SequenceNode):
            self.check_tag(node, "tag:yaml.org,2002:seq")
            value = []
            self.built[key] = value
            for index, child in enumerate(node.value):
                value.append(self.build(child, (*path, index)))
            return value
        elif isinstance(node, yaml.MappingNode):
            self.check_tag(node, "tag:yaml.org,2002:map")
            value = {}
            self.built[key] = value
            self.mapping(node, path, value)
            return value
        else:  # pragma: no cover - composer yields only these three
            raise UserError("unsupported YAML node", self.loc(node))
        self.built[key] = value
        return value

    def too_deep(self, node: yaml.Node) -> UserError:
        return UserError(
            f"values are nested more than {MAX_DEPTH} levels deep; flatten this structure",
            self.loc(node),
        )

    def check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            raise UserError(
                f"unsupported YAML tag {node.tag!r}; only plain JSON-like values are allowed",
                self.loc(node),
            )

    def scalar(self, node: yaml.ScalarNode) -> Any:
        method = _SCALAR_TAGS.get(node.tag)
        if method is None:
            raise UserError(
                f"unsupported YAML tag {node.tag!r}; only plain JSON-like values are allowed",
                self.loc(node),
            )
        if node.tag == _STR:
            return node.value
        return getattr(self.loader, method)(node)

    def mapping(self, node: yaml.MappingNode, path: PathKey, out: dict[Any, Any]) -> None:
        explicit: dict[Any, yaml.Node] = {}  # name -> its key node, located only when needed
        merged: dict[Any, Any] = {}
        located = self.depth is None or len(path) < self.depth
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.update(self.merge_sources(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise UserError("mapping keys must be plain scalars", self.loc(key_node))
            name = self.scalar(key_node)
            if not isinstance(name, str):
                # Keys are text, as in JSON, and as written: `yes:` is 'yes', not True (which
                # would also collide with a key `1:` in a Python dict).
                name = key_node.value
            first = explicit.get(name)
            if first is not None:
                raise UserError(
                    f"duplicate key {name!r} (first defined at line {self.loc(first).line}); "
                    "YAML would silently keep only the last one",
                    self.loc(key_node),
                )
            explicit[name] = key_node
            if located:
                self.positions.keys[(*path, name)] = self.loc(key_node)
            out[name] = self.build(value_node, (*path, name))
        for name, value in merged.items():
            out.setdefault(name, value)

    def merge_sources(self, node: yaml.Node, path: PathKey) -> dict[Any, Any]:
        """The mapping(s) a `<<:` merge key pulls in; earlier sources win, as in YAML 1.1."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[Any, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise UserError(
                    "a '<<' merge needs a mapping or a list of mappings", self.loc(source)
                )
            value = self.build(source, path)
            result.update(value)
        return result


def _surprising(value: Any, text: str) -> bool:
    """A number, true/false or null whose text YAML reads as another (01234567, 1:30, NO, ~):
    an error about it shows what was written."""
    if isinstance(value, bool):
        return text.lower() not in ("true", "false")
    if value is None:
        return text.lower() != "null"
    return type(value) in (int, float) and str(value) != text


def _dotted(path: PathKey) -> str:
    """`customers[3].id`, as errors name a value."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
