"""Addresses and keys sort as a person reads them: c2 before c10."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.keys import natural_key
from tests.projects import build_project, project

FAN = """\
name: fan
channel: sms
stream: sms
for_each: items
key: "{{ item }}"
user_stream_provider_id: "972544444444"
message: "hello {{ item }}"
"""
SHUFFLED = ["c10", "c2", "c10000", "c1", "c0", "c9", "c100", "c11", "c01"]
NATURAL = ["c0", "c01", "c1", "c2", "c9", "c10", "c11", "c100", "c10000"]


def _project(root: Path, items: list[str]) -> Path:
    return project(root, FAN, f"items: {json.dumps(items)}\n")


def test_natural_key_orders_numbers_by_value() -> None:
    assert sorted(SHUFFLED, key=natural_key) == NATURAL
    names = ["b2[x10]", "a10", "b2[x9]", "a9", "10", "9", "b"]
    assert sorted(names, key=natural_key) == ["9", "10", "a9", "a10", "b", "b2[x9]", "b2[x10]"]


def test_the_plan_lists_addresses_in_natural_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, SHUFFLED)
    assert main(["-C", str(tmp_path), "plan", "--json"]) == 0
    addresses = [m["address"] for m in json.loads(capsys.readouterr().out)["messages"]]
    assert addresses == [f"fan[{item}]" for item in NATURAL]
    assert main(["-C", str(tmp_path), "--no-color", "plan"]) == 0
    shown = re.findall(r"^  \+ (fan\[\w+\])", capsys.readouterr().out, re.MULTILINE)
    assert shown == [f"fan[{item}]" for item in NATURAL]
    assert main(["-C", str(tmp_path), "plan", "--format", "markdown"]) == 0
    shown = re.findall(r"^#### `\+` (fan\[\w+\])", capsys.readouterr().out, re.MULTILINE)
    assert shown == [f"fan[{item}]" for item in NATURAL]


def test_a_fan_out_in_natural_order_is_not_sorted_again(tmp_path: Path) -> None:
    """Items c0, c1, ..., c12 come in plan order already: the plan need not read them back."""
    _project(tmp_path, [f"c{n}" for n in range(13)])
    assert build_project(tmp_path).messages.in_order
    _project(tmp_path, ["c1", "c0"])
    assert not build_project(tmp_path).messages.in_order


def test_ledger_list_sorts_keys_naturally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMMBOX_API_TOKEN", raising=False)
    _project(tmp_path, SHUFFLED)
    assert main(["-C", str(tmp_path), "apply", "--sandbox", "--auto-approve"]) == 0
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "ledger", "list", "--sandbox", "--json"]) == 0
    keys = [row["key"] for row in json.loads(capsys.readouterr().out)]
    assert keys == [f"fan[{item}]" for item in NATURAL]
