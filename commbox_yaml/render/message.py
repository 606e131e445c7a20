"""One message's values: its ledger key (from `id`), `when`, and every field rendered."""

from __future__ import annotations

from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Problem
from commbox_yaml.keys import MAX_KEY_LENGTH, TEST_PREFIX
from commbox_yaml.render.items import CONTROL
from commbox_yaml.render.message_file import message_file
from commbox_yaml.render.model import STRUCTURAL, RenderedMessage
from commbox_yaml.render.values import Templates
from commbox_yaml.render.wording import TemplateProblem, failure, kind_of
from commbox_yaml.taint import DECIDED, REDACTED

_FALSE_WORDS = frozenset({"", "false", "no", "off", "0", "none", "null"})


class MessageFields:
    """Renders one message of a definition (one for_each item) in its scope."""

    def __init__(self, templates: Templates) -> None:
        self.templates = templates

    def render(
        self, definition: Definition, item_key: str | None, scope: dict[str, Any]
    ) -> RenderedMessage:
        address = definition.name if item_key is None else f"{definition.name}[{item_key}]"
        ledger_id = self._ledger_id(definition, scope, item_key)
        key = str(ledger_id) if item_key is None else f"{ledger_id}[{item_key}]"
        if len(key) > MAX_KEY_LENGTH:
            raise self._key_too_long(definition, key, len(str(ledger_id)), item_key)
        self._check_one_line(definition, ledger_id, item_key)
        if key.startswith(TEST_PREFIX):
            raise failure(
                definition.where("id"),
                "id",
                f"makes the ledger key {key[:60]!r}; keys starting with '{TEST_PREFIX}' are "
                "kept for test sends (apply --test-to): choose another id",
                item_key,
            )
        if "when" in definition.data and not self._when(definition, scope, item_key):
            return RenderedMessage(definition, address, key, item_key, {}, skipped=True)
        values = self._fields(definition, scope, item_key)
        values["id"] = ledger_id
        if "message_file" in values:
            self._message_from_file(definition, values, scope, item_key)
        return RenderedMessage(definition, address, key, item_key, values)

    def _ledger_id(
        self, definition: Definition, scope: dict[str, Any], item_key: str | None
    ) -> str | int:
        id_value = definition.data.get("id", definition.name)
        ledger_id = self.templates.value(id_value, scope, definition, ("id",), item_key)
        if not isinstance(ledger_id, (str, int)) or isinstance(ledger_id, bool) or ledger_id == "":
            raise failure(
                definition.where("id"),
                "id",
                f"renders to {kind_of(ledger_id)}; an id must be non-empty text (or a number), "
                "as in id: 'welcome-{{ version }}'",
                item_key,
            )
        return ledger_id

    def _check_one_line(
        self, definition: Definition, ledger_id: str | int, item_key: str | None
    ) -> None:
        """A key is printed and kept on one line. (Without an `id`, the key is the name, which
        its own pattern checks.)"""
        if "id" in definition.data and CONTROL.search(str(ledger_id)):
            raise failure(
                definition.where("id"),
                "id",
                f"renders to {str(ledger_id)!r}; a ledger key must not hold line breaks or "
                "other control characters",
                item_key,
            )

    def _fields(
        self, definition: Definition, scope: dict[str, Any], item_key: str | None
    ) -> dict[str, Any]:
        """Every field's value; the problems of all fields that fail, not only the first."""
        values: dict[str, Any] = {"name": definition.name, "channel": definition.channel}
        problems: list[Problem] = []
        for name, raw in definition.data.items():
            if name in STRUCTURAL:
                continue
            decided = DECIDED.count
            try:
                values[name] = self.templates.value(raw, scope, definition, (name,), item_key)
            except TemplateProblem as exc:
                problems.extend(exc.problems)
            if DECIDED.count != decided:  # a sensitive value decided this field: shown whole
                values[name] = REDACTED
        if problems:
            raise TemplateProblem(*problems)
        return values

    def _message_from_file(
        self,
        definition: Definition,
        values: dict[str, Any],
        scope: dict[str, Any],
        item_key: str | None,
    ) -> None:
        """`message` from the rendered file that `message_file` names, in place of it."""
        if "message" in values:
            raise failure(
                definition.where_key("message_file"),
                "message_file",
                "give either 'message' or 'message_file', not both",
                item_key,
            )
        decided = DECIDED.count
        relative = values.pop("message_file")
        values["message"] = message_file(self.templates, definition, relative, scope, item_key)
        if DECIDED.count != decided:
            values["message"] = REDACTED

    def _key_too_long(
        self, definition: Definition, key: str, id_length: int, item_key: str | None
    ) -> TemplateProblem:
        """At the `id` when it is the longer part, else at what names the item (`key:`, or
        `for_each` whose items key themselves)."""
        if item_key is None or id_length >= len(item_key):
            where, path = definition.where("id"), "id"
        elif "key" in definition.data:
            where, path = definition.where("key"), "key"
        else:
            where, path = definition.where("for_each"), "for_each"
        return failure(
            where,
            path,
            f"makes a ledger key of {len(key)} characters ({key[:40]!r}...); a key is at most "
            f"{MAX_KEY_LENGTH} characters: make the id or the item's key shorter",
            item_key if item_key is None or len(item_key) <= 60 else f"{item_key[:60]}...",
        )

    def _when(self, definition: Definition, scope: dict[str, Any], item_key: str | None) -> bool:
        raw = definition.data["when"]
        if isinstance(raw, bool):
            return raw
        if not isinstance(raw, str):
            raise failure(
                definition.where("when"), "when", "must be an expression or true/false", item_key
            )
        result = self.templates.evaluate(raw, scope, definition, ("when",), item_key)
        if isinstance(result, str):
            return result.strip().lower() not in _FALSE_WORDS
        return bool(result)
