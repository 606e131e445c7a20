"""Values of var files that YAML reads as something other than their text.

`version: 1.10` is the number 1.1, `NO` is false, `1_000` is 1000, `010` is 8, `1:20` is 80,
`~` and an empty value are null. Such a value is kept as what YAML read (a condition or a
sum uses it as that), wrapped in a type that remembers its text and where it was written.
When a template writes one as text, the text would not be what the user wrote: rendering
notes it in SEEN, and render/values.py makes that an error at the value's file:line:col, with
the fix ("quote it: '1.10'"). A value whose text reads back as written (`42`, `1.5`, `true`)
is not wrapped.
"""

from __future__ import annotations

import json
from typing import Any

from commbox_yaml.errors import Location

# Every wrapped value a template wrote as text, in order; render/values.py reads what was
# added while one value was rendered, and drops it.
SEEN: list[Written] = []


class Written:
    """Mixed into each wrapper: the text as written, and where."""

    written: str
    where: Location | None
    var: str  # the variable's path, as `customers[3].id`

    def noted(self, text: str) -> str:
        SEEN.append(self)
        return text

    @property
    def read_as(self) -> str:
        """What YAML read, as YAML would write it (`1.1`, `false`, `null`)."""
        value = plain(self)
        if isinstance(value, bool):
            return "true" if value else "false"
        return "null" if value is None else repr(value)


class WrittenInt(Written, int):
    def __str__(self) -> str:
        return self.noted(int.__repr__(self))

    def __format__(self, spec: str) -> str:
        return self.noted(int.__format__(int(self), spec))


class WrittenFloat(Written, float):
    def __str__(self) -> str:
        return self.noted(float.__repr__(self))

    def __format__(self, spec: str) -> str:
        return self.noted(float.__format__(float(self), spec))


class WrittenBool(Written, int):
    """`NO`, `yes`, `on`, ...: true/false (an int, as bool cannot be subclassed)."""

    def __str__(self) -> str:
        return self.noted(str(bool(self)))

    def __format__(self, spec: str) -> str:
        return self.noted(format(bool(self), spec))

    def __repr__(self) -> str:
        return repr(bool(self))


class WrittenNull(Written):
    """`~`, `null` or an empty value: null, which a template would write as 'None'."""

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, WrittenNull)

    def __hash__(self) -> int:
        return hash(None)

    def __str__(self) -> str:
        return self.noted("None")

    def __format__(self, spec: str) -> str:
        return self.noted(format(None, spec))

    def __repr__(self) -> str:
        return "None"


WRITTEN_TYPES = (WrittenInt, WrittenFloat, WrittenBool, WrittenNull)


def wrap(value: Any, text: str, where: Location | None, var: str) -> Any:
    """`value` as YAML read `text`, wrapped when a template would write it otherwise."""
    if isinstance(value, str) or _reads_back(value, text):
        return value
    wrapped: Written
    if isinstance(value, bool):
        wrapped = WrittenBool(int(value))
    elif value is None:
        wrapped = WrittenNull()
    elif isinstance(value, int):
        wrapped = WrittenInt(value)
    elif isinstance(value, float):
        wrapped = WrittenFloat(value)
    else:
        return value
    wrapped.written, wrapped.where, wrapped.var = text, where, var
    return wrapped


def _reads_back(value: Any, text: str) -> bool:
    """Whether a template writes `value` as `text` (case aside: `true` gives 'True')."""
    if value is None:
        return False  # written 'None', whatever the YAML said
    if isinstance(value, float):
        return repr(value) == text
    return str(value).lower() == text.lower()


def plain(value: Any) -> Any:
    """The value YAML read, without the wrapper."""
    if isinstance(value, WrittenBool):
        return bool(value)
    if isinstance(value, WrittenNull):
        return None
    if isinstance(value, WrittenInt):
        return int(value)
    if isinstance(value, WrittenFloat):
        return float(value)
    return value


def sent_otherwise(value: Written) -> bool:
    """Whether a value sent as it is (JSON) would be written other than it was: `1.10` would
    be 1.1, `1_000` 1000, `NO` false. Null is null however written, and a number written with
    an exponent (`1.0e+16`) is a number, whatever its spelling."""
    read = plain(value)
    if read is None:
        return False
    if isinstance(read, float) and "e" in value.written.lower():
        return False
    return json.dumps(read) != value.written.lower()


def first_written(value: Any) -> Written | None:
    """The first wrapped value in `value` (a native template result) that would be sent
    otherwise than written, or None."""
    if isinstance(value, Written):
        return value if sent_otherwise(value) else None
    if type(value) is dict:
        for item in value.values():
            found = first_written(item)
            if found is not None:
                return found
    elif type(value) is list:
        for item in value:
            found = first_written(item)
            if found is not None:
                return found
    return None


def noted_unwrapped(value: Any) -> Any:
    """`value` without wrappers, as a filter writing JSON (tojson) needs it; each value that
    JSON would write otherwise than written is noted in SEEN, as text written is."""
    if isinstance(value, Written):
        if sent_otherwise(value):
            SEEN.append(value)
        return plain(value)
    if type(value) is dict:
        return {k: noted_unwrapped(v) for k, v in value.items()}
    if type(value) is list:
        return [noted_unwrapped(v) for v in value]
    return value


def unwrapped(value: Any) -> Any:
    """`value` with every wrapper replaced by the value YAML read."""
    if isinstance(value, Written):
        return plain(value)
    if type(value) is dict:
        return {k: unwrapped(v) for k, v in value.items()}
    if type(value) is list:
        return [unwrapped(v) for v in value]
    return value


def changed_text(value: Written, used: str, sent: bool = False) -> str:
    """The error for a value a template wrote as text (`sent`: sent as it is) other than
    its own."""
    read = plain(value)
    shown = json.dumps(read) if sent else repr(str(read))
    what = f"would be sent as {shown}" if sent else f"would show {shown}"
    return (
        f"{value.written or 'an empty value'} is read by YAML as {value.read_as}, so {used} "
        f"{what}, not {value.written!r}; quote it: '{value.written}'"
    )
