"""Jinja templating of definitions: the sandbox, native single-expression values,
for_each / key / when, message_file.

Undefined variables are errors (StrictUndefined), templates run in Jinja's sandbox,
and a value that is exactly one `{{ expression }}` keeps the expression's type.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Location, Problem, UserError
from commbox_yaml.project import Project
from commbox_yaml.source import PathKey
from commbox_yaml.validate import format_path
from commbox_yaml.variables import Variables

_SINGLE = re.compile(r"^\{\{-?(.*?)-?\}\}$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_FALSE_WORDS = frozenset({"", "false", "no", "off", "0", "none", "null"})
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"^'(\w+) object' has no attribute '([^']+)'$")
_MISSING_ENV = re.compile(r"^'commbox_yaml\.render\.EnvVars object' has no attribute '([^']+)'$")

# Keys that steer rendering instead of being rendered as values.
STRUCTURAL = ("name", "channel", "for_each", "key", "when")


@dataclass(frozen=True)
class RenderedMessage:
    """One message after templating: the definition's values, ready for the schema."""

    definition: Definition
    address: str
    key: str
    item_key: str | None
    values: dict[str, Any]
    skipped: bool = False


class EnvVars(dict[str, str]):
    """`env` in templates; its own type so that a missing name gets its own explanation."""


@dataclass(frozen=True)
class OfMessage:
    """A value that stands for one rendered message: named by its address and ledger key."""

    message: RenderedMessage

    @property
    def address(self) -> str:
        return self.message.address

    @property
    def key(self) -> str:
        return self.message.key


class TemplateProblem(Exception):
    """Templates failed; carries the located problem(s)."""

    def __init__(self, problem: Problem, *more: Problem) -> None:
        super().__init__(problem.message)
        self.problems = [problem, *more]


