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
