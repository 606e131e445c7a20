"""for_each and key: the items a definition fans out to, each named by a unique key."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Location
from commbox_yaml.render import lookup as fast
from commbox_yaml.render.values import Templates
from commbox_yaml.render.wording import TemplateProblem, failure, kind_of
from commbox_yaml.variables import Variables
from commbox_yaml.written import SEEN, WrittenNull

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class ForEach:
    """The (key, item) pairs of a definition's for_each, every key checked."""

    def __init__(self, templates: Templates, variables: Variables) -> None:
        self.templates = templates
        self.variables = variables

    def items(
        self, definition: Definition, base: dict[str, Any]
    ) -> Iterator[tuple[str | None, Any]]:
        """(key, item) for each for_each item, every key checked; (None, None) without one.
        The items' scopes are made again when each is rendered: held for a whole fan-out,
        they would cost more than the items themselves."""
        if "for_each" not in definition.data:
            yield None, None
            return
        source = definition.data["for_each"]
        items = (
            self.templates.evaluate(source, base, definition, ("for_each",))
            if isinstance(source, str)
            else source
        )
        key_template = definition.data.get("key")
        if key_template is not None and not isinstance(key_template, str):
            raise failure(definition.where("key"), "key", "must be a template string")
        seen: dict[str, int] = {}
        for index, (mapping_key, item) in enumerate(self._pairs(definition, items)):
            key = self._key(definition, base, key_template, index, mapping_key, item)
            if key in seen:
                item_path = index if mapping_key is None else mapping_key
                origin = self._item_origin(definition.data["for_each"], key_template, item_path)
                raise failure(
                    definition.where("key" if key_template else "for_each"),
                    "key",
                    f"items {seen[key]} and {index} both have the key {key!r}; keys must be "
                    f"unique{origin}",
                )
            seen[key] = index
            yield key, item

    def _pairs(self, definition: Definition, items: Any) -> Iterable[tuple[Any, Any]]:
        """(mapping key, item) of each item; the mapping key is None for a list's items."""
        if isinstance(items, Mapping):
            return list(items.items())
        if isinstance(items, list):
            return ((None, item) for item in items)
        shown = kind_of(self.variables.redactor().data(items))  # redacted before it is cut
        raise failure(
            definition.where("for_each"), "for_each", f"must give a list or a mapping, not {shown}"
        )

    def _key(
        self,
        definition: Definition,
        base: dict[str, Any],
        key_template: str | None,
        index: int,
        mapping_key: Any,
        item: Any,
    ) -> str:
        """The item's key: from `key:`, the mapping's key, or a scalar item itself."""
        null = item is None or isinstance(item, WrittenNull)
        if key_template is not None:
            scope = {**base, "item": item, "key": mapping_key}
            try:
                key = self.templates.text(key_template, scope, definition, ("key",))
            except TemplateProblem:
                if null and mapping_key is None:
                    raise self._null_item(definition, key_template, index) from None
                raise
        elif mapping_key is not None:
            key = str(mapping_key)
        elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
            mark = len(SEEN)
            key = str(item)
            self.templates.check_written(mark, definition, ("for_each",), None)
        elif null:
            raise self._null_item(definition, key_template, index)
        else:
            raise failure(
                definition.where("for_each"),
                "for_each",
                f"item {index} is {'a mapping' if isinstance(item, dict) else 'not a scalar'}; "
                "add a 'key:' template that names each item, e.g. key: '{{ item.id }}'",
            )
        if not key or "[" in key or "]" in key or CONTROL.search(key):
            raise _bad_key(definition.where("key" if key_template else "for_each"), index, key)
        return key

    def _null_item(
        self, definition: Definition, key_template: str | None, index: int
    ) -> TemplateProblem:
        """At the empty item in its var file (or at the for_each), naming the message."""
        at = self._locate_item(definition.data["for_each"], None, index)
        used = f" ({definition.where('for_each')})" if at is not None else ""
        reads = f" (key: {key_template!r})" if key_template is not None else ""
        return failure(
            at or definition.where("for_each"),
            "for_each",
            f"item {index} is empty (null) in the for_each of message '{definition.name}'"
            f"{used}; remove it from the list, or give it the values the templates read{reads}",
        )

    def _item_origin(self, source: Any, key_template: str | None, item: str | int) -> str:
        """ " (from FILE:LINE:COL)" for a for_each item that came from a var file, or ""."""
        where = self._locate_item(source, key_template, item)
        return f" (from {where})" if where is not None else ""

    def _locate_item(
        self, source: Any, key_template: str | None, item: str | int
    ) -> Location | None:
        """Where a for_each item (or, with `key: '{{ item.x }}'`, its x) was written."""
        if not isinstance(source, str):
            return None
        lookup = fast.parse_lookup(fast.inner_expression(source).strip())
        if lookup is None:
            return None
        path: tuple[str | int, ...] = (*lookup, item)
        inner = fast.SINGLE.match(key_template.strip()) if key_template else None
        key_lookup = fast.parse_lookup(inner.group(1).strip()) if inner else None
        if key_lookup is not None and key_lookup[0] == "item":
            path += key_lookup[1:]  # the key's own value, such as item.id
        return self.variables.locate(path) or self.variables.locate(path[: len(lookup) + 1])


def _bad_key(where: Location, index: int, key: str) -> TemplateProblem:
    return failure(
        where,
        "key",
        f"item {index} has the key {key!r}; a key must be non-empty text "
        "without '[', ']', line breaks or other control characters",
    )
