"""What a newcomer meets first: help, exit codes, and typos that must not pass silently."""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from commbox_yaml.cli import COMMANDS, main, make_parser
from commbox_yaml.keys import expand, key_matcher
from tests.projects import SMS, build_project, project, write

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "release-notice"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("COMMBOX_VAR_")]:
        monkeypatch.delenv(name)
    for name in ("GITHUB_ACTIONS", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@functools.cache
def _help(command: str | None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", *([command] if command else []), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- exit codes and help -----------------------------------------------------------------------


def test_bare_invocation_prints_the_help_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "commbox_yaml"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout == _help(None)
    assert result.stdout.startswith("usage: commbox-yaml")
    for command in COMMANDS:
        assert f"\n    {command} " in result.stdout


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["plan", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["render"], "the following arguments are required: ADDRESS"),
        (["plan", "-out"], "argument -out/--out: expected one argument"),
        (["plan", "--format", "html"], "invalid choice: 'html'"),
        (["sandbox", "--port", "70000"], "70000 is not a port"),
        (["valdate"], "did you mean 'validate'?"),
        (["validate", "--stirct"], "unrecognized arguments: --stirct; did you mean '--strict'?"),
        (["--no-color"], "a COMMAND is required"),
    ],
)
def test_a_usage_error_exits_1(argv: list[str], says: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1  # 2 belongs to plan --detailed-exitcode alone
    assert says in result.stderr
    assert result.stderr.startswith("usage: commbox-yaml")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_usage_error_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--replace"]) == 1
    assert "expected one argument" in capsys.readouterr().err


def _sections(text: str) -> dict[str, list[str]]:
    """The epilog's sections: 'examples', 'environment', 'exit codes' -> their lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line in ("examples:", "environment:", "exit codes:"):
            current = sections[line[:-1]] = []
        elif current is not None and line.startswith("  "):
            current.append(line.strip())
        elif not line.strip():
            current = None
    return sections


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_has_examples_environment_and_exit_codes(command: str | None) -> None:
    sections = _sections(_help(command))
    assert sections.keys() == {"examples", "environment", "exit codes"}
    assert sections["examples"]
    assert sections["environment"]
    codes = [line.split()[0] for line in sections["exit codes"] if line[0].isdigit()]
    assert codes[:2] == ["0", "1"]
    assert "2" not in codes or command in (None, "plan")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_example_is_a_valid_command_line(command: str | None) -> None:
    parser = make_parser()
    for example in _sections(_help(command))["examples"]:
        for argv in _invocations(example):
            if argv and argv[0] == "COMMAND":
                continue  # the top-level help's pointer to each command's help
            parsed = _parse(parser, argv)
            assert command is None or parsed.command in (command, "apply", "validate")


@pytest.mark.parametrize(
    ("command", "reads", "does_not_read"),
    [
        ("validate", ["COMMBOX_VAR_<name>", "GITHUB_ACTIONS"], ["COMMBOX_API_TOKEN"]),
        (
            "render",
            ["COMMBOX_VAR_<name>", "GITHUB_ACTIONS"],
            ["COMMBOX_API_TOKEN", "COMMBOX_BASE_URL"],
        ),
        ("plan", ["COMMBOX_VAR_<name>", "COMMBOX_LEDGER_URL"], ["COMMBOX_API_TOKEN"]),
        (
            "apply",
            [
                "COMMBOX_API_TOKEN",
                "COMMBOX_BASE_URL",
                "COMMBOX_VAR_<name>",
                "COMMBOX_LEDGER_URL",
                "HTTPS_PROXY",
                "SSL_CERT_FILE",
                "NO_COLOR",
            ],
            [],
        ),
        ("ledger", ["COMMBOX_LEDGER_URL"], ["COMMBOX_API_TOKEN", "COMMBOX_VAR_<name>"]),
        ("schema", [], ["COMMBOX_API_TOKEN", "COMMBOX_VAR_<name>"]),
        ("sandbox", ["COMMBOX_SANDBOX_TOKEN"], ["COMMBOX_API_TOKEN"]),
    ],
)
def test_help_names_the_environment_each_command_reads(
    command: str, reads: list[str], does_not_read: list[str]
) -> None:
    names = [line.split()[0] for line in _sections(_help(command))["environment"]]
    for name in reads:
        assert name in names
    for name in does_not_read:
        assert name not in names


# -- finding commbox-yaml command lines in docs and CI files ---------------------------------------

_SHELL_STOPS = ("|", "||", "&&", ";", ">", ">>", "<", "2>&1", ")", "&")
_TAKES_VALUE = ("-C", "--var", "--var-file", "-out", "--out", "--target", "--replace", "--format")


def _invocations(script: str) -> list[list[str]]:
    """The arguments of every `commbox-yaml ...` command in a shell script (comments and
    quoted text skipped); a shell variable stands for an option's value, or for nothing."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # not shell (an embedded script's line)
        for index, word in enumerate(words):
            named = word == "commbox-yaml" or word.endswith("/commbox-yaml")
            if named and _command_position(words[:index]):
                found.append(_arguments(words[index + 1 :]))
    return found


