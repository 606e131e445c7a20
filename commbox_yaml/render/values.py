"""One value of a definition rendered: plain text as it is, one `{{ expression }}` as the
expression's native value, any other template as text; and the file message_file names.

Undefined variables are errors (StrictUndefined), and a value that is exactly one
`{{ expression }}` keeps the expression's type.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Any

import jinja2

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Location, UserError
from commbox_yaml.project import LEDGER_SECRETS, Project
from commbox_yaml.render import lookup as fast
from commbox_yaml.render.budget import TemplateTimeout
from commbox_yaml.render.lookup import MISSING, look_up, look_up_text
from commbox_yaml.render.wording import (
    TemplateProblem,
    WrittenProblem,
    failure,
    template_problem,
)
from commbox_yaml.source import PathKey
from commbox_yaml.taint import TaintingSandbox
from commbox_yaml.validate import format_path
from commbox_yaml.written import SEEN, Written, changed_text, first_written, unwrapped

_PLAIN_SCALARS = frozenset({str, bool, int, float})


class Templates:
    """Renders the values of definitions in one environment; each distinct template text is
    parsed and compiled once, not once per item."""

    def __init__(self, project: Project, env: TaintingSandbox, secret_vars: frozenset[str]) -> None:
        self.project = project
        self.env = env
        self._secret_vars = secret_vars
        self._names = (project.env, {project.api.token_env, *LEDGER_SECRETS})
        self._templates: dict[str, jinja2.Template] = {}
        self._expressions: dict[str, Any] = {}
        # What kind of value each text is, the expression Jinja compiles, and the lookups of
        # simple templates (None: Jinja's job).
        self._kinds: dict[str, fast.Kind] = {}
        self._parsed_expressions: dict[str, tuple[str, fast.Lookup | None]] = {}
        self._text_lookups: dict[str, tuple[str | fast.Lookup, ...] | None] = {}

    def value(
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
                kind = self._kinds[raw] = fast.classify(raw)
            if not kind.template:
                return raw
            if kind.expression is not None:
                value = self.evaluate(kind.expression, scope, definition, path, item_key)
                if value is not None and type(value) not in _PLAIN_SCALARS:
                    written = first_written(value)  # a value YAML changed, sent as it is
                    if written is not None:
                        raise self.written_problem(written, definition, path, item_key, True)
                    value = unwrapped(value)
                return value
            return self.text(raw, scope, definition, path, item_key)
        if isinstance(raw, dict):
            return {
                k: self.value(v, scope, definition, (*path, k), item_key) for k, v in raw.items()
            }
        if isinstance(raw, list):
            return [
                self.value(v, scope, definition, (*path, i), item_key) for i, v in enumerate(raw)
            ]
        return raw

    def text(
        self,
        source: str,
        scope: dict[str, Any],
        definition: Definition,
        path: PathKey,
        item_key: str | None = None,
    ) -> str:
        """A template's text; `definition` and `path` locate it, should it fail."""
        mark = len(SEEN)
        text = self._text_of(source, scope, definition, path, item_key)
        self.check_written(mark, definition, path, item_key)
        return text

    def _text_of(
        self,
        source: str,
        scope: dict[str, Any],
        definition: Definition,
        path: PathKey,
        item_key: str | None = None,
    ) -> str:
        try:
            if source in self._text_lookups:
                parts = self._text_lookups[source]
            else:
                parts = self._text_lookups[source] = fast.parse_text(source)
            if parts is not None:
                text = look_up_text(parts, scope)
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
            raise self.failed(
                exc, where, format_path(path), item_key, context=(scope, source)
            ) from None

    def evaluate(
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
        self.check_written(mark, definition, path, item_key)
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
            inner = fast.inner_expression(expression)
            parsed = (inner, fast.parse_lookup(inner.strip()))
            self._parsed_expressions[expression] = parsed
        expression, lookup = parsed
        try:
            # compiled(**scope) fails when a variable is named `self` (the parameter of Jinja's
            # TemplateExpression.__call__): such a scope goes to Jinja, to fail as it always has.
            if lookup is not None and "self" not in scope:
                value = look_up(lookup, scope)
                if value is not MISSING:
                    return plain(value)
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self._expressions[expression] = self.env.compile_expression(
                    expression.strip(), undefined_to_none=False
                )
            return plain(compiled(**scope))
        except TemplateTimeout:
            raise
        except Exception as exc:  # any error a user's expression raises is the user's to fix
            # An expression is not a template: its traceback lines are Jinja's, not the user's.
            where, dotted = definition.where(*path), format_path(path)
            raise self.failed(
                exc, where, dotted, item_key, lines=False, context=(scope, expression)
            ) from None

    def check_written(
        self, mark: int, definition: Definition, path: PathKey, item_key: str | None
    ) -> None:
        """An error when rendering wrote a value of a var file as text other than its own
        (what was added to SEEN since `mark`)."""
        if len(SEEN) > mark:
            value = SEEN[mark]
            del SEEN[mark:]
            raise self.written_problem(value, definition, path, item_key)

    def written_problem(
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
        return WrittenProblem(failure(value.where, value.var, message, item_key).problems[0])

    def failed(
        self,
        exc: BaseException,
        where: Location | None,
        path: str,
        item_key: str | None,
        template_file: str | None = None,
        lines: bool = True,
        context: tuple[Mapping[str, Any], str] | None = None,
    ) -> TemplateProblem:
        return template_problem(
            exc, where, path, item_key, self._names, template_file, lines, context
        )


def plain(value: Any) -> Any:
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
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, types.GeneratorType, map, filter, set, frozenset)):
        return [plain(v) for v in value]
    raise UserError(
        f"the expression gives a {type(value).__name__}, which is not text, a number, "
        "true/false, a list or a mapping"
    )


def _is_plain(value: Any) -> bool:
    """A dict or list of plain scalars, dicts and lists only: what plain() would copy as is."""
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
