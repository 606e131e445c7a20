"""Jinja's errors in our words: what went wrong in a template, where, and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from commbox_yaml.errors import Location, Problem, UserError
from commbox_yaml.hints import did_you_mean, missing_key

_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"^'(\w+) object' has no attribute '([^']+)'$")
_NULL_ATTRIBUTE = re.compile(r"^'(?:None|[\w.]*\.WrittenNull object)' has no attribute '([^']+)'$")
_MISSING_ENV = re.compile(r"^'[\w.]*\.EnvVars object' has no attribute '([^']+)'$")


class TemplateProblem(Exception):
    """Templates failed; carries the located problem(s)."""

    def __init__(self, problem: Problem, *more: Problem) -> None:
        super().__init__(problem.message)
        self.problems = [problem, *more]


class WrittenProblem(TemplateProblem):
    """A var file value written as other text than its own (written.py): worded without the
    value when it is sensitive, so it is shown even from the rendering with real values."""


def failure(
    where: Location | None, path: str, message: str, item_key: str | None = None
) -> TemplateProblem:
    return TemplateProblem(Problem(where, message, path, item_key))


def template_problem(
    exc: BaseException,
    where: Location | None,
    path: str,
    item_key: str | None,
    names: tuple[tuple[str, ...], set[str]],
    template_file: str | None = None,
    lines: bool = True,
    context: tuple[Mapping[str, Any], str] | None = None,
) -> TemplateProblem:
    """The problem for an error a template raised. `names`: the environment variables
    templates may read, and those that hold secrets; `context`: the scope and the template's
    text, for "did you mean" hints; `lines`: whether the traceback's lines are the user's."""
    scope, source = context or ({}, None)
    message = describe(exc, names[0], scope, source, names[1])
    if isinstance(exc, UserError) and exc.problem.location is not None:
        return TemplateProblem(Problem(exc.problem.location, message, path, item_key))
    line = template_line(exc, template_file)
    if not lines and not isinstance(exc, jinja2.TemplateSyntaxError):
        line = 0
    if template_file is not None and line:
        where = Location(template_file, line, 1)
    elif line and line > 1:
        message += f" (template line {line})"
    return TemplateProblem(Problem(where, message, path, item_key))


def withheld(problem: Problem) -> Problem:
    """A problem of the rendering with the real sensitive values, without its wording."""
    return Problem(
        problem.location,
        "the template fails with the real value of a sensitive variable, though not with "
        "(sensitive) in its place (the error is not shown: it could quote the value); check "
        "what the template does with it",
        problem.path,
        problem.item_key,
    )


def describe(
    exc: BaseException,
    allowed_env: tuple[str, ...] = (),
    scope: Mapping[str, Any] | None = None,
    source: str | None = None,
    secret_env: set[str] | None = None,
) -> str:
    if isinstance(exc, UserError):
        return exc.problem.message
    if isinstance(exc, jinja2.UndefinedError):
        text = str(exc.message or exc)
        missing = _MISSING_ENV.match(text)
        if missing:
            return _missing_env(missing.group(1), allowed_env, secret_env or set())
        return _undefined(text, scope or {}, source)
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the template sandbox: {exc}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"template syntax error: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name!r} not found under the project root"
    return f"template error: {type(exc).__name__}: {exc}"


def _missing_env(name: str, allowed_env: tuple[str, ...], secret_env: set[str]) -> str:
    if name in allowed_env:
        return (
            f"env.{name} is not set in the environment; set it, or write "
            f"{{{{ env.{name} | default('...') }}}}"
        )
    if name in secret_env:
        return f"env.{name} holds a secret that templates never see; remove it"
    hint = did_you_mean(name, allowed_env, prefix="env.")
    return f"env.{name} is not visible to templates{hint}; add {name} to 'env:' in commbox.yaml"


def _undefined(text: str, scope: Mapping[str, Any], source: str | None) -> str:
    found = _UNDEFINED_NAME.match(text)
    if found:
        name = found.group(1)
        return (
            f"'{name}' is undefined{did_you_mean(name, scope)}; define it in a vars file, "
            f"pass --var {name}=..., or set COMMBOX_VAR_{name}"
        )
    null = _NULL_ATTRIBUTE.match(text)
    if null:
        return (
            f"an empty value (null) has no key '{null.group(1)}'; give it a value, or use "
            "| default(...) where it may be empty"
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


def template_line(exc: BaseException, template_file: str | None) -> int:
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


def kind_of(value: Any) -> str:
    """A value as an error may name it: its kind, and a short text or number as it is."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if value is None:
        return "an empty value"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a mapping"
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"