def _command_position(before: list[str]) -> bool:
    """Whether the next word is a command: first, after a separator, or after VAR=value."""
    if not before:
        return True
    last = before[-1]
    return last in (*_SHELL_STOPS, "then", "do", "else", "if", "!") or bool(
        re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", last)
    )


def _arguments(words: list[str]) -> list[str]:
    argv: list[str] = []
    for word in words:
        if word in _SHELL_STOPS or word.startswith((">", "2>")):
            break
        if "$" in word:
            if argv and argv[-1] in _TAKES_VALUE:
                argv.append("X")
            continue  # "${extra[@]}": extra arguments, checked where they are written
        argv.append(word)
    return argv


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    argv = [a for a in argv if a not in ("-h", "--help")]  # `plan --help`: is `plan` real?
    try:
        parsed = parser.parse_args(argv)
    except SystemExit as exc:  # pragma: no cover - the failure message says which
        raise AssertionError(f"not a valid command line: commbox-yaml {shlex.join(argv)}") from exc
    assert parsed.command is not None, argv
    return parsed


def test_invocations_are_found_and_checked() -> None:
    # The finder itself: it must see every command line, and the parser must refuse bad ones.
    script = (
        "# commbox-yaml nonsense in a comment\n"
        'commbox-yaml -C "$DIR" plan --format markdown "${extra[@]}" > "$out.md"\n'
        'echo "commbox-yaml is quoted text"\n'
        'git config user.name "commbox-yaml"\n'
        "X=1 commbox-yaml validate --strict\n"
        ".venv/bin/commbox-yaml apply --auto-approve \\\n"
        "  --replace 'release-2.0[*]' 2>&1 | tee x\n"
    )
    assert _invocations(script) == [
        ["-C", "X", "plan", "--format", "markdown"],
        ["validate", "--strict"],
        ["apply", "--auto-approve", "--replace", "release-2.0[*]"],
    ]
    with pytest.raises(AssertionError, match="not a valid command line"):
        _parse(make_parser(), ["plan", "--no-such-flag"])


# -- typos that must not pass silently ---------------------------------------------------------

VARS = "version: 1.4.0\nproduct: Acme\n"
GREETING = SMS.replace("message: hello", "message: '{{ product }} {{ version }}'")


def test_an_unused_var_is_a_warning_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, GREETING, VARS)
    assert main(["-C", str(tmp_path), "validate", "--var", "verison=1.5.0"]) == 0
    out, err = capsys.readouterr()
    assert out == "validate: 1 message from 1 file valid.\n"
    assert err == ("warning: --var verison is not used by any template; did you mean 'version'?\n")


def test_an_unused_var_is_a_github_warning_annotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    project(tmp_path, GREETING, VARS)
    assert main(["-C", str(tmp_path), "validate", "--var", "verison=1.5.0"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "::warning::--var verison is not used by any template; did you mean 'version'?"
    )


def test_an_unused_commbox_var_is_a_warning_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, GREETING, VARS)
    monkeypatch.setenv("COMMBOX_VAR_prodcut", "Globex")
    monkeypatch.setenv("COMMBOX_VAR_version", "2.0")  # used: no warning
    assert main(["-C", str(tmp_path), "render", "note"]) == 0
    captured = capsys.readouterr()
    assert "Acme 2.0" in captured.out
    assert captured.err == (
        "warning: COMMBOX_VAR_prodcut is not used by any template; did you mean 'product'?\n"
    )


