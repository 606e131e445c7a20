"""The secret-leak check every test runs under (the autouse fixture in conftest.py).

A secret must never show in what commbox-yaml prints, in a ledger or in a plan file. After
each test, its captured output (read or not), the output of child processes it read, and the
ledgers and plan files under its tmp_path are searched for every secret the test knows of:
- the well-known secrets of this suite (the tokens and sensitive values tests pass);
- a `TOKEN` or `SECRETS` constant of the test module;
- the API token and the `COMMBOX_VAR_` values in the environment when the test ended;
- the sensitive values of every project under tmp_path (its `sensitive:` names, looked up in
  its vars files and the environment);
- whatever the test registers with `leak_guard.register(value)`.
A secret of 8 characters or more leaks when any 8 of its characters in a row show, also of the
forms a template easily makes of it (reversed, upper or lower case, URL- or HTML-encoded; a
slice, a wordwrap or a replacement shows 8 characters in a row); a shorter one when it shows
as a whole word. The sandbox's record of the requests it received is not
output: a test may check there that a request carried a secret.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import yaml

WELL_KNOWN = frozenset(
    {
        "tok-3f9a1c77e2b04d5e",  # test_apply.TOKEN
        "tok-9d2e61b0c4a84f17",  # test_apply_faults.TOKEN
        "tok-secret-123",  # test_plan
        "s3cret-token-value",  # test_sandbox.TOKEN
        "80417",  # the sensitive pin of test_apply and test_cli
        "739155",  # the example's bridge PIN as CI sets it (test_example)
    }
)
PIECE = 8
# Shorter values found in projects are not checked: "1" or "42" show everywhere.
MIN_DISCOVERED = 4
MANY_PIECES = 5000
PLAN_MARK = '"kind": "commbox-yaml plan"'
MAX_FILE_BYTES = 50 * 1024 * 1024


class LeakGuard:
    """The secrets one test knows of, and the output it read."""

    def __init__(self, module: ModuleType | None = None) -> None:
        self.registered: set[str] = set(WELL_KNOWN)
        for name in ("TOKEN", "SECRETS"):
            value = getattr(module, name, None)
            if isinstance(value, str):
                self.registered.add(value)
            elif isinstance(value, (list, tuple, set, frozenset)):
                self.registered.update(str(v) for v in value)
        self.outputs: list[tuple[str, str]] = []
        self.environment: dict[str, str] = {}
        self.allowed: set[Path] = set()

    def register(self, *values: object) -> None:
        """Secrets this test uses beyond the ones found on their own."""
        self.registered.update(str(v) for v in values if str(v))

    def allow(self, path: Path) -> None:
        """A file this test writes a secret into on purpose (an input, not an output)."""
        self.allowed.add(path.resolve())

    def seen(self, where: str, *texts: Any) -> None:
        for text in texts:
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            if isinstance(text, str) and text:
                self.outputs.append((where, text))

    def snapshot_environment(self) -> None:
        self.environment = dict(os.environ)

    def secrets(self, tmp_path: Path | None) -> set[str]:
        env = self.environment or dict(os.environ)
        found = set(self.registered)
        found.add(env.get("COMMBOX_API_TOKEN", ""))
        found.update(v for k, v in env.items() if k.startswith("COMMBOX_VAR_") and len(v) >= 4)
        if tmp_path is not None:
            for commbox in _project_files(tmp_path):
                found.update(_project_secrets(commbox, env))
        return {s for s in found if s.strip()}


def leak_report(
    guard: LeakGuard, sections: list[tuple[str, str]], tmp_path: Path | None
) -> str | None:
    """A description of every leak found, or None."""
    finder = _Finder(guard.secrets(tmp_path))
    places = [*guard.outputs, *((title.lower(), text) for title, text in sections)]
    if tmp_path is not None:
        places += [(f"file {p}", text) for p, text in _output_files(tmp_path, guard.allowed)]
    leaks = []
    for where, text in places:
        found = finder.find(text)
        if found is not None:
            start = max(found - 60, 0)
            leaks.append(f"a secret shows in {where}: ...{text[start : found + 68]!r}...")
    if not leaks:
        return None
    return "secret leak check (tests/leaks.py) failed:\n" + "\n".join(leaks)


class _Finder:
    """Finds any 8 characters in a row of a long secret, and a short secret as a whole word.

    A few thousand pieces go into one regex; more (a project with thousands of sensitive
    values) are looked up in a set at each place, which does not slow down with their number.
    """

    def __init__(self, secrets: set[str]) -> None:
        forms = {form for s in secrets if len(s) >= PIECE for form in transformed(s)}
        self.pieces = {
            s[i : i + PIECE] for s in forms if len(s) >= PIECE for i in range(len(s) - PIECE + 1)
        }
        short = sorted((s for s in secrets if len(s) < PIECE), key=lambda s: (-len(s), s))
        words = "|".join(map(re.escape, short))
        parts = [rf"(?<![0-9A-Za-z])(?:{words})(?![0-9A-Za-z])"] if short else []
        if len(self.pieces) <= MANY_PIECES:
            parts += map(re.escape, sorted(self.pieces))
            self.pieces = set()
        self.pattern = re.compile("|".join(parts)) if parts else None

    def find(self, text: str) -> int | None:
        """Where the first leak starts, or None."""
        found = self.pattern.search(text) if self.pattern is not None else None
        if found is not None:
            return found.start()
        for start in range(len(text) - PIECE + 1) if self.pieces else ():
            if text[start : start + PIECE] in self.pieces:
                return start
        return None


def transformed(secret: str) -> set[str]:
    """A secret, and what a template easily makes of it (filters, methods, slices of these)."""
    forms = {secret, secret[::-1], quote(secret, safe=""), html.escape(secret)}
    forms |= {form.upper() for form in forms} | {form.lower() for form in forms}
    return forms


def _project_files(tmp_path: Path) -> list[Path]:
    if not tmp_path.is_dir():
        return []
    return [p for p in tmp_path.rglob("commbox.yaml") if p.is_file()]


def _project_secrets(commbox: Path, env: dict[str, str]) -> set[str]:
    """The sensitive values a project holds in its vars files and the environment."""
    config = _yaml(commbox)
    if not isinstance(config, dict):
        return set()
    names = [str(n) for n in config.get("sensitive") or [] if isinstance(n, (str, int))]
    api = config.get("api") if isinstance(config.get("api"), dict) else {}
    found = {env.get(str(api.get("token_env") or "COMMBOX_API_TOKEN"), "")}
    values: dict[str, Any] = {}
    for relative in config.get("vars") or []:
        data = _yaml(commbox.parent / str(relative))
        if isinstance(data, dict):
            values.update(data)
    for name in names:
        _leaves(values.get(name), found)
        found.add(env.get(f"COMMBOX_VAR_{name}", ""))
        found.add(env.get(name, "") if name in (config.get("env") or []) else "")
    return {s for s in found if len(s) >= MIN_DISCOVERED}


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):  # tests feed odd files
        return None


def _leaves(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _leaves(v, out)
    elif isinstance(value, list):
        for v in value:
            _leaves(v, out)
    elif value is not None and not isinstance(value, bool):
        out.add(str(value))


def _output_files(tmp_path: Path, allowed: set[Path]) -> list[tuple[Path, str]]:
    """Ledgers (*.jsonl, and their temporary files) and plan files under tmp_path."""
    if not tmp_path.is_dir():
        return []
    out = []
    for path in tmp_path.rglob("*"):
        try:
            if not path.is_file() or path.resolve() in allowed:
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            name = path.name
            ledger = ".jsonl" in name or name.endswith(".plan") or ".plan." in name
            if not ledger and path.suffix in (".yaml", ".yml", ".j2", ".txt", ".pdf", ".pem"):
                continue  # project inputs hold secrets by design
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if ledger or PLAN_MARK in text[:4096]:
            out.append((path, text))
    return out
