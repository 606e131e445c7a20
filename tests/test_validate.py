"""The quick schema check: it must say "valid" exactly when jsonschema finds no error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commbox_yaml.resources import CHANNEL_NAMES
from commbox_yaml.schema_check import compile_quick_check, quick_check
from commbox_yaml.validate import validator
from tests.projects import build_project, project

# One valid instance per schema, as build.py hands them over (after templating, enums named).
VALID: dict[str, dict[str, Any]] = {
    "sms": {
        "name": "note", "channel": "sms", "stream": "sms",
        "user_stream_provider_id": "972544444444", "to": ["+972544444444"], "message": "hello",
        "type": 4, "status_id": "open",
        "manager_id": 36197, "user": {"unique_id": "c1", "phone1": "972544444444"},
    },
    "email": {
        "name": "mail", "channel": "email", "stream": "email", "user_stream_provider_id": "a@b.io",
        "subject": "Hi", "to": ["a@b.io", {"address": "c@d.io", "name": "C"}], "message": "hello",
        "cc": ["e@f.io"], "attachments": ["files/a.pdf", {"url": "https://x.io/a", "name": "a"}],
    },
    "chat": {
        "name": "chat", "channel": "chat", "stream": "abc", "user_stream_provider_id": "u1",
        "message_file": "templates/x.txt", "create_child_object": True, "send": "always",
    },
    "whatsapp": {
        "name": "wa", "channel": "whatsapp", "stream": "wa",
        "user_stream_provider_id": "972544444444", "to": ["972544444444"], "message": "hi",
        "id": "release-1",
        "template": {"name": "release_note", "language": "en", "params": ["a", "b"]},
        "raw": {"Extra": [1, {"k": None}]}, "content": {"Foo": 1.5},
    },
    "commbox": {
        "version": 1, "streams": {"sms": "5fd0c1"}, "vars": ["vars/common.yaml"],
        "messages": ["messages/**/*.yaml"], "env": ["GITHUB_REF_NAME"], "sensitive": ["pin"],
        "api": {"base_url": "https://api.commbox.io", "timeout_s": 30, "concurrency": 4},
        "limits": {"max_sends": 500}, "defaults": {"manager_id": 1},
    },
}  # fmt: skip

SCHEMAS = (*CHANNEL_NAMES, "commbox")

# Values that sit on the edges jsonschema draws: bools are not numbers, 2.0 is an integer,
# 1 == 1.0 in an enum, empty text and lists, text that nearly matches a format or pattern.
EDGES = st.sampled_from(
    [
        None, True, False, 0, 1, 4, 1.0, 2.0, 2.5, -1, 0.0, 64, 65, 10**20, float("inf"),
        "", "x", "open", "Open", "text", "1", "972544444444", "+972544444444", "12", "+12",
        "a@b.io", "a@b", "not an email", "release_note", "Release", "https://api.commbox.io",
        "ftp://x", "sms", "whatsapp", "email", "chat", "once", "always", "a b", "A_1", [], {},
        ["972544444444"], ["a@b.io"], [{"address": "a@b.io"}], [{"address": "a@b.io", "x": 1}],
        {"name": "release_note"}, {"unique_id": ""}, {"unique_id": "u"}, [1], [None], {"k": 1},
    ]
)  # fmt: skip
json_values = st.recursive(
    EDGES | st.text(max_size=5) | st.integers() | st.floats(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "address", "url", "k", "x"]), children, max_size=3
        )
    ),
    max_leaves=6,
)


@st.composite
def instances(draw: st.DrawFn, name: str) -> Any:
    """A valid instance with a few changes: keys set, removed, or set deeper down."""
    instance = copy.deepcopy(VALID[name])
    keys = [*sorted(validator(name).schema["properties"]), "bogus"]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "delete", "nested"]))
        key = draw(st.sampled_from(keys))
        if action == "set":
            instance[key] = draw(json_values)
        elif action == "delete":
            instance.pop(key, None)
        elif isinstance(instance.get(key), dict) and instance[key]:
            inner = draw(st.sampled_from([*sorted(instance[key]), "bogus"]))
            instance[key][inner] = draw(json_values)
        elif isinstance(instance.get(key), list) and instance[key]:
            index = draw(st.integers(0, len(instance[key]) - 1))
            instance[key][index] = draw(json_values)
    return instance


def _agrees(name: str, instance: Any) -> None:
    quick = quick_check(name)
    assert quick is not None
    errors = list(validator(name).iter_errors(instance))
    assert quick(instance) is (not errors), (instance, [e.message for e in errors])


def test_every_shipped_schema_has_a_quick_check() -> None:
    for name in SCHEMAS:
        assert quick_check(name) is not None, name
        _agrees(name, VALID[name])


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_quick_check_agrees_with_jsonschema(name: str, data: st.DataObject) -> None:
    _agrees(name, data.draw(instances(name)))


@given(value=json_values)
@settings(max_examples=100, deadline=None)
def test_quick_check_agrees_on_any_value(value: Any) -> None:
    for name in SCHEMAS:
        _agrees(name, value)


def test_quick_check_edges() -> None:
    sms = VALID["sms"]
    _agrees("sms", {**sms, "manager_id": 2.0})  # an integer, for draft 2020-12
    _agrees("sms", {**sms, "manager_id": True})  # not a number
    _agrees("sms", {**sms, "type": 4.0})  # 4.0 == 4 in an enum
    _agrees("sms", {**sms, "type": True})  # True is not 1
    _agrees("sms", {**sms, "message_file": "x.txt"})  # both message and message_file
    _agrees("commbox", {**VALID["commbox"], "version": 1.0})
    _agrees("commbox", {**VALID["commbox"], "version": True})
    _agrees("commbox", {**VALID["commbox"], "streams": {"-bad": "1"}})
    # if/then/else: a reply needs manager_id and no stream, recipients or template
    reply = {"name": "r", "channel": "whatsapp", "reply_to": "wa", "message": "x"}
    _agrees("whatsapp", reply)
    _agrees("whatsapp", {**reply, "manager_id": 5})
    _agrees("whatsapp", {**reply, "manager_id": 5, "message_file": "x.txt"})
    wa = VALID["whatsapp"]
    _agrees("whatsapp", {**wa, "api": "v2", "schedule": "2027-01-14T09:00:00+00:00"})
    _agrees("whatsapp", {**wa, "api": "v3"})
    _agrees("whatsapp", {k: v for k, v in wa.items() if k != "template"})
    _agrees("sms", {**sms, "to": ["972544444444", 5]})  # items: one item fails


def test_a_schema_with_a_keyword_it_does_not_know_has_no_quick_check() -> None:
    spec = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    assert compile_quick_check(spec) is not None
    assert compile_quick_check({**spec, "patternProperties": {"^x": {"type": "string"}}}) is None
    assert compile_quick_check({**spec, "properties": {"a": {"uniqueItems": True}}}) is None
    assert compile_quick_check({**spec, "enum": [[1]]}) is None
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    assert compile_quick_check(draft7) is None


def test_a_value_it_cannot_judge_goes_to_jsonschema() -> None:
    quick = compile_quick_check({"enum": ["a", 1]})
    assert quick is not None
    assert quick("a") is True
    assert quick(1.0) is True
    assert quick(("a",)) is False  # not a JSON type: unsure, so "not known to be valid"


def test_each_item_is_checked_after_a_valid_one(tmp_path: Path) -> None:
    # The quick check passes the valid items; every invalid one still gets its own errors.
    messages = """\
        name: note
        channel: sms
        stream: sms
        user_stream_provider_id: "{{ item.phone }}"
        to: ["{{ item.phone }}"]
        manager_id: "{{ item.manager }}"
        message: hello
        for_each: people
        key: "{{ item.id }}"
        """
    people = (
        "people:\n"
        "  - {id: a, phone: '972544444444', manager: 1}\n"
        "  - {id: b, phone: 'nope', manager: 1}\n"
        "  - {id: c, phone: '972544444444', manager: 1}\n"
        "  - {id: d, phone: '972544444444', manager: 'x'}\n"
        "  - {id: e, phone: '972544444444', manager: 2.0}\n"
    )
    project(tmp_path, messages, people)
    result = build_project(tmp_path)
    assert [r.address for r in result.requests] == ["note[a]", "note[c]", "note[e]"]
    got = sorted((p.item_key, p.path, p.message) for p in result.problems)
    nope = "(from vars/common.yaml:3:20)"
    assert got == [
        ("b", "to[0]", f"'nope' is not a phone number: it has letters {nope}"),
        ("b", "user_stream_provider_id", f"'nope' is not a phone number: it has letters {nope}"),
        ("d", "manager_id", "'x' is a string, expected an integer (from vars/common.yaml:5:45)"),
    ]