def test_strict_makes_the_warning_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, GREETING, VARS)
    assert main(["-C", str(tmp_path), "validate", "--strict", "--var", "zzz=1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "error: --var zzz is not used by any template; check the name, or leave it out "
        "(an error with --strict)",
        "validate: 1 error",
    ]
    assert main(["-C", str(tmp_path), "validate", "--strict", "--var", "version=2"]) == 0


def test_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    project(tmp_path, GREETING, VARS)
    assert main(["-C", str(tmp_path), "validate", "--json", "--var", "verison=2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is True
    assert result["warnings"] == [
        "--var verison is not used by any template; did you mean 'version'?"
    ]
    assert main(["-C", str(tmp_path), "validate", "--json", "--strict", "--var", "verison=2"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    assert result["warnings"] == []
    assert "did you mean 'version'?" in result["errors"][0]["message"]


def test_a_variable_used_anywhere_counts_as_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Used only in: a skipped message's when, a for_each, an item's key, an included file.
    messages = SMS.replace("message: hello", "message_file: templates/body.j2") + (
        "when: send_it\n---\n"
        "name: fan\nchannel: sms\nstream: sms\nuser_stream_provider_id: '972544444444'\n"
        "for_each: people\nkey: '{{ item[key_field] }}'\nmessage: hi\n"
    )
    project(
        tmp_path,
        messages,
        "send_it: false\npeople: [{id: a}]\nkey_field: id\nsignature: x\n",
        {
            "templates/body.j2": "Hello {% include 'templates/sig.j2' %}\n",
            "templates/sig.j2": "{{ signature }}\n",
        },
    )
    given = ["send_it=false", "key_field=id", "signature=y"]
    argv = ["-C", str(tmp_path), "validate", "--strict"]
    argv += [arg for pair in given for arg in ("--var", pair)]
    assert main(argv) == 0, capsys.readouterr().err
    # `people`, read only by for_each, counts too (the value given here breaks the for_each,
    # which is an error of its own, not a warning).
    built = build_project(tmp_path, cli_vars=("people=1", "zzz=1"))
    assert built.problems
    assert built.warnings == [
        "--var zzz is not used by any template; check the name, or leave it out"
    ]
    assert capsys.readouterr().err == ""


def test_an_include_named_at_run_time_silences_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Which variables such a template reads is unknowable without rendering: no false alarm.
    messages = SMS.replace("message: hello", 'message: "{% include part %}"')
    project(tmp_path, messages, "part: templates/a.j2\n", {"templates/a.j2": "{{ anything }}"})
    assert main(["-C", str(tmp_path), "validate", "--var", "anything=1", "--var", "zzz=2"]) == 0
    assert capsys.readouterr().err == ""


def _problems(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["--no-color", "-C", str(tmp_path), *argv]) == 1
    return capsys.readouterr().err


def test_did_you_mean_for_an_undefined_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, SMS.replace("message: hello", "message: '{{ prodcut }}'"), VARS)
    err = _problems(tmp_path, capsys, "validate")
    assert "message: 'prodcut' is undefined (did you mean 'product'?); define it" in err


def test_no_far_fetched_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, SMS.replace("message: hello", "message: '{{ region }}'"), VARS)
    err = _problems(tmp_path, capsys, "validate")
    assert "'region' is undefined; define it" in err  # not "did you mean 'version'"


def test_an_item_key_typo_lists_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = SMS.replace("message: hello", "message: 'Hi {{ item.nme }}'") + (
        "for_each: people\nkey: '{{ item.phone }}'\n"
    )
    people = "people:\n  - {name: Dana, phone: '972544444444'}\n"
    project(tmp_path, messages, people)
    err = _problems(tmp_path, capsys, "validate")
    assert (
        "[972544444444]: message: item has no key 'nme' (did you mean 'name'?); "
        "its keys: name, phone" in err
    )


def test_a_nested_key_typo_in_a_message_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = SMS.replace("message: hello", "message_file: templates/body.j2")
    project(
        tmp_path,
        messages,
        "release: {notes: {url: u, title: t}}\n",
        {"templates/body.j2": "Read:\n{{ release.notes['tilte'] }}\n"},
    )
    err = _problems(tmp_path, capsys, "validate")
    assert (
        "templates/body.j2:2:1: message_file: release.notes has no key 'tilte' "
        "(did you mean 'title'?); its keys: url, title" in err
    )


def test_did_you_mean_for_a_for_each_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = SMS + "for_each: custmers\n"
    project(tmp_path, messages, "customers: [a, b]\n")
    err = _problems(tmp_path, capsys, "validate")
    assert "for_each: 'custmers' is undefined (did you mean 'customers'?)" in err


def test_did_you_mean_for_an_env_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, SMS.replace("message: hello", "message: '{{ env.GITHUB_REF_NAM }}'"))
    commbox = tmp_path / "commbox.yaml"
    commbox.write_text(commbox.read_text() + "env: [GITHUB_REF_NAME]\n")
    err = _problems(tmp_path, capsys, "validate")
    assert (
        "env.GITHUB_REF_NAM is not visible to templates (did you mean env.GITHUB_REF_NAME?)" in err
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["render", "relase-email"], "'relase-email' (did you mean 'release-email'?)"),
        (
            ["render", "customer-whatsapp[globx]"],
            "'customer-whatsapp[globx]' (did you mean 'customer-whatsapp[globex]'?)",
        ),
        (["plan", "--target", "oncal-sms"], "'oncal-sms' (did you mean 'oncall-sms'?)"),
        (
            ["plan", "--replace", "release-1.4.0-whatsap[globex]"],
            "--replace 'release-1.4.0-whatsap[globex]' names no message key of this plan "
            "(did you mean 'release-1.4.0-whatsapp[globex]'?)",
        ),
    ],
)
def test_did_you_mean_for_addresses_and_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    root = tmp_path / "example"
    _copy_example(root)
    assert main(["-C", str(root), *argv]) == 1
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


