"""Sensitive variables in templates: which keys read one (only these are rendered a second
time, with the real values, for the request sent), and the keys none may decide."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Problem
from commbox_yaml.render.message_file import message_file
from commbox_yaml.render.model import STRUCTURAL, RenderedMessage
from commbox_yaml.render.scope import Scopes
from commbox_yaml.render.values import Templates
from commbox_yaml.render.wording import TemplateProblem, WrittenProblem, withheld
from commbox_yaml.taint import shown_value
from commbox_yaml.usage import field_names

# Keys that decide which messages there are, where they go, and which files they carry:
# never from a sensitive variable, or the display rendering and the sent one would differ.
SHAPING = ("when", "for_each", "key", "id", "stream", "reply_to", "attachments", "message_file")


class SensitiveFields:
    """What a definition's templates do with sensitive variables."""

    def __init__(self, templates: Templates, scopes: Scopes) -> None:
        self.templates = templates
        self.scopes = scopes

    def fields(self, definition: Definition) -> tuple[str, ...]:
        """The keys whose templates may read a sensitive variable (when that cannot be
        known, as with a computed include, they may): only these are rendered twice."""
        if not self.scopes.any_secret:
            return ()
        return tuple(
            key
            for key, value in definition.data.items()
            if key not in STRUCTURAL and key != "id" and self._reads_secret(key, value)
        )

    def _reads_secret(self, key: str, value: Any) -> bool:
        secret_vars, secret_env = self.scopes.secret_vars, self.scopes.secret_env
        names = field_names(self.templates.env, key, value, secret_env)
        if names is None:
            return True
        return bool(names & secret_vars) or (bool(secret_env) and "env" in names)

    def shaping(self, definition: Definition) -> list[Problem]:
        """A problem for each shaping key (SHAPING) whose template reads a sensitive variable."""
        if not self.scopes.any_secret:
            return []
        secrets = self.scopes.secret_vars | {f"env.{n}" for n in self.scopes.secret_env}
        problems = []
        for key in SHAPING:
            if key not in definition.data:
                continue
            value = definition.data[key]
            env_names = self.scopes.secret_env
            used = field_names(self.templates.env, key, value, env_names, follow_file=False)
            secret = sorted((used or set()) & secrets)
            if secret:
                problems.append(
                    Problem(
                        definition.where(key),
                        f"the sensitive variable '{secret[0]}' may not decide the '{key}': "
                        "which messages there are, their keys, streams and files are stored "
                        "in the ledger and in plan files, where a secret cannot be redacted. "
                        "Use a variable that is not sensitive",
                        key,
                    )
                )
        return problems

    def with_sent(
        self, message: RenderedMessage, sent_base: dict[str, Any], item: Any, keys: Iterable[str]
    ) -> RenderedMessage:
        """The message with the values to send: the keys that read a secret rendered again
        with the real values (the others are the same either way). Errors of this rendering
        are not shown as they are: they could quote a secret."""
        definition, item_key = message.definition, message.item_key
        scope = sent_base if item_key is None else {**sent_base, "item": item, "key": item_key}
        shown, sent = dict(message.values), dict(message.values)
        problems: list[Problem] = []
        for key in keys:
            name = "message" if key == "message_file" else key
            try:
                value = self._sent_value(definition, key, scope, item_key)
            except WrittenProblem as exc:
                problems.extend(exc.problems)
                continue
            except TemplateProblem as exc:
                problems.extend(withheld(p) for p in exc.problems)
                continue
            sent[name] = value
            shown[name] = shown_value(shown[name], value)
        if problems:
            raise TemplateProblem(*problems)
        return RenderedMessage(
            definition, message.address, message.key, item_key, shown, False, sent
        )

    def _sent_value(
        self, definition: Definition, key: str, scope: dict[str, Any], item_key: str | None
    ) -> Any:
        value = self.templates.value(definition.data[key], scope, definition, (key,), item_key)
        if key == "message_file":
            value = message_file(self.templates, definition, value, scope, item_key)
        return value
