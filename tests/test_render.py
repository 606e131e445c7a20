"""Templating: native single-expression values, strictness, sandbox, for_each/key/when."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.projects import COMMBOX_YAML, SMS, build_project, project

_counter = itertools.count()

# PyYAML's emitter does not round-trip control characters and Unicode line breaks in keys.
text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=15,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values)
def test_a_single_expression_keeps_its_native_type(tmp_path: Path, value: Any) -> None:
    root = tmp_path / str(next(_counter))
    project(
        root,
        SMS + "raw:\n  Extra: '{{ value }}'\n  Text: 'v={{ value | tojson }}'\n",
        yaml.safe_dump({"value": value}, allow_unicode=True),
    )
    result = build_project(root)
    assert result.problems == []
    data = result.requests[0].data
    assert data["Extra"] == value
    assert type(data["Extra"]) is type(value)
    assert data["Text"].startswith("v=")
    assert json.loads(data["Text"][2:]) == value


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ n }}", 7),
        ("{{ n + 1 }}", 8),
        (" {{ n }}", " 7"),
        ("{{ n }}{{ n }}", "77"),
        ("{{ n }} and {{ n }}", "7 and 7"),
        ("{{- n -}}", 7),
        ("{{ '7' }}", "7"),
        ("{{ [n, 'a'] }}", [7, "a"]),
        ("{{ {'k': n} }}", {"k": 7}),
        ("{% if n %}yes{% endif %}", "yes"),
        ("{{ names | map('upper') | list }}", ["A", "B"]),
        ("{{ names | map('upper') }}", ["A", "B"]),
    ],
)
def test_native_or_text(tmp_path: Path, template: str, expected: Any) -> None:
    project(tmp_path, SMS + f"raw:\n  X: {json.dumps(template)}\n", "n: 7\nnames: [a, b]\n")
    result = build_project(tmp_path)
    assert result.problems == []
    assert result.requests[0].data["X"] == expected


def test_undefined_is_an_error_never_empty(tmp_path: Path) -> None:
    project(tmp_path, SMS.replace("message: hello", "message: 'hi {{ nobody }}'"))
    result = build_project(tmp_path)
    assert list(result.requests) == []
    (problem,) = result.problems
    assert str(problem).startswith("messages/main.yaml:5:10: message: 'nobody' is undefined")
    assert "--var nobody=" in problem.message


def test_undefined_attribute_is_an_error(tmp_path: Path) -> None:
    project(tmp_path, SMS.replace("message: hello", "message: '{{ c.missing }}'"), "c: {a: 1}\n")
    (problem,) = build_project(tmp_path).problems
    assert problem.message == "c has no key 'missing'; its keys: a"


def test_sandbox_refuses_unsafe_attribute_access(tmp_path: Path) -> None:
    body = SMS.replace("message: hello", "message: \"{{ ''.__class__.__mro__ }}\"")
    project(tmp_path, body)
    (problem,) = build_project(tmp_path).problems
    assert "sandbox" in problem.message


def test_variable_precedence(tmp_path: Path) -> None:
    project(
        tmp_path,
        SMS.replace("message: hello", "message: '{{ a }} {{ b }} {{ c }} {{ d }}'"),
        "a: file\nb: file\nc: file\nd: file\n",
        {"vars/extra.yaml": "b: extra\nc: extra\nd: extra\n"},
    )
    result = build_project(
        tmp_path,
        var_files=("vars/extra.yaml",),
        environ={"COMMBOX_VAR_c": "env", "COMMBOX_VAR_d": "env"},
        cli_vars=("d=cli",),
    )
    assert result.requests[0].data["Message"] == "file extra env cli"


def test_cli_var_is_a_yaml_scalar(tmp_path: Path) -> None:
    project(tmp_path, SMS + "manager_id: '{{ mid }}'\n")
    result = build_project(tmp_path, cli_vars=("mid=36197",))
    assert result.requests[0].data["ManagerId"] == 36197


def test_env_is_visible_only_when_allowed(tmp_path: Path) -> None:
    project(tmp_path, SMS.replace("message: hello", "message: '{{ env.GITHUB_REF_NAME }}'"))
    environ = {"GITHUB_REF_NAME": "v1.4.0"}
    (problem,) = build_project(tmp_path, environ=environ).problems
    assert "GITHUB_REF_NAME" in problem.message
    commbox = (tmp_path / "commbox.yaml").read_text() + "env: [GITHUB_REF_NAME]\n"
    (tmp_path / "commbox.yaml").write_text(commbox)
    assert build_project(tmp_path, environ=environ).requests[0].data["Message"] == "v1.4.0"


def test_for_each_mapping_list_and_scalars(tmp_path: Path) -> None:
    messages = (
        SMS.replace("name: note", "name: a").replace("message: hello", "message: '{{ item }}'")
        + "for_each: phones\n---\n"
        + SMS.replace("name: note", "name: b").replace("message: hello", "message: '{{ item.n }}'")
        + "for_each: people\nkey: '{{ item.id }}'\nid: 'b-{{ v }}'\n---\n"
        + SMS.replace("name: note", "name: c").replace("message: hello", "message: '{{ key }}'")
        + "for_each: '{{ byname }}'\n"
    )
    variables = (
        "v: 2\nphones: ['1', '2']\npeople: [{id: x, n: X}, {id: y, n: Y}]\nbyname: {p: 1, q: 2}\n"
    )
    project(tmp_path, messages, variables)
    result = build_project(tmp_path)
    assert result.problems == []
    got = [(r.address, r.key, r.data["Message"]) for r in result.requests]
    assert got == [
        ("a[1]", "a[1]", "1"),
        ("a[2]", "a[2]", "2"),
        ("b[x]", "b-2[x]", "X"),
        ("b[y]", "b-2[y]", "Y"),
        ("c[p]", "c[p]", "p"),
        ("c[q]", "c[q]", "q"),
    ]


def test_when_skips_and_strings_like_false_are_false(tmp_path: Path) -> None:
    messages = (
        SMS
        + "when: flag\n---\n"
        + SMS.replace("name: note", "name: other")
        + "when: false\n---\n"
        + SMS.replace("name: note", "name: third")
        + "when: \"{{ 'yes' }}\"\n"
    )
    project(tmp_path, messages, "flag: 'false'\n")
    result = build_project(tmp_path)
    assert [m.address for m in result.skipped] == ["note", "other"]
    assert [r.address for r in result.requests] == ["third"]


def test_item_key_is_named_in_errors(tmp_path: Path) -> None:
    messages = SMS.replace("message: hello", "message: '{{ item.missing }}'")
    project(
        tmp_path,
        messages + "for_each: people\nkey: '{{ item.id }}'\n",
        "people: [{id: x}, {id: y}]\n",
    )
    problems = build_project(tmp_path).problems
    assert [p.item_key for p in problems] == ["x", "y"]
    assert str(problems[0]).startswith("messages/main.yaml:5:10: [x]: message: ")


def test_message_file_renders_with_includes(tmp_path: Path) -> None:
    project(
        tmp_path,
        SMS.replace("message: hello", "message_file: templates/note.txt.j2"),
        "who: Dana\n",
        {
            "templates/note.txt.j2": "Hi {{ who }}\n{% include 'templates/footer.txt' %}",
            "templates/footer.txt": "-- ops",
        },
    )
    result = build_project(tmp_path)
    assert result.problems == []
    assert result.requests[0].data["Message"] == "Hi Dana\n-- ops"


def test_message_file_error_points_into_the_template(tmp_path: Path) -> None:
    project(
        tmp_path,
        SMS.replace("message: hello", "message_file: templates/note.txt.j2"),
        extra={"templates/note.txt.j2": "line one\nHi {{ who }}\n"},
    )
    (problem,) = build_project(tmp_path).problems
    assert str(problem).startswith("templates/note.txt.j2:2:1: message_file: 'who' is undefined")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-3", -3),
        ("1.5", 1.5),
        ("true", True),
        ("False", "False"),
        ("", ""),
        ("null", "null"),
        ("~", "~"),
        ("1.10", "1.10"),
        ("1e3", "1e3"),
        ("-0", "-0"),
        ("+3", "+3"),
        (" 3", " 3"),
        ("0417", "0417"),
        ("12:30", "12:30"),
        ("yes", "yes"),
        ("1_000", "1_000"),
        ("v1.4.0", "v1.4.0"),
    ],
)
def test_cli_and_env_values_are_text_as_typed_unless_they_read_back(text: str, value: Any) -> None:
    from commbox_yaml.variables import parse_scalar

    parsed = parse_scalar(text)
    assert parsed == value
    assert type(parsed) is type(value)


def test_a_short_sensitive_value_is_masked_with_a_warning(tmp_path: Path, capsys) -> None:
    from commbox_yaml.cli import main

    project(tmp_path, SMS.replace("message: hello", "message: 'pin {{ pin }}'"), "pin: '42'\n")
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "sensitive: [pin]\n")
    assert main(["-C", str(tmp_path), "render", "note"]) == 0
    out, err = capsys.readouterr()
    assert '"Message": "pin (sensitive)"' in out
    assert "warning: a sensitive variable has a value shorter than 4 characters" in err
    assert "42" not in out + err


# -- simple lookups: render/lookup.py evaluates `{{ a.b }}` itself, as Jinja would ------------

LOOKUP_KEYS = ["x", "id", "items", "get", "keys", "true", "self", "0", "y"]
lookup_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(LOOKUP_KEYS), children, max_size=4),
    ),
    max_leaves=8,
)
lookup_mappings = st.dictionaries(st.sampled_from(LOOKUP_KEYS), lookup_values, max_size=5)
LOOKUP_TEMPLATES = [
    "{{ a }}", "{{ a.x }}", "{{ a.x.y }}", "{{a.x}}", "{{ a.items }}", "{{ a.get }}", "{{ a.0 }}",
    "{{ a.true }}", "{{ a.self }}", "{{ item }}", "{{ item.x }}", "{{ item.id }}", "{{ key }}",
    "{{ item.x.y }}", "{{ definition.name }}", "{{ env }}", "{{ env.HOME }}", "{{ range }}",
    "{{ self }}", "{{ true }}", "{{ none }}", "{{ loop }}", "x{{ range }}", "{{ nope }}",
    "{{ a.nope }}", "{{- a -}}",
    "x {{ a.x }} y", "{{ a }}{{ item.x }}", "{{ a }}\r\n{{ a }}", "{{ a }}\n", "{ {{ a }} }",
    "{{ a }}}", "{{ item.x }} and {{ a.y }}", "{{ a.x | default('d') }}", "{{\ta.x\n}}",
    " {{ item }} ", "{{ a['x'] }}", "{{ a.x }}-{{ key }}",
]  # fmt: skip


RICH = {"x": {"y": 1}, "items": 1, "get": 2, "keys": None, "true": 3, "self": 4, "0": 5, "y": []}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(a=lookup_mappings | lookup_values, people=st.lists(lookup_mappings, max_size=3))
@example(a=RICH, people=[RICH, {"x": "text", "items": [1]}])
@example(a=["x", 1], people=[{}])
@example(a="text", people=[{"x": None}])
def test_simple_lookups_give_what_jinja_gives(
    tmp_path: Path, a: Any, people: list[dict[str, Any]]
) -> None:
    from commbox_yaml.render import lookup

    root = tmp_path / str(next(_counter))
    # One message per template, so that one failing template does not hide what another gives.
    messages = "---\n".join(
        SMS.replace("name: note", f"name: t{i}")
        + f"for_each: people\nkey: '{{{{ item.id }}}}'\nraw:\n  F: {json.dumps(template)}\n"
        for i, template in enumerate(LOOKUP_TEMPLATES)
    )
    items = [{**person, "id": f"p{i}"} for i, person in enumerate(people)]
    # Variables named like Jinja's own words: Jinja's meaning wins, except for globals.
    names = {"true": "t", "none": "n", "range": "r", "loop": "l"}
    variables = yaml.safe_dump({"a": a, "people": items, **names}, allow_unicode=True)
    project(root, messages, variables, {"commbox.yaml": COMMBOX_YAML + "env: [HOME]\n"})

    def outcome() -> Any:
        result = build_project(root, environ={"HOME": "/home/x"})
        requests = [(r.address, r.data, r.fingerprint, r.field_hashes) for r in result.requests]
        return requests, [str(p) for p in result.problems]

    fast = outcome()
    with pytest.MonkeyPatch.context() as patch:  # every template through Jinja
        patch.setattr(lookup, "parse_lookup", lambda expression: None)
        patch.setattr(lookup, "parse_text", lambda source: None)
        assert outcome() == fast


def test_a_variable_named_self_fails_every_expression_as_it_always_has(tmp_path: Path) -> None:
    # Jinja's compiled expression takes the variables as keyword arguments besides `self`.
    # A template's text is rendered another way, and `self` there is Jinja's, not the variable.
    body = SMS.replace("message: hello", "message: 'hi {{ who }} {{ self }}'")
    body += "---\n" + SMS.replace("name: note", "name: other") + "raw:\n  X: '{{ who }}'\n"
    project(tmp_path, body, "self: me\nwho: Dana\n")
    result = build_project(tmp_path)
    assert result.requests[0].data["Message"] == "hi Dana <TemplateReference None>"
    (problem,) = result.problems
    assert problem.path == "raw.X"
    assert "got multiple values for argument 'self'" in problem.message


def test_what_counts_as_a_simple_lookup() -> None:
    from commbox_yaml.render.lookup import parse_lookup as _lookup
    from commbox_yaml.render.lookup import parse_text as _text_lookups

    assert _lookup("item.phone") == ("item", "phone")
    assert _lookup(" a.b.c ") == ("a", "b", "c")
    for other in ("item.items", "a.get", "a.__class__", "true", "none", "self", "a.0", "a[0]",
                  "a | upper", "a + 1", "- a", "a.b -", "loop.index", "ä"):  # fmt: skip
        assert _lookup(other) is None, other
    assert _text_lookups("Hi {{ a }}, {{b.c}}!") == ("Hi ", ("a",), ", ", ("b", "c"), "!")
    assert _text_lookups("") == ()
    for other in ("{{ a }}\r\n", "{ {{ a }}", "{{ a }}}", "{{- a }}", "{% if a %}x{% endif %}",
                  "{# c #}{{ a }}", "{{ a.items }}", "{{ 'x' }}"):  # fmt: skip
        assert _text_lookups(other) is None, other


def test_printing_a_method_is_an_error_not_a_memory_address(tmp_path: Path) -> None:
    project(
        tmp_path,
        SMS.replace("message: hello", "message: 'n {{ d.items }}'"),
        "d: {items: [1, 2]}\n",
    )
    (problem,) = build_project(tmp_path).problems
    assert "gives a builtin_function_or_method" in problem.message
    assert "needs ['key']" in problem.message
    project(
        tmp_path,
        SMS.replace("message: hello", "message: \"n {{ d['items'] }}\""),
        "d: {items: [1, 2]}\n",
    )
    assert build_project(tmp_path).requests[0].data["Message"] == "n [1, 2]"
