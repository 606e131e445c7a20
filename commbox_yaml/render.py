"""Jinja templating of definitions: the sandbox, native single-expression values,
for_each / key / when, message_file.

Undefined variables are errors (StrictUndefined), templates run in Jinja's sandbox,
and a value that is exactly one `{{ expression }}` keeps the expression's type.
"""

from __future__ import annotations

import re
import signal
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from jinja2.loaders import split_template_path

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Location, Problem, UserError
from commbox_yaml.hints import did_you_mean, missing_key
from commbox_yaml.keys import MAX_KEY_LENGTH
from commbox_yaml.project import LEDGER_SECRETS, Project
from commbox_yaml.source import PathKey
from commbox_yaml.taint import DECIDED, REDACTED, TAINT, TaintingSandbox, shown_value
from commbox_yaml.usage import field_names
from commbox_yaml.validate import format_path
from commbox_yaml.variables import Variables
from commbox_yaml.written import SEEN, Written, changed_text, first_written, unwrapped

_SINGLE = re.compile(r"^\{\{-?(.*?)-?\}\}$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_FALSE_WORDS = frozenset({"", "false", "no", "off", "0", "none", "null"})
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"^'(\w+) object' has no attribute '([^']+)'$")
_MISSING_ENV = re.compile(r"^'commbox_yaml\.render\.EnvVars object' has no attribute '([^']+)'$")

# `{{ name }}` and `{{ name.key.key }}`, alone or between plain text, are most templates: they
# are looked up here in plain dicts instead of through a fresh Jinja context per value (which
# cost more than everything else in rendering), giving what Jinja gives. Whatever else a
# template holds, and a lookup that does not find a plain value, goes to Jinja, which also words
# every error.
Lookup = tuple[str, ...]
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LOOKUP = re.compile(rf"[ \t\n]*({_NAME}(?:\.{_NAME})*)[ \t\n]*")
# Plain text outside `{{ }}` is left as written by Jinja, except line endings: no '\r'.
_TEXT_PART = re.compile(r"\{\{([^{}]*)\}\}|[^{}\r]+")
# Names Jinja reads as constants, operators or its own objects rather than as variables.
_NOT_VARIABLES = frozenset(
    {"true", "false", "none", "True", "False", "None", "self", "loop", "super", "caller"}
    | {"varargs", "kwargs", "and", "or", "not", "in", "is", "if", "else", "elif", "for"}
    | {"recursive", "with", "without", "context", "import", "from", "as", "set", "block"}
)
_MISSING = object()
_PLAIN_SCALARS = frozenset({str, bool, int, float})

# Wall-clock seconds to render one message (or to expand one for_each).
TEMPLATE_BUDGET_S = 10.0

# Keys that steer rendering instead of being rendered as values.
STRUCTURAL = ("name", "channel", "for_each", "key", "when")
# Keys that decide which messages there are, where they go, and which files they carry:
# never from a sensitive variable, or the display rendering and the sent one would differ.
SHAPING = ("when", "for_each", "key", "id", "stream", "reply_to", "attachments", "message_file")


@dataclass(frozen=True)
class RenderedMessage:
    """One message after templating: the definition's values, ready for the schema."""

    definition: Definition
    address: str
    key: str
    item_key: str | None
    values: dict[str, Any]
    skipped: bool = False
    # The values rendered with the real sensitive values, when any template uses one (then
    # `values`, rendered with them as `(sensitive)`, is what every output shows).
    sent: dict[str, Any] | None = None


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


class WrittenProblem(TemplateProblem):
    """A var file value written as other text than its own (written.py): worded without the
    value when it is sensitive, so it is shown even from the rendering with real values."""