def _copy_example(root: Path) -> None:
    import shutil

    shutil.copytree(EXAMPLE, root)
    for name in ("CI_COMMIT_TAG", "GITHUB_REF_NAME"):
        os.environ.pop(name, None)


# -- --replace globs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("release-2.0[*]", "release-2.0[acme]", True),
        ("release-2.0[*]", "release-2.0[]", True),
        ("release-2.0[*]", "release-2.0", False),
        ("release-2.0[*]", "release-2.0x", False),  # fnmatch would read [*] as a class
        ("release-2.0[*]", "release-2.0*", False),
        ("release-?.0", "release-2.0", True),
        ("release-?.0", "release-10.0", False),
        ("release-*", "release-2.0[acme]", True),
        ("*[acme]", "release-2.0[acme]", True),
        ("*[acme]", "release-2.0[acmex]", False),
        ("release-2.0", "release-2.0", True),
        ("release-2.0", "release-210", False),  # '.' is literal
        ("a+b(c)", "a+b(c)", True),
        ("[!a]", "[!a]", True),
        ("[!a]", "b", False),
        ("*", "anything [at] all\n", True),
    ],
)
def test_glob_semantics(pattern: str, key: str, matches: bool) -> None:
    assert key_matcher(pattern)(key) is matches


def test_a_glob_matching_no_key_is_an_error() -> None:
    keys = ["release-2.0[acme]", "release-2.0[globex]", "oncall"]
    assert expand(["release-2.0[*]"], keys) == {"release-2.0[acme]", "release-2.0[globex]"}
    assert expand(["oncall", "*[globex]"], keys) == {"oncall", "release-2.0[globex]"}
    with pytest.raises(Exception, match=r"'release-3\.0\[\*\]' matches no message key"):
        expand(["release-3.0[*]"], keys)


def test_replace_with_a_glob_sends_the_held_messages_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fan = (
        "name: fan\nchannel: sms\nstream: sms\nid: 'release-{{ version }}'\n"
        "user_stream_provider_id: '972544444444'\nfor_each: [acme, globex]\n"
        "message: '{{ version }} for {{ item }} {{ extra }}'\n"
    )
    root = project(tmp_path, fan, "version: '2.0'\nextra: a\n")
    assert main(["-C", str(root), "apply", "--sandbox", "--auto-approve"]) == 0
    write(root, {"vars/common.yaml": "version: '2.0'\nextra: b\n"})  # both now changed: held
    capsys.readouterr()
    assert main(["-C", str(root), "plan", "--sandbox", "--detailed-exitcode"]) == 0
    assert "2 changed (held)" in capsys.readouterr().out
    argv = ["-C", str(root), "plan", "--sandbox", "--detailed-exitcode"]
    assert main([*argv, "--replace", "release-2.0[*]"]) == 2
    assert "Plan: 2 to send" in capsys.readouterr().out
    assert main([*argv, "--replace", "release-2.0[g*]"]) == 2
    assert "Plan: 1 to send" in capsys.readouterr().out
    assert main([*argv, "--replace", "release-2.1[*]"]) == 1
    assert "matches no message key" in capsys.readouterr().err
