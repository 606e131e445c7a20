"""Strict YAML loading: positions, duplicate keys, alias bombs, encodings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from commbox_yaml.errors import UserError
from commbox_yaml.source import iter_documents, load_documents

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
scalars = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -", min_size=1, max_size=20)
    .map(str.strip)
    .filter(bool),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4),
        st.dictionaries(keys, children, min_size=1, max_size=4),
    ),
    max_leaves=25,
)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [(path, value)]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, trees, min_size=1, max_size=5))
def test_every_value_is_located_where_it_was_written(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, width=10_000)
    (doc,) = list(iter_documents(text, "f.yaml"))
    assert doc.value == data
    lines = text.splitlines()
    for path, value in _leaves(data):
        loc = doc.positions.values[path]
        assert loc.file == "f.yaml"
        written = lines[loc.line - 1][loc.col - 1 :]
        assert yaml.safe_load(written.split(" #")[0]) == value, (path, written)
        if isinstance(path[-1], str):
            key_loc = doc.positions.keys[path]
            written_key = lines[key_loc.line - 1][key_loc.col - 1 :]
            assert written_key.lstrip("'\"").startswith(path[-1])


def test_nearest_ancestor_is_used_for_values_with_no_position_of_their_own() -> None:
    (doc,) = list(iter_documents("a:\n  b: [1, 2]\n", "f.yaml"))
    assert doc.positions.locate(("a", "b", 5, "x")) == doc.positions.values[("a", "b")]


def test_duplicate_key_is_an_error_at_the_second_naming_the_first() -> None:
    with pytest.raises(UserError) as caught:
        list(iter_documents("name: a\nchannel: sms\nname: b\n", "m.yaml"))
    problem = caught.value.problem
    assert (problem.location.line, problem.location.col) == (3, 1)  # type: ignore[union-attr]
    assert "duplicate key 'name' (first defined at line 1)" in problem.message


def test_duplicate_key_in_a_nested_mapping_is_found_too() -> None:
    with pytest.raises(UserError, match="duplicate key 'x'"):
        list(iter_documents("a:\n  x: 1\n  x: 2\n", "m.yaml"))


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        ref = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{ref}]")
    started = time.perf_counter()
    with pytest.raises(UserError, match="billion laughs"):
        list(iter_documents("\n".join(lines) + "\n", "bomb.yaml"))
    assert time.perf_counter() - started < 1.0


def test_ordinary_aliases_and_merge_keys_work() -> None:
    text = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n"
    (doc,) = list(iter_documents(text, "f.yaml"))
    assert doc.value["other"] == {"x": 1, "y": 3}
    assert doc.value["list"] == [{"x": 1, "y": 2}] * 2


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(UserError, match="recursive"):
        list(iter_documents("a: &a [*a]\n", "f.yaml"))


def test_dates_stay_text_and_custom_tags_are_refused() -> None:
    (doc,) = list(iter_documents("released: 2026-11-20\n", "f.yaml"))
    assert doc.value == {"released": "2026-11-20"}
    with pytest.raises(UserError, match="unsupported YAML tag"):
        list(iter_documents("x: !!python/object:os.system ls\n", "f.yaml"))


def test_non_utf8_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(UserError) as caught:
        load_documents(path, "latin1.yaml")
    assert str(caught.value).startswith("latin1.yaml:1:10: not valid UTF-8 (byte 0xe9)")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: x\n")
    (doc,) = load_documents(path, "bom.yaml")
    assert doc.value == {"name": "x"}


def test_syntax_error_is_located() -> None:
    with pytest.raises(UserError) as caught:
        list(iter_documents("a: [1, 2\nb: 3\n", "f.yaml"))
    assert str(caught.value).startswith("f.yaml:")
    assert "YAML syntax error" in str(caught.value)


def test_several_documents_and_empty_ones() -> None:
    docs = list(iter_documents("---\na: 1\n---\n---\nb: 2\n", "f.yaml"))
    assert [d.value for d in docs] == [{"a": 1}, {"b": 2}]
    assert docs[1].location.line == 5


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, trees, min_size=1, max_size=5), st.integers(0, 3))
def test_a_depth_keeps_the_positions_above_it_and_the_same_data(
    data: dict[str, Any], depth: int
) -> None:
    # Var files keep only their names located (depth=1); the rest must not change.
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, width=10_000)
    (full,) = list(iter_documents(text, "f.yaml"))
    (shallow,) = list(iter_documents(text, "f.yaml", depth))
    assert shallow.value == full.value
    assert shallow.location == full.location
    for table in ("values", "keys", "texts"):
        kept = getattr(shallow.positions, table)
        everything = getattr(full.positions, table)
        assert kept == {p: v for p, v in everything.items() if len(p) <= depth}, table
    for path, _ in _leaves(data):  # anything deeper is located at its nearest kept ancestor
        assert shallow.positions.locate(path) == full.positions.values[path[:depth]]


def test_a_var_file_still_refuses_duplicates_and_bombs_below_its_names() -> None:
    with pytest.raises(UserError, match=r"duplicate key 'x' \(first defined at line 2\)") as info:
        list(iter_documents("a:\n  x: 1\n  x: 2\n", "v.yaml", 1))
    assert str(info.value.problem.location) == "v.yaml:3:3"
    with pytest.raises(UserError, match="recursive"):
        list(iter_documents("a: &a [*a]\n", "v.yaml", 1))
    text = "base: &b {x: 1}\nother:\n  <<: *b\n  y: 3\n"
    (doc,) = list(iter_documents(text, "v.yaml", 1))
    assert doc.value["other"] == {"x": 1, "y": 3}


def test_a_text_without_aliases_skips_the_expansion_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only an alias (`*name`) shares a node, so a text without '*' cannot expand: not counted.
    from commbox_yaml import source

    counted: list[str] = []
    original = source._Builder.expanded_size

    def counting(self: Any, node: Any, active: set[int], distinct: set[int]) -> int:
        counted.append(node.tag)
        return original(self, node, active, distinct)

    monkeypatch.setattr(source._Builder, "expanded_size", counting)
    (doc,) = list(iter_documents("a: [1, {b: '&c'}]\n", "f.yaml"))
    assert doc.value == {"a": [1, {"b": "&c"}]}
    assert counted == []
    (doc,) = list(iter_documents("a: &x [1]\nb: *x\n", "f.yaml"))
    assert doc.value == {"a": [1], "b": [1]}
    assert counted
