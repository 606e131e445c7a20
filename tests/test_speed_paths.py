"""The fast paths keep the same answers: the streamed ledger read, group commit, YAML built
from events, lazy imports, and the collector settings restored after a command."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from commbox_yaml import source
from commbox_yaml.cli import main
from commbox_yaml.errors import UserError
from commbox_yaml.source import iter_documents
from tests.sending import file_ledger

REPO = Path(__file__).parent.parent
HEAVY = ("yaml", "jinja2", "jsonschema", "urllib3")


# -- the ledger ---------------------------------------------------------------------------------


def test_reading_only_some_keys_gives_those_keys_the_same_states(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    fp = {"fingerprint": "sha256:a", "fields": {"Message": "1"}}
    with ledger.locked():
        for n in range(30):
            key = f"k{n % 7}"
            ledger.append({"event": "pending", "key": key, **fp, "attempt": n})
            kind = ("sent", "failed", "unknown", "retry", "forget")[n % 5]
            ledger.append({"event": kind, "key": key, "object_id": n, "status": 200})
        ledger.append({"event": "reconciled", "key": "k2", "result": "absent"})
    whole = ledger.read()
    some = ledger.read({"k1", "k2", "nope"})
    assert set(some.states) == {"k1", "k2"}
    assert some.states == {k: whole.states[k] for k in ("k1", "k2")}
    assert some.entries == whole.entries == 61
    assert some.state("k3") != whole.state("k3")  # not kept: as if never written


def test_concurrent_appends_each_return_with_their_line_in_the_file(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    missing: list[str] = []

    def writer(number: int) -> None:
        for n in range(40):
            key = f"w{number}-{n}"
            ledger.append({"event": "pending", "key": key})
            # Returned: the line is in the file (group commit never acknowledges early).
            if f'"key":"{key}"' not in ledger.path.read_text():
                missing.append(key)

    with ledger.locked():
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert missing == []
    lines = ledger.path.read_text().splitlines()
    assert len(lines) == 480
    assert {json.loads(line)["key"] for line in lines} == {
        f"w{w}-{n}" for w in range(12) for n in range(40)
    }


def test_a_torn_last_line_is_still_skipped_with_a_warning(tmp_path: Path) -> None:
    ledger = file_ledger(tmp_path)
    with ledger.locked():
        ledger.append({"event": "pending", "key": "a"})
    with ledger.path.open("ab") as handle:
        handle.write(b'{"event":"sent","ke')
    view = ledger.read({"a"})
    assert view.entries == 1
    assert "torn last line" in view.warnings[0]


# -- YAML from events ---------------------------------------------------------------------------

_FILES = sorted(
    p
    for folder in ("tests/cases", "tests/reference", "examples")
    for p in (REPO / folder).rglob("*.y*ml")
)


def _load(text: str, depth: int | None) -> object:
    """The documents (or the error) as built from parser events, and from the node graph."""
    return _built(text, depth), _built_from_nodes(text, depth)


def _built_from_nodes(text: str, depth: int | None) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source, "_NODE_MARKS", ("",))  # found in any text: always the graph
        return _built(text, depth)


def _built(text: str, depth: int | None) -> object:
    try:
        return [(d.value, d.positions, d.location) for d in iter_documents(text, "f.yaml", depth)]
    except UserError as exc:
        return str(exc)


@pytest.mark.parametrize("path", _FILES, ids=[str(p.relative_to(REPO)) for p in _FILES])
@pytest.mark.parametrize("depth", [None, 1])
def test_yaml_built_from_events_equals_the_node_graph_build(path: Path, depth: int | None) -> None:
    streamed, graph = _load(path.read_text("utf-8", errors="replace"), depth)
    assert streamed == graph


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",
        "a:\n  - [1, 2]\n  - {? [x]: 1}\n",
        "x: !!binary aGk=\n",
        "---\n---\na: 01234\nb: 1:30\nc: yes\n...\n",
        "~\n",
        "[" * 70 + "]" * 70 + "\n",
        "a: [1,\n",
    ],
)
def test_yaml_edge_cases_agree(text: str) -> None:
    streamed, graph = _load(text, None)
    assert streamed == graph


# -- imports and the collector ------------------------------------------------------------------


def _modules_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))


def test_version_imports_none_of_the_libraries() -> None:
    assert _modules_after("from commbox_yaml.cli import main\nmain(['--version'])") == []


def test_validate_of_a_valid_project_imports_no_http_client_nor_jsonschema() -> None:
    project = REPO / "tests" / "reference" / "project"
    code = (
        "from commbox_yaml.cli import main\n"
        f"assert main(['-C', {str(project)!r}, 'validate']) == 0\n"
        "assert 'commbox_yaml.client' not in sys.modules\n"
        "assert 'commbox_yaml.sandbox' not in sys.modules"
    )
    loaded = _modules_after(code)
    assert "urllib3" not in loaded
    assert "jsonschema" not in loaded  # needed only to word the errors of an invalid value


def test_a_mistyped_option_after_a_command_is_still_suggested(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", "--detailled-exitcode"]) == 1
    assert "did you mean '--detailed-exitcode'" in capsys.readouterr().err


def test_the_collector_is_left_as_it_was(tmp_path: Path) -> None:
    before = gc.get_threshold()
    assert main(["-C", str(REPO / "tests" / "reference" / "project"), "validate"]) == 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


# -- apply: a result is shown only once its outcome is on disk --------------------------------

FAN_OUT = """\
name: note
channel: sms
stream: sms
for_each: people
key: "{{ item }}"
user_stream_provider_id: "97254{{ item }}"
message: "hello {{ item }}"
"""


class _Checking:
    """stdout that, for each `sent` line apply prints, checks the ledger already holds it."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.shown: list[str] = []
        self.early: list[str] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            words = re.sub(r"^\[\s*\d+/\d+\]", "", line).split()  # after its running count
            if words[:1] == ["sent"] and "object" in words:
                object_id = words[-1]
                self.shown.append(object_id)
                if not re.search(rf'"object_id":{object_id}\b', self.ledger.read_text()):
                    self.early.append(line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_a_result_is_shown_only_after_its_outcome_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.projects import project

    people = "people: [" + ", ".join(f"'{1000000 + n}'" for n in range(60)) + "]\n"
    root = project(tmp_path, FAN_OUT, people)
    (root / "commbox.yaml").write_text(
        (root / "commbox.yaml").read_text() + "api: {concurrency: 12}\n"
    )
    checking = _Checking(root / ".commbox" / "sandbox-ledger.jsonl")
    monkeypatch.setattr(sys, "stdout", checking)
    assert main(["-C", str(root), "apply", "--sandbox", "--auto-approve"]) == 0
    assert len(checking.shown) == 60
    assert checking.early == []
