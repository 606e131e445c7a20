"""Stream ids: CommBox's numbers and encrypted ids, aliases, typos, and ids a path cannot hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.streams import (
    StreamIdError,
    canonical_id,
    edit_distance,
    near_alias,
    path_segment,
    resolve,
)
from tests.projects import build_project, write

ALIASES = {"support-email": "17566", "wa": "hNyRN_fLUy7rrOrN9jLpipA==", "mail": "b99"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("support-email", "17566"),
        (17566, "17566"),
        ("532", "532"),
        ("hNyRN_fLUy7rrOrN9jLpipA==", "hNyRN_fLUy7rrOrN9jLpipA=="),
        ("hNyRN_fLUy7rrOrN9jLpipA%3d%3d", "hNyRN_fLUy7rrOrN9jLpipA=="),
        ("hNyRN_fLUy7rrOrN9jLpipA%3D%3D", "hNyRN_fLUy7rrOrN9jLpipA=="),
        ("ab/cd+ef==", "ab/cd+ef=="),
        ("b9910a75a46c492c9cf46a910cdba0012", "b9910a75a46c492c9cf46a910cdba0012"),
        ("5fd0c1", "5fd0c1"),
        ("HNYRNFLUY7RRORN9JLPIPA", "HNYRNFLUY7RRORN9JLPIPA"),
    ],
)
def test_raw_ids_and_aliases_resolve(value: object, expected: str) -> None:
    assert resolve(value, ALIASES) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("..", "dots alone"),
        (".", "dots alone"),
        ("%2E%2E", "dots alone"),
        ("support-emial", "did you mean 'support-email'?"),
        ("Support-Email", "did you mean 'support-email'?"),
        ("MAIL", "did you mean 'mail'?"),
        ("wa2", "did you mean 'wa'?"),
        ("billing", "unknown stream alias 'billing' (aliases: mail, support-email, wa)"),
        ("ops.team", "unknown stream alias 'ops.team'"),
        ("a?b", "is neither a stream alias"),
        ("ops team", "is neither a stream alias"),
        ("%ff%fe", "not UTF-8"),
        (-5, "not negative"),
        (1.5, "a stream is an alias name"),
    ],
)
def test_what_is_not_a_stream(value: object, message: str) -> None:
    with pytest.raises(StreamIdError, match=re.escape(message)):
        resolve(value, ALIASES)


def test_the_typo_guard_does_not_swallow_short_ids_or_numbers() -> None:
    assert near_alias("5f", {"wa": "1"}) is None  # two edits of a two-letter alias: no
    assert near_alias("wb", {"wa": "1"}) == "wa"
    assert resolve("12", {"s1": "9"}) == "12"  # a number is never a typo
    assert edit_distance("kitten", "sitting", limit=5) == 3
    assert edit_distance("a", "abcdef", limit=2) == 3


def test_alias_values_may_be_any_id_but_not_dots() -> None:
    assert canonical_id("a?b#c") == "a?b#c"
    assert path_segment("a?b#c/d") == "a%3Fb%23c%2Fd"
    assert path_segment("hNyRN_fLUy7rrOrN9jLpipA==") == "hNyRN_fLUy7rrOrN9jLpipA%3D%3D"
    for bad in ("..", ".", "", "a b", "a\tb", True, None, [1]):
        with pytest.raises(StreamIdError):
            canonical_id(bad)


# -- through the CLI ----------------------------------------------------------------------------

MESSAGE = """\
name: note
channel: sms
stream: {stream}
user_stream_provider_id: "972544444444"
message: hello
"""


def _project(root: Path, stream: str, streams: str = "") -> Path:
    commbox = "version: 1\n" + (f"streams:\n{streams}" if streams else "")
    return write(root, {"commbox.yaml": commbox, "messages/m.yaml": MESSAGE.format(stream=stream)})


def _validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["-C", str(root), "validate"])
    return code, capsys.readouterr().err


def test_an_unquoted_number_is_a_stream_id(tmp_path: Path) -> None:
    result = build_project(_project(tmp_path, "532"))
    assert result.problems == []
    assert result.requests[0].path == "/streams/532/objects"


def test_an_integer_alias_value_is_a_stream_id(tmp_path: Path) -> None:
    result = build_project(_project(tmp_path, "support", "  support: 17566\n"))
    assert result.problems == []
    assert result.requests[0].path == "/streams/17566/objects"


def test_an_alias_of_dots_is_refused_where_it_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _validate(_project(tmp_path, "up", '  up: ".."\n'), capsys)
    assert code == 1
    assert "error: commbox.yaml:3:7: streams.up: '..' is not a stream id" in err


def test_a_raw_id_of_dots_is_refused_and_never_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _validate(_project(tmp_path, '".."'), capsys)
    assert code == 1
    assert "error: messages/m.yaml:3:9: stream: '..' is not a stream id" in err
    assert main(["-C", str(tmp_path), "apply", "--sandbox", "--auto-approve"]) == 1
    ledger = tmp_path / ".commbox" / "sandbox-ledger.jsonl"
    assert not ledger.exists() or ledger.read_text().strip() == ""  # nothing went out


def test_a_typo_of_an_alias_says_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    streams = '  whatsapp: "hNyRN_fLUy7rrOrN9jLpipA=="\n'
    code, err = _validate(_project(tmp_path, "whatsap", streams), capsys)
    assert code == 1
    assert (
        "messages/m.yaml:3:9: stream: unknown stream alias 'whatsap'; did you mean 'whatsapp'?"
        in err
    )


def test_an_octal_looking_number_must_be_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _validate(_project(tmp_path, "017566"), capsys)
    assert code == 1
    assert "stream: 017566 is read by YAML as 8054; put it in quotes" in err
    code, err = _validate(_project(tmp_path / "b", "s", "  s: 017566\n"), capsys)
    assert code == 1
    assert "commbox.yaml:3:6: streams.s: 017566 is read by YAML as 8054; put it in quotes" in err