class Renderer:
    """Renders definitions with one set of variables; compiled templates are cached."""

    def __init__(self, project: Project, variables: Variables) -> None:
        self.project = project
        self.variables = variables
        self.env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            loader=jinja2.FileSystemLoader(str(project.root)),
        )
        self._templates: dict[str, jinja2.Template] = {}
        self._expressions: dict[str, Any] = {}

    # -- public -----------------------------------------------------------------------------

    def render(self, definition: Definition) -> tuple[list[RenderedMessage], list[Problem]]:
        """Every message a definition gives (one per for_each item), and what went wrong."""
        base = {
            **self.variables.values,
            "env": EnvVars(self.variables.env),
            "definition": {
                "name": definition.name,
                "channel": definition.channel,
                "file": definition.file,
            },
        }
        try:
            items = list(self._items(definition, base))
        except TemplateProblem as exc:
            return [], exc.problems
        messages: list[RenderedMessage] = []
        problems: list[Problem] = []
        for item_key, scope in items:
            try:
                messages.append(self._render_one(definition, item_key, scope))
            except TemplateProblem as exc:
                problems.extend(exc.problems)
        return messages, problems

    # -- for_each, key, when ----------------------------------------------------------------

    def _items(
        self, definition: Definition, base: dict[str, Any]
    ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        data = definition.data
        if "for_each" not in data:
            yield None, base
            return
        where = definition.where("for_each")
        source = data["for_each"]
        items = (
            self._evaluate(source, base, where, "for_each") if isinstance(source, str) else source
        )
        key_template = data.get("key")
        if key_template is not None and not isinstance(key_template, str):
            raise self._fail(definition.where("key"), "key", "must be a template string")
        pairs: list[tuple[Any, Any]]
        if isinstance(items, Mapping):
            pairs = list(items.items())
        elif isinstance(items, list):
            pairs = [(None, item) for item in items]
        else:
            raise self._fail(
                where, "for_each", f"must give a list or a mapping, not {_kind(items)}"
            )
        seen: dict[str, int] = {}
        for index, (mapping_key, item) in enumerate(pairs):
            scope = {**base, "item": item}
            if key_template is not None:
                scope["key"] = mapping_key
                key = self._text(key_template, scope, definition.where("key"), "key")
            elif mapping_key is not None:
                key = str(mapping_key)
            elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
                key = str(item)
            else:
                raise self._fail(
                    where,
                    "for_each",
                    f"item {index} is {'a mapping' if isinstance(item, dict) else 'not a scalar'}; "
                    "add a 'key:' template that names each item, e.g. key: '{{ item.id }}'",
                )
            if not key or "[" in key or "]" in key or "\n" in key:
                raise self._fail(
                    definition.where("key") if key_template else where,
                    "key",
                    f"item {index} has the key {key!r}; a key must be non-empty text "
                    "without '[', ']' or line breaks",
                )
            if key in seen:
                raise self._fail(
                    definition.where("key") if key_template else where,
                    "key",
                    f"items {seen[key]} and {index} both have the key {key!r}; keys must be unique",
                )
            seen[key] = index
            scope["key"] = key
            yield key, scope

    def _render_one(
        self, definition: Definition, item_key: str | None, scope: dict[str, Any]
    ) -> RenderedMessage:
        data = definition.data
        address = definition.name if item_key is None else f"{definition.name}[{item_key}]"
        id_value = data.get("id", definition.name)
        ledger_id = self._value(id_value, scope, definition, ("id",), item_key)
        if not isinstance(ledger_id, (str, int)) or isinstance(ledger_id, bool) or ledger_id == "":
            raise self._fail(
                definition.where("id"), "id", "must render to non-empty text", item_key
            )
        key = str(ledger_id) if item_key is None else f"{ledger_id}[{item_key}]"
        if "when" in data and not self._when(definition, scope, item_key):
            return RenderedMessage(definition, address, key, item_key, {}, skipped=True)
        values: dict[str, Any] = {
            "name": definition.name,
            "channel": definition.channel,
        }
        problems: list[Problem] = []
        for name, raw in data.items():
            if name in STRUCTURAL:
                continue
            try:  # report every field that fails, not only the first
                values[name] = self._value(raw, scope, definition, (name,), item_key)
            except TemplateProblem as exc:
                problems.extend(exc.problems)
        if problems:
            raise TemplateProblem(*problems)
        values["id"] = ledger_id
        if "message_file" in values:
            if "message" in values:
                raise self._fail(
                    definition.where_key("message_file"),
                    "message_file",
                    "give either 'message' or 'message_file', not both",
                    item_key,
                )
            values["message"] = self._message_file(
                definition, values.pop("message_file"), scope, item_key
            )
        return RenderedMessage(definition, address, key, item_key, values)

    def _when(self, definition: Definition, scope: dict[str, Any], item_key: str | None) -> bool:
        raw = definition.data["when"]
        if isinstance(raw, bool):
            return raw
        if not isinstance(raw, str):
            raise self._fail(
                definition.where("when"), "when", "must be an expression or true/false", item_key
            )
        result = self._evaluate(raw, scope, definition.where("when"), "when", item_key)
        if isinstance(result, str):
            return result.strip().lower() not in _FALSE_WORDS
        return bool(result)

    # -- values -----------------------------------------------------------------------------

    def _value(
        self,
        raw: Any,
        scope: dict[str, Any],
        definition: Definition,
        path: PathKey,
        item_key: str | None,
    ) -> Any:
        if isinstance(raw, str):
            if not any(marker in raw for marker in _MARKERS):
                return raw
            where = definition.where(*path)
            single = _SINGLE.match(raw)
            if single and not any(m in single.group(1) for m in ("{{", "}}", "{%", "{#")):
                return self._evaluate(single.group(1), scope, where, format_path(path), item_key)
            return self._text(raw, scope, where, format_path(path), item_key)
        if isinstance(raw, dict):
            return {
                k: self._value(v, scope, definition, (*path, k), item_key) for k, v in raw.items()
            }
        if isinstance(raw, list):
            return [
                self._value(v, scope, definition, (*path, i), item_key) for i, v in enumerate(raw)
            ]
        return raw

    def _text(
        self,
        source: str,
        scope: dict[str, Any],
        where: Location | None,
        path: str,
        item_key: str | None = None,
    ) -> str:
        try:
            template = self._templates.get(source)
            if template is None:
                template = self._templates[source] = self.env.from_string(source)
            return template.render(scope)
        except Exception as exc:  # any error a user's template raises is the user's to fix
            raise self._template_fail(exc, where, path, item_key) from None

    def _evaluate(
        self,
        expression: str,
        scope: dict[str, Any],
        where: Location | None,
        path: str,
        item_key: str | None = None,
    ) -> Any:
        """A Jinja expression's native value (`{{ ` and ` }}` around it are allowed)."""
        single = _SINGLE.match(expression.strip())
        if single:
            expression = single.group(1)
        try:
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self._expressions[expression] = self.env.compile_expression(
                    expression.strip(), undefined_to_none=False
                )
            return _plain(compiled(**scope))
        except Exception as exc:  # any error a user's expression raises is the user's to fix
            # An expression is not a template: its traceback lines are Jinja's, not the user's.
            raise self._template_fail(exc, where, path, item_key, lines=False) from None

    def _message_file(
        self, definition: Definition, relative: Any, scope: dict[str, Any], item_key: str | None
    ) -> str:
        where = definition.where("message_file")
        if not isinstance(relative, str):
            raise self._fail(where, "message_file", "must be a file path", item_key)
        try:
            path = self.project.resolve(relative, where, "message_file")
        except UserError as exc:
            raise TemplateProblem(
                Problem(exc.problem.location, exc.problem.message, "message_file", item_key)
            ) from None
        if not path.is_file():
            raise self._fail(where, "message_file", f"file {relative!r} not found", item_key)
        name = self.project.display(path)
        try:
            return self.env.get_template(name).render(scope)
        except Exception as exc:  # any error a user's template raises is the user's to fix
            raise self._template_fail(exc, where, "message_file", item_key, name) from None

    # -- errors -----------------------------------------------------------------------------

    def _fail(
        self, where: Location | None, path: str, message: str, item_key: str | None = None
    ) -> TemplateProblem:
        return TemplateProblem(Problem(where, message, path, item_key))

    def _template_fail(
        self,
        exc: BaseException,
        where: Location | None,
        path: str,
        item_key: str | None,
        template_file: str | None = None,
        lines: bool = True,
    ) -> TemplateProblem:
        message = _describe(exc, self.project.env)
        line = _template_line(exc, template_file)
        if not lines and not isinstance(exc, jinja2.TemplateSyntaxError):
            line = 0
        if template_file is not None and line:
            where = Location(template_file, line, 1)
        elif line and line > 1:
            message += f" (template line {line})"
        return TemplateProblem(Problem(where, message, path, item_key))


def _describe(exc: BaseException, allowed_env: tuple[str, ...] = ()) -> str:
    if isinstance(exc, UserError):
        return exc.problem.message
    if isinstance(exc, jinja2.UndefinedError):
        text = str(exc.message or exc)
        missing = _MISSING_ENV.match(text)
        if missing:
            name = missing.group(1)
            if name in allowed_env:
                return (
                    f"env.{name} is not set in the environment; set it, or write "
                    f"{{{{ env.{name} | default('...') }}}}"
                )
            return f"env.{name} is not visible to templates; add {name} to 'env:' in commbox.yaml"
        found = _UNDEFINED_NAME.match(text)
        if found:
            name = found.group(1)
            return (
                f"'{name}' is undefined; define it in a vars file, pass --var {name}=..., "
                f"or set COMMBOX_VAR_{name}"
            )
        attribute = _NO_ATTRIBUTE.match(text)
        if attribute:
            kind = {"dict": "a mapping", "list": "a list", "str": "a text", "int": "a number"}
            what = kind.get(attribute.group(1), f"a {attribute.group(1)}")
            return (
                f"{what} has no key '{attribute.group(2)}'; check the spelling, or use "
                f"| default(...) where it may be missing"
            )
        return text
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the template sandbox: {exc}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"template syntax error: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name!r} not found under the project root"
    return f"template error: {type(exc).__name__}: {exc}"


def _template_line(exc: BaseException, template_file: str | None) -> int:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    tb = exc.__traceback__
    line = 0
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == "<template>" or (
            template_file is not None and Path(filename).as_posix().endswith(template_file)
        ):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _plain(value: Any) -> Any:
    """A template result as plain JSON-like data; Undefined raises, odd objects are refused."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # Markup and other str subclasses become plain text
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, types.GeneratorType, map, filter, set, frozenset)):
        return [_plain(v) for v in value]
    raise UserError(
        f"the expression gives a {type(value).__name__}, which is not text, a number, "
        "true/false, a list or a mapping"
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if value is None:
        return "an empty value"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"a {type(value).__name__}"