class Renderer:
    """Renders definitions with one set of variables; compiled templates are cached."""

    def __init__(self, project: Project, variables: Variables) -> None:
        self.project = project
        self.variables = variables
        self.env = TaintingSandbox(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            loader=_RootLoader(project.root),
            finalize=_printable,
        )
        self._templates: dict[str, jinja2.Template] = {}
        self._expressions: dict[str, Any] = {}
        # Each template text parsed once, not once per item: what kind of value it is, the
        # expression Jinja compiles, and the lookups of simple templates (None: Jinja's job).
        self._kinds: dict[str, _Kind] = {}
        self._parsed_expressions: dict[str, tuple[str, Lookup | None]] = {}
        self._text_lookups: dict[str, tuple[str | Lookup, ...] | None] = {}
        # The variables as every output sees them: each sensitive one is TAINT.
        sensitive = variables.sensitive_names
        self._secret_vars = frozenset(n for n in sensitive if n in variables.values)
        self._secret_env = frozenset(n for n in sensitive if n in variables.env)
        self._shown_values = {
            k: TAINT if k in self._secret_vars else v for k, v in variables.values.items()
        }
        self._shown_env = EnvVars(
            {k: TAINT if k in self._secret_env else v for k, v in variables.env.items()}
        )

    # -- public -----------------------------------------------------------------------------

    def render(
        self,
        definition: Definition,
        problems: list[Problem],
        expect: Callable[[int], None] | None = None,
    ) -> Iterator[RenderedMessage]:
        """Every message a definition gives (one per for_each item), one at a time; what goes
        wrong is added to `problems`. Every item's key is checked before the first message is
        rendered (a definition with a bad key gives no message at all); then `expect` is
        told how many messages are coming."""
        shaping = self._secret_shaping(definition)
        if shaping:
            problems.extend(shaping)
            return
        base = self._scope(definition, shown=True)
        secret_fields = self._secret_fields(definition)
        sent_base = self._scope(definition, shown=False) if secret_fields else None
        with _TimeBudget() as budget:
            try:
                with budget.running(TEMPLATE_BUDGET_S):
                    items = list(self._items(definition, base))
            except TemplateProblem as exc:
                problems.extend(exc.problems)
                return
            except TemplateTimeout:
                problems.append(self._too_slow(definition, "for_each", None))
                return
            if expect is not None:
                expect(len(items))
            for item_key, item in items:
                scope = base if item_key is None else {**base, "item": item, "key": item_key}
                try:
                    with budget.running(TEMPLATE_BUDGET_S):
                        message = self._render_one(definition, item_key, scope)
                        if sent_base is not None and not message.skipped:
                            message = self._with_sent(message, sent_base, item, secret_fields)
                except TemplateProblem as exc:
                    problems.extend(exc.problems)
                    continue
                except TemplateTimeout:
                    problems.append(self._too_slow(definition, "", item_key))
                    continue
                yield message

    def _scope(self, definition: Definition, shown: bool) -> dict[str, Any]:
        values = self._shown_values if shown else self.variables.values
        return {
            **values,
            "env": self._shown_env if shown else EnvVars(self.variables.env),
            "definition": {
                "name": definition.name,
                "channel": definition.channel,
                "file": definition.file,
            },
        }

    def _secret_fields(self, definition: Definition) -> tuple[str, ...]:
        """The keys whose templates may read a sensitive variable (when that cannot be
        known, as with a computed include, they may): only these are rendered twice."""
        if not self._secret_vars and not self._secret_env:
            return ()
        return tuple(
            key
            for key, value in definition.data.items()
            if key not in STRUCTURAL and key != "id" and self._reads_secret(key, value)
        )

    def _reads_secret(self, key: str, value: Any) -> bool:
        names = field_names(self.env, key, value, self._secret_env)
        if names is None:
            return True
        return bool(names & self._secret_vars) or (bool(self._secret_env) and "env" in names)

    def _secret_shaping(self, definition: Definition) -> list[Problem]:
        """A problem for each shaping key (SHAPING) whose template reads a sensitive variable."""
        if not self._secret_vars and not self._secret_env:
            return []
        problems = []
        for key in SHAPING:
            if key not in definition.data:
                continue
            value = definition.data[key]
            used = field_names(self.env, key, value, self._secret_env, follow_file=False) or set()
            secret = sorted(used & (self._secret_vars | {f"env.{n}" for n in self._secret_env}))
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

    def _with_sent(
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
                value = self._value(definition.data[key], scope, definition, (key,), item_key)
                if key == "message_file":
                    value = self._message_file(definition, value, scope, item_key)
            except WrittenProblem as exc:
                problems.extend(exc.problems)
                continue
            except TemplateProblem as exc:
                problems.extend(_withheld(p) for p in exc.problems)
                continue
            sent[name] = value
            shown[name] = shown_value(shown[name], value)
        if problems:
            raise TemplateProblem(*problems)
        return RenderedMessage(
            definition, message.address, message.key, item_key, shown, False, sent
        )

    def _too_slow(self, definition: Definition, path: str, item_key: str | None) -> Problem:
        return Problem(
            definition.where(path) if path else definition.location,
            f"rendering message '{definition.name}' took longer than {TEMPLATE_BUDGET_S:g} s; "
            "a template loop that runs too long? Make it smaller",
            path,
            item_key,
        )

    # -- for_each, key, when ----------------------------------------------------------------

    def _items(
        self, definition: Definition, base: dict[str, Any]
    ) -> Iterator[tuple[str | None, Any]]:
        """(key, item) for each for_each item, every key checked; (None, None) without one.
        The items' scopes are made again when each is rendered: held for a whole fan-out,
        they would cost more than the items themselves."""
        data = definition.data
        if "for_each" not in data:
            yield None, None
            return
        where = definition.where("for_each")
        source = data["for_each"]
        items = (
            self._evaluate(source, base, definition, ("for_each",))
            if isinstance(source, str)
            else source
        )
        key_template = data.get("key")
        if key_template is not None and not isinstance(key_template, str):
            raise self._fail(definition.where("key"), "key", "must be a template string")
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(items, Mapping):
            pairs = list(items.items())
        elif isinstance(items, list):
            pairs = ((None, item) for item in items)
        else:
            shown = _kind(self.variables.redactor().data(items))  # redacted before _kind cuts it
            raise self._fail(where, "for_each", f"must give a list or a mapping, not {shown}")
        seen: dict[str, int] = {}
        for index, (mapping_key, item) in enumerate(pairs):
            scope = {**base, "item": item}
            if key_template is not None:
                scope["key"] = mapping_key
                key = self._text(key_template, scope, definition, ("key",))
            elif mapping_key is not None:
                key = str(mapping_key)
            elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
                mark = len(SEEN)
                key = str(item)
                self._check_written(mark, definition, ("for_each",), None)
            else:
                raise self._fail(
                    where,
                    "for_each",
                    f"item {index} is {'a mapping' if isinstance(item, dict) else 'not a scalar'}; "
                    "add a 'key:' template that names each item, e.g. key: '{{ item.id }}'",
                )
            if not key or "[" in key or "]" in key or _CONTROL.search(key):
                raise self._fail(
                    definition.where("key") if key_template else where,
                    "key",
                    f"item {index} has the key {key!r}; a key must be non-empty text "
                    "without '[', ']', line breaks or other control characters",
                )
            if key in seen:
                item_path = index if mapping_key is None else mapping_key
                raise self._fail(
                    definition.where("key") if key_template else where,
                    "key",
                    f"items {seen[key]} and {index} both have the key {key!r}; keys must be "
                    f"unique{self._item_origin(source, key_template, item_path)}",
                )
            seen[key] = index
            yield key, item

    def _item_origin(self, source: Any, key_template: str | None, item: str | int) -> str:
        """ " (from FILE:LINE:COL)" for a for_each item that came from a var file, or ""."""
        if not isinstance(source, str):
            return ""
        single = _SINGLE.match(source.strip())
        lookup = _lookup((single.group(1) if single else source).strip())
        if lookup is None:
            return ""
        path: tuple[str | int, ...] = (*lookup, item)
        inner = _SINGLE.match(key_template.strip()) if key_template else None
        key_lookup = _lookup(inner.group(1).strip()) if inner else None
        if key_lookup is not None and key_lookup[0] == "item":
            path += key_lookup[1:]  # the key's own value, such as item.id
        where = self.variables.locate(path) or self.variables.locate(path[: len(lookup) + 1])
        return f" (from {where})" if where is not None else ""

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
        if len(key) > MAX_KEY_LENGTH:
            raise self._key_too_long(definition, key, len(str(ledger_id)), item_key)
        # A key is printed and kept on one line. (Without an `id`, the key is the name, which
        # its own pattern checks.)
        if "id" in data and _CONTROL.search(str(ledger_id)):
            raise self._fail(
                definition.where("id"),
                "id",
                f"renders to {str(ledger_id)!r}; a ledger key must not hold line breaks or "
                "other control characters",
                item_key,
            )
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
            decided = DECIDED.count
            try:  # report every field that fails, not only the first
                values[name] = self._value(raw, scope, definition, (name,), item_key)
            except TemplateProblem as exc:
                problems.extend(exc.problems)
            if DECIDED.count != decided:  # a sensitive value decided this field: shown whole
                values[name] = REDACTED
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
            decided = DECIDED.count
            values["message"] = self._message_file(
                definition, values.pop("message_file"), scope, item_key
            )
            if DECIDED.count != decided:
                values["message"] = REDACTED
        return RenderedMessage(definition, address, key, item_key, values)

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
        return self._fail(
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
            raise self._fail(
                definition.where("when"), "when", "must be an expression or true/false", item_key
            )
        result = self._evaluate(raw, scope, definition, ("when",), item_key)
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
            if "{" not in raw:  # every marker starts with '{': plain text, most values
                return raw
            kind = self._kinds.get(raw)
            if kind is None:
                kind = self._kinds[raw] = _classify(raw)
            if not kind.template:
                return raw
            if kind.expression is not None:
                value = self._evaluate(kind.expression, scope, definition, path, item_key)
                if value is not None and type(value) not in _PLAIN_SCALARS:
                    written = first_written(value)  # a value YAML changed, sent as it is
                    if written is not None:
                        raise self._written_problem(written, definition, path, item_key, True)
                    value = unwrapped(value)
                return value
            return self._text(raw, scope, definition, path, item_key)
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
        definition: Definition,
        path: PathKey,
        item_key: str | None = None,
    ) -> str:
        mark = len(SEEN)
        text = self._text_of(source, scope, definition, path, item_key)
        self._check_written(mark, definition, path, item_key)
        return text

    def _text_of(
        self,
        source: str,
        scope: dict[str, Any],
        definition: Definition,
        path: PathKey,
        item_key: str | None = None,
    ) -> str:
        """A template's text; `definition` and `path` locate it, should it fail."""
        try:
            if source in self._text_lookups:
                parts = self._text_lookups[source]
            else:
                parts = self._text_lookups[source] = _text_lookups(source)
            if parts is not None:
                text = _look_up_text(parts, scope)
                if text is not None:
                    return text
            template = self._templates.get(source)
            if template is None:
                template = self._templates[source] = self.env.from_string(source)
            return template.render(scope)
        except TemplateTimeout:
            raise
        except Exception as exc:  # any error a user's template raises is the user's to fix
            where = definition.where(*path)
            raise self._template_fail(
                exc, where, format_path(path), item_key, context=(scope, source)
            ) from None

    def _evaluate(
        self,
        expression: str,
        scope: dict[str, Any],
        definition: Definition,
        path: PathKey,
        item_key: str | None = None,
    ) -> Any:
        """A Jinja expression's native value (`{{ ` and ` }}` around it are allowed)."""
        mark = len(SEEN)
        value = self._value_of(expression, scope, definition, path, item_key)
        self._check_written(mark, definition, path, item_key)
        return value

    def _value_of(
        self,
        expression: str,
        scope: dict[str, Any],
        definition: Definition,
        path: PathKey,
        item_key: str | None = None,
    ) -> Any:
        parsed = self._parsed_expressions.get(expression)
        if parsed is None:
            single = _SINGLE.match(expression.strip())
            inner = single.group(1) if single else expression
            parsed = self._parsed_expressions[expression] = (inner, _lookup(inner.strip()))
        expression, lookup = parsed
        try:
            # compiled(**scope) fails when a variable is named `self` (the parameter of Jinja's
            # TemplateExpression.__call__): such a scope goes to Jinja, to fail as it always has.
            if lookup is not None and "self" not in scope:
                value = _look_up(lookup, scope)
                if value is not _MISSING:
                    return _plain(value)
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self._expressions[expression] = self.env.compile_expression(
                    expression.strip(), undefined_to_none=False
                )
            return _plain(compiled(**scope))
        except TemplateTimeout:
            raise
        except Exception as exc:  # any error a user's expression raises is the user's to fix
            # An expression is not a template: its traceback lines are Jinja's, not the user's.
            where, dotted = definition.where(*path), format_path(path)
            raise self._template_fail(
                exc, where, dotted, item_key, lines=False, context=(scope, expression)
            ) from None

    def _message_file(
        self, definition: Definition, relative: Any, scope: dict[str, Any], item_key: str | None
    ) -> str:
        mark = len(SEEN)
        text = self._message_file_text(definition, relative, scope, item_key)
        self._check_written(mark, definition, ("message_file",), item_key)
        return text

    def _message_file_text(
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
        except TemplateTimeout:
            raise
        except Exception as exc:  # any error a user's template raises is the user's to fix
            source = path.read_text("utf-8", errors="replace")
            raise self._template_fail(
                exc, where, "message_file", item_key, name, context=(scope, source)
            ) from None

    # -- errors -----------------------------------------------------------------------------

    def _check_written(
        self, mark: int, definition: Definition, path: PathKey, item_key: str | None
    ) -> None:
        """An error when rendering wrote a value of a var file as text other than its own
        (what was added to SEEN since `mark`)."""
        if len(SEEN) > mark:
            value = SEEN[mark]
            del SEEN[mark:]
            raise self._written_problem(value, definition, path, item_key)

    def _written_problem(
        self,
        value: Written,
        definition: Definition,
        path: PathKey,
        item_key: str | None,
        sent: bool = False,
    ) -> WrittenProblem:
        """At the value's own place in its var file; the message names where it was used."""
        used = f"{format_path(path)} ({definition.where(*path)})"
        message = changed_text(value, used, sent)
        if re.split(r"[.\[]", value.var)[0] in self._secret_vars:
            message = (
                f"this sensitive value is read by YAML as other than its text, so {used} "
                "would not carry it as written; quote it"
            )
        return WrittenProblem(Problem(value.where, message, value.var, item_key))

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
        context: tuple[Mapping[str, Any], str] | None = None,
    ) -> TemplateProblem:
        """`context`: the scope and the template's text, for "did you mean" hints."""
        secret_env = {self.project.api.token_env, *LEDGER_SECRETS}
        scope, source = context or ({}, None)
        message = _describe(exc, self.project.env, scope, source, secret_env)
        line = _template_line(exc, template_file)
        if not lines and not isinstance(exc, jinja2.TemplateSyntaxError):
            line = 0
        if template_file is not None and line:
            where = Location(template_file, line, 1)
        elif line and line > 1:
            message += f" (template line {line})"
        return TemplateProblem(Problem(where, message, path, item_key))


def _withheld(problem: Problem) -> Problem:
    """A problem of the rendering with the real sensitive values, without its wording."""
    return Problem(
        problem.location,
        "the template fails with the real value of a sensitive variable, though not with "
        "(sensitive) in its place (the error is not shown: it could quote the value); check "
        "what the template does with it",
        problem.path,
        problem.item_key,
    )


class _RootLoader(jinja2.FileSystemLoader):
    """Templates from the project root only: `{% include %}` through a symlinked folder that
    leads outside it is refused, as `message_file` and every other path are."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        pieces = split_template_path(template)
        if not Path(self.root, *pieces).resolve().is_relative_to(self.root):
            raise UserError(
                f"template {template!r} resolves outside the project root (a symlink?); "
                "keep templates inside the folder of commbox.yaml"
            )
        return super().get_source(environment, template)


class TemplateTimeout(Exception):
    """Rendering one message ran past its time budget."""


class _TimeBudget:
    """A time limit on rendering, from SIGALRM: a template loop cannot run forever.

    Jinja code is plain Python, so the signal handler's exception stops it between two
    bytecodes. Only the main thread gets signals; elsewhere (and on Windows) there is no limit.
    """

    def __init__(self) -> None:
        self.enabled = hasattr(signal, "setitimer") and (
            threading.current_thread() is threading.main_thread()
        )
        self._previous: Any = None

    def __enter__(self) -> _TimeBudget:
        if self.enabled:
            self._previous = signal.signal(signal.SIGALRM, self._expired)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    @contextmanager
    def running(self, seconds: float) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    @staticmethod
    def _expired(signum: int, frame: Any) -> None:
        raise TemplateTimeout


class _Kind(NamedTuple):
    """What a string value of a definition is: plain text, a template, or one expression."""

    template: bool
    expression: str | None  # a value that is one `{{ expression }}` keeps the result's type


def _classify(raw: str) -> _Kind:
    if not any(marker in raw for marker in _MARKERS):
        return _Kind(False, None)
    single = _SINGLE.match(raw)
    if single and not any(m in single.group(1) for m in ("{{", "}}", "{%", "{#")):
        return _Kind(True, single.group(1))
    return _Kind(True, None)


def _lookup(expression: str) -> Lookup | None:
    """`a.b.c` as ("a", "b", "c") when Jinja would look it up in the scope, then in dicts."""
    found = _LOOKUP.fullmatch(expression)
    if found is None:
        return None
    names = tuple(found.group(1).split("."))
    if any(name in _NOT_VARIABLES for name in names):
        return None
    # `item.items` is the dict's method, not its key: Jinja's getattr prefers attributes.
    if any(hasattr(dict, name) for name in names[1:]):
        return None
    return names


def _text_lookups(source: str) -> tuple[str | Lookup, ...] | None:
    """A template of plain text and `{{ a.b }}` only, as its parts; None for any other."""
    parts: list[str | Lookup] = []
    end = 0
    for match in _TEXT_PART.finditer(source):
        if match.start() != end:
            return None  # a '{', '}' or '\r' that is not part of a simple `{{ a.b }}`
        end = match.end()
        if match.group(1) is None:
            parts.append(match.group(0))
            continue
        lookup = _lookup(match.group(1))
        if lookup is None:
            return None
        parts.append(lookup)
    return tuple(parts) if end == len(source) else None


def _look_up(lookup: Lookup, scope: dict[str, Any]) -> Any:
    """The value Jinja finds for `lookup` in a fresh context of `scope`, or _MISSING when only
    Jinja can tell (a global such as `range`, a missing name or key, an object not a dict)."""
    value = scope.get(lookup[0], _MISSING)
    for name in lookup[1:]:
        if type(value) is not dict:
            return _MISSING
        value = value.get(name, _MISSING)
    return value


def _look_up_text(parts: tuple[str | Lookup, ...], scope: dict[str, Any]) -> str | None:
    """The text Jinja renders from simple template parts, or None when Jinja must do it."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _look_up(part, scope)
        if value is _MISSING:
            return None
        out.append(str(value))  # what `{{ value }}` writes (no autoescape, no finalize)
    return "".join(out)


def _describe(
    exc: BaseException,
    allowed_env: tuple[str, ...] = (),
    scope: Mapping[str, Any] | None = None,
    source: str | None = None,
    secret_env: set[str] | None = None,
) -> str:
    scope = scope or {}
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
            if name in (secret_env or ()):
                return f"env.{name} holds a secret that templates never see; remove it"
            hint = did_you_mean(name, allowed_env, prefix="env.")
            return (
                f"env.{name} is not visible to templates{hint}; add {name} to 'env:' in "
                "commbox.yaml"
            )
        found = _UNDEFINED_NAME.match(text)
        if found:
            name = found.group(1)
            return (
                f"'{name}' is undefined{did_you_mean(name, scope)}; define it in a vars file, "
                f"pass --var {name}=..., or set COMMBOX_VAR_{name}"
            )
        attribute = _NO_ATTRIBUTE.match(text)
        if attribute:
            described = missing_key(attribute.group(2), source, scope)
            if described:
                return described
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
    """A template result as plain JSON-like data; Undefined raises, odd objects are refused.

    Data that is plain already (a variable's list of 100,000 customers, say) is returned as
    it is, not copied; nothing downstream changes a value in place."""
    if value is None or type(value) in _PLAIN_SCALARS:
        return value  # the common case, returned as the checks below would return it
    if _is_plain(value) or isinstance(value, Written):  # a wrapper is checked by its user
        return value
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


def _is_plain(value: Any) -> bool:
    """A dict or list of plain scalars, dicts and lists only: what _plain would copy as is."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if key is not None and type(key) not in _PLAIN_SCALARS:
                return False
            if item is not None and type(item) not in _PLAIN_SCALARS and not _is_plain(item):
                return False
        return True
    if kind is list:
        return all(v is None or type(v) in _PLAIN_SCALARS or _is_plain(v) for v in value)
    return False


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


def _printable(value: Any) -> Any:
    """What `{{ ... }}` may print: a method or a class would print its memory address,
    which is never what was meant and would change the fingerprint on every run."""
    if callable(value) and not isinstance(value, jinja2.Undefined):
        raise UserError(
            f"the expression gives a {type(value).__name__}, which is not text, a number, "
            "true/false, a list or a mapping (a method needs () to be called, or a key that "
            "is also a method name needs ['key'])"
        )
    return value
