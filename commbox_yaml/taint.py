"""Taint: what a template makes of a sensitive variable shows as `(sensitive)`.

Messages are rendered for display (and for fingerprints, plan files, the ledger) with each
sensitive variable bound to TAINT, a text whose value is the placeholder itself and whose
every operation (a slice, a method, a filter, a test, `+`, `%`, a call that takes it) gives
TAINT again. The display rendering never holds a secret, so nothing derived from it can show
one: at worst an operation this module does not intercept mangles the placeholder. Only the
request that is sent is rendered a second time with the real values (render/sensitive.py).

A secret that decides something (`{% if token %}`, `token | length > 8`, a loop over it)
cannot give TAINT back: Python wants a bool, an int or an iterator there. Such a use is
counted in DECIDED, and the value it was part of is shown whole as `(sensitive)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, SupportsIndex

from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from commbox_yaml.redact import REDACTED as REDACTED  # render.py takes it from here
from commbox_yaml.written import noted_unwrapped, plain


class _Decided:
    """How many times a sensitive value decided a condition, a length or a loop."""

    count = 0


DECIDED = _Decided()


def _taint(*_: Any, **__: Any) -> Tainted:
    return TAINT


def _decided_bool(self: Tainted) -> bool:
    DECIDED.count += 1
    return True


class Tainted(str):
    """The text `(sensitive)`, standing for a sensitive value; see the module's doc."""

    __slots__ = ()

    def __str__(self) -> str:
        return REDACTED  # a plain str: rendering writes the placeholder

    def __repr__(self) -> str:
        return repr(REDACTED)

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __getitem__(self, key: SupportsIndex | slice) -> Tainted:
        return TAINT

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__"):  # Python's own protocol: handled by the methods below
            return object.__getattribute__(self, name)
        return _taint  # every str method (upper, replace, split, ...) gives TAINT

    def __len__(self) -> int:
        DECIDED.count += 1
        return len(REDACTED)

    def __iter__(self) -> Iterator[str]:
        DECIDED.count += 1
        return iter((TAINT,))

    def __contains__(self, item: object) -> bool:
        DECIDED.count += 1
        return False

    def __hash__(self) -> int:
        return hash(REDACTED)

    __bool__ = _decided_bool
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = _taint
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _taint  # type: ignore[assignment]
    __sub__ = __rsub__ = __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _taint
    __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = _taint


TAINT = Tainted(REDACTED)


def holds_taint(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return any(type(a) is Tainted for a in args) or any(type(v) is Tainted for v in kwargs.values())


def tainting(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that gives TAINT when any argument is TAINT (Jinja's `pass_*`
    markers are kept: functools.wraps copies the function's attributes)."""

    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if holds_taint(args, kwargs):
            return TAINT
        return function(*args, **kwargs)

    return wrapped


def _json_of_written(function: Callable[..., Any]) -> Callable[..., Any]:
    """tojson, given values of var files as YAML read them (see written.py)."""

    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return function(*(noted_unwrapped(a) for a in args), **kwargs)

    return wrapped


def _unwrapping(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return function(*(plain(a) for a in args), **kwargs)

    return wrapped


class TaintingSandbox(SandboxedEnvironment):
    """Jinja's sandbox, in which an attribute, an item or a call that involves TAINT gives
    TAINT, before any of the sandbox's own checks could word an error with it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: tainting(f) for name, f in self.filters.items()}
        self.filters["tojson"] = tainting(_json_of_written(self.filters["tojson"]))
        # A test (`is none`, `is false`) sees what YAML read, not the wrapper (written.py).
        self.tests = {name: tainting(_unwrapping(t)) for name, t in self.tests.items()}  # type: ignore[arg-type]

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is Tainted:
            return TAINT
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is Tainted or type(argument) is Tainted:
            return TAINT
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(__obj) is Tainted or holds_taint(args, kwargs):
            return TAINT
        return super().call(__context, __obj, *args, **kwargs)


def shown_value(shown: Any, sent: Any) -> Any:
    """The value to display, given the display rendering (`shown`) and the one sent.

    Where both have one shape the display rendering is kept (literal text stays readable);
    where they differ without a placeholder to account for it, a secret decided the value
    (a condition, a length), and the sent value's shape is shown with every leaf masked.
    """
    if shown is sent:
        return shown
    if type(shown) is dict and type(sent) is dict and shown.keys() == sent.keys():
        return {k: shown_value(shown[k], sent[k]) for k in shown}
    if type(shown) is list and type(sent) is list and len(shown) == len(sent):
        return [shown_value(a, b) for a, b in zip(shown, sent, strict=True)]
    if type(shown) is str and type(sent) is str and REDACTED in shown:
        return shown
    if type(shown) is type(sent) and shown == sent:
        return shown
    return masked(sent)


def masked(value: Any) -> Any:
    """`value` with every leaf (text, number, true/false) replaced by the placeholder."""
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return None if value is None else REDACTED
