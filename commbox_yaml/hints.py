"""Hints for typos: the nearest known name to a mistyped one ("did you mean"), a mapping's keys."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

_MAX_KEYS_SHOWN = 12
# Above difflib's default (0.6), which offers 'version' for 'region': a wrong hint misleads.
_CUTOFF = 0.75
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to `word`, if one is near enough to be a typo of it."""
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=_CUTOFF)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str:
    """ " (did you mean 'x'?)", " (did you mean env.X?)" with prefix "env.", or ""."""
    near = closest(word, candidates)
    if near is None:
        return ""
    shown = f"{prefix}{near}" if prefix else f"'{near}'"
    return f" (did you mean {shown}?)"


def did_you_mean_path(root: Path, relative: str) -> str:
    """ " (did you mean 'vars/common.yaml'?)" for a path under `root` that does not exist:
    the nearest file under the deepest folder of it that does, or ""."""
    wanted = Path(os.path.normpath(root / relative))
    folder = wanted.parent
    while folder != root and folder.is_relative_to(root) and not folder.is_dir():
        folder = folder.parent
    if not folder.is_relative_to(root) or not folder.is_dir():
        return ""
    shown = wanted.relative_to(root).as_posix() if wanted.is_relative_to(root) else relative
    return did_you_mean(shown, _files_near(root, folder))


_PATH_DEPTH = 3  # how deep under that folder files are offered
_PATHS_READ = 5000  # a folder of more files is not read whole for a hint


def _files_near(root: Path, folder: Path) -> Iterator[str]:
    """Files under `folder` (a few levels down, hidden ones left out), relative to `root`."""
    count = 0
    for current, folders, files in os.walk(folder):
        depth = len(Path(current).relative_to(folder).parts)
        folders[:] = [] if depth >= _PATH_DEPTH else [f for f in folders if f[0] != "."]
        for name in files:
            count += 1
            if count > _PATHS_READ:
                return
            yield (Path(current) / name).relative_to(root).as_posix()


def missing_key(attribute: str, source: str | None, scope: Mapping[str, Any]) -> str | None:
    """For Jinja's "'dict object' has no attribute 'nme'": which variable of the template
    (`item`, `customer.contact`) lacks the key, and the keys it has; None when the template
    does not say (the lookup is built at run time, or happens in an included file)."""
    if not source:
        return None
    key = re.escape(attribute)
    pattern = re.compile(
        rf"(?<![\w.])({_NAME}(?:\.{_NAME})*)\s*(?:\.\s*{key}(?!\w)|\[\s*['\"]{key}['\"]\s*\])"
    )
    for found in pattern.finditer(source):
        holder = found.group(1)
        value = _look_up(holder.split("."), scope)
        if isinstance(value, Mapping) and attribute not in value:
            return _describe_keys(holder, attribute, [str(k) for k in value])
    return None


def _describe_keys(holder: str, attribute: str, keys: list[str]) -> str:
    if not keys:
        return f"{holder} has no key '{attribute}'; it is an empty mapping"
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    if len(keys) > _MAX_KEYS_SHOWN:
        shown += f", ... ({len(keys)} in all)"
    return f"{holder} has no key '{attribute}'{did_you_mean(attribute, keys)}; its keys: {shown}"


def _look_up(names: list[str], scope: Mapping[str, Any]) -> Any:
    value: Any = scope
    for name in names:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    return value
