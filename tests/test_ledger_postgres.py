"""The shared ledger on a real PostgreSQL server (tests/pg.py): the same behaviour as the file
ledger, claims that keep concurrent applies from sending one key twice, namespaces, export and
import, a lost connection, and a password that never shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import KeyStatus
from commbox_yaml.ledger.postgres import PostgresLedger
from commbox_yaml.sandbox import SandboxServer
from tests.ledgers import TOKEN, key, make, text
from tests.pg import ROLE_PASSWORD, PgServer
from tests.sending import apply, delivered, ledger_path, point_at, spawn, wait_until


@pytest.fixture
def db(postgres: PgServer) -> str:
    """A fresh database for the test, owned by an ordinary role."""
    return postgres.new_database()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    point_at(monkeypatch, server.url, TOKEN)
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    monkeypatch.delenv("COMMBOX_LEDGER_URL", raising=False)


def on_db(postgres: PgServer, database: str, namespace: str = "team") -> str:
    return f"url: '{postgres.url(database)}', namespace: {namespace}"


def cli(root: Path, *args: str) -> int:
    return main(["-C", str(root), *args])


def output(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    capsys.readouterr()
    assert cli(root, *args) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def pg_ledger(postgres: PgServer, database: str, namespace: str = "team") -> PostgresLedger:
    url = postgres.url(database, password=ROLE_PASSWORD)
    return PostgresLedger(url, namespace, f"{database}/{namespace}")


# -- the same behaviour as the file ledger -------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_a_file_ledger_imported_reads_the_same_everywhere(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    on_file = make(tmp_path / "file", count=4)
    assert apply(on_file) == 0
    assert cli(on_file, "ledger", "forget", key(1)) == 0
    on_pg = make(tmp_path / "pg", count=4, ledger=on_db(postgres, db))
    exported = ledger_path(on_file).read_text()
    assert cli(on_pg, "ledger", "import", str(ledger_path(on_file))) == 0
    assert output(capsys, on_pg, "ledger", "export") == exported
    for command in (
        ["plan", "--json"],
        ["ledger", "list", "--json"],
        ["ledger", "show", key(0), "--json"],
    ):
        assert output(capsys, on_pg, *command) == output(capsys, on_file, *command), command
    human = [output(capsys, root, "ledger", "list").splitlines()[1:] for root in (on_file, on_pg)]
    assert human[0] == human[1]
    assert apply(on_pg) == 0  # the forgotten key only
    assert [text(1)] == [t for t, n in delivered(server).items() if n == 2]
    assert max(delivered(server).values()) == 2  # the one forgotten on purpose, nothing else


@pytest.mark.usefixtures("env")
def test_plan_replace_forget_and_plan_files(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    root = make(tmp_path, count=3, ledger=on_db(postgres, db))
    assert apply(root) == 0
    assert apply(root) == 0
    assert len(server.received) == 3
    state = pg_ledger(postgres, db).read().states[key(0)]
    assert (state.status, state.events) == (KeyStatus.SENT, 2)
    (root / "messages/notice.yaml").write_text(
        (root / "messages/notice.yaml").read_text().replace('"notice {{', '"Notice {{')
    )
    plan = json.loads(output(capsys, root, "plan", "--json"))
    assert plan["summary"]["changed"] == 3
    assert {tuple(m["changed_fields"]) for m in plan["messages"]} == {("Message",)}
    assert apply(root, "--replace", key(2)) == 0
    assert len(server.received) == 4
    # A plan file is refused once the ledger moved for one of its keys.
    assert cli(root, "plan", "-out", str(tmp_path / "saved.plan"), "--replace", key(1)) == 0
    assert cli(root, "ledger", "forget", key(1)) == 0
    capsys.readouterr()
    assert cli(root, "apply", str(tmp_path / "saved.plan")) == 1
    assert f"the ledger changed for key {key(1)}" in capsys.readouterr().err
    assert cli(root, "plan", "-out", str(tmp_path / "saved.plan")) == 0
    assert cli(root, "apply", str(tmp_path / "saved.plan")) == 0
    assert cli(root, "apply", str(tmp_path / "saved.plan")) == 1  # stale now: sent once
    assert len(server.received) == 5


@pytest.mark.usefixtures("env")
def test_ledger_init_creates_the_namespace_must_exist_requires(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    root = make(tmp_path, count=2, ledger=on_db(postgres, db) + ", must_exist: true")
    capsys.readouterr()
    assert apply(root) == 1
    assert "is missing and ledger.must_exist is true: nothing was sent" in capsys.readouterr().err
    assert cli(root, "ledger", "list") == 1
    assert "'commbox-yaml ledger init' creates one" in capsys.readouterr().err
    assert server.received == []
    assert output(capsys, root, "ledger", "init").startswith("Created postgresql://commbox@")
    assert "Already exists" in output(capsys, root, "ledger", "init")
    assert apply(root) == 0
    assert len(server.received) == 2


@pytest.mark.usefixtures("env")
def test_namespaces_are_independent(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    first = make(tmp_path / "a", count=2, ledger=on_db(postgres, db, "alpha"))
    second = make(tmp_path / "b", count=2, ledger=on_db(postgres, db, "beta"))
    assert apply(first) == 0
    assert json.loads(output(capsys, second, "plan", "--json"))["summary"]["send"] == 2
    assert apply(second) == 0
    assert len(server.received) == 4
    assert cli(first, "ledger", "forget", key(0)) == 0
    assert json.loads(output(capsys, second, "plan", "--json"))["summary"]["unchanged"] == 2
    assert json.loads(output(capsys, first, "plan", "--json"))["summary"]["send"] == 1


def test_the_tables_are_made_by_an_ordinary_role_on_first_use(postgres: PgServer, db: str) -> None:
    ledger = pg_ledger(postgres, db)
    assert ledger.read().exists is False  # reading creates nothing
    with postgres.admin(db) as conn:
        assert conn.execute("SELECT to_regclass('commbox_keys')").fetchone() == (None,)
        role = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'commbox'")
        assert role.fetchone() == (False,)
    assert ledger.create() is True
    with postgres.admin(db) as conn:
        assert conn.execute("SELECT version FROM commbox_schema_version").fetchall() == [(1,)]
        conn.execute("UPDATE commbox_schema_version SET version = 2")
    with pytest.raises(UserError, match="made by a newer commbox-yaml"), ledger.locked():
        pass


# -- claims --------------------------------------------------------------------------------------


def _pending(k: str) -> dict[str, object]:
    return {"event": "pending", "key": k, "fingerprint": "sha256:f", "fields": {}}


def test_a_claim_is_refused_when_the_key_moved_or_is_in_flight_elsewhere(
    postgres: PgServer, db: str
) -> None:
    one, two = pg_ledger(postgres, db), pg_ledger(postgres, db)
    with one.locked(), two.locked():
        assert one.claim(_pending("a"), 0) is True
        assert two.claim(_pending("a"), 0) is False  # claimed since `two` planned
        assert two.claim(_pending("a"), 1) is False  # in flight in `one` (a --replace)
        with pytest.raises(UserError, match=r"a is being sent right now by an apply \(pid "):
            two.append({"event": "forget", "key": "a"})
        one.append({"event": "sent", "key": "a", "object_id": 1})
        assert two.claim(_pending("a"), 1) is False  # sent since `two` planned
        assert two.claim(_pending("a"), 2) is True  # a --replace planned after the send
        assert one.claim(_pending("b"), 0) is True
    # `one` is gone with its claim on b open: b is unknown, and no longer in flight.
    three = pg_ledger(postgres, db)
    assert three.read().states["b"].status is KeyStatus.UNKNOWN
    with three.locked():
        assert three.claim(_pending("b"), 1) is True


def test_two_applies_split_the_work_and_report_what_the_other_took(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, monkeypatch
) -> None:
    server.latency_ms = 500  # the slow apply alone would take 6 s
    slow = make(tmp_path / "slow", count=12, concurrency=1, ledger=on_db(postgres, db))
    fast = make(tmp_path / "fast", count=12, concurrency=8, ledger=on_db(postgres, db))
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    first = spawn(slow, server.url, TOKEN, "--auto-approve")
    wait_until(lambda: len(server.received) >= 1)
    second = spawn(fast, server.url, TOKEN, "--auto-approve")
    outs = [first.communicate(timeout=60)[0], second.communicate(timeout=60)[0]]
    assert (first.returncode, second.returncode) == (0, 0)
    counts = delivered(server)
    assert [counts[text(n)] for n in range(12)] == [1] * 12
    assert "taken    notice[" in outs[0]
    assert "taken by another apply." in outs[0]
    assert "another apply claimed or sent it since this one planned" in outs[0]


# -- export and import ---------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_export_import_round_trip_and_a_refused_second_import(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    on_file = make(tmp_path / "file", count=5)
    assert apply(on_file) == 0
    source = ledger_path(on_file)
    with source.open("a") as handle:  # a key held unknown moves as it is
        handle.write(json.dumps({"v": 1, "event": "pending", "key": "held", "at": "x"}) + "\n")
    on_pg = make(tmp_path / "pg", count=5, ledger=on_db(postgres, db))
    assert cli(on_pg, "ledger", "import", str(source)) == 0
    assert "Imported 11 events (6 keys)" in capsys.readouterr().out
    assert output(capsys, on_pg, "ledger", "export") == source.read_text()
    assert cli(on_pg, "ledger", "import", str(source)) == 1
    err = capsys.readouterr().err
    assert "already holds key 'held' and 5 more: nothing was imported" in err
    # One clashing key refuses the whole file.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        json.dumps({"v": 1, "event": "pending", "key": "new", "at": "x"})
        + "\n"
        + source.read_text().splitlines()[0]
        + "\n"
    )
    assert cli(on_pg, "ledger", "import", str(mixed)) == 1
    assert "new" not in pg_ledger(postgres, db).read().states
    assert output(capsys, on_pg, "ledger", "export") == source.read_text()
    assert json.loads(output(capsys, on_pg, "plan", "--json"))["summary"]["unchanged"] == 5
    assert apply(on_pg) == 0
    assert len(server.received) == 5  # moving to the database sent nothing again


@pytest.mark.usefixtures("env")
def test_export_moves_a_database_ledger_back_to_a_file(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    on_pg = make(tmp_path / "pg", count=3, ledger=on_db(postgres, db))
    assert apply(on_pg) == 0
    exported = tmp_path / "exported.jsonl"
    exported.write_text(output(capsys, on_pg, "ledger", "export"))
    on_file = make(tmp_path / "file", count=3)
    assert cli(on_file, "ledger", "import", str(exported)) == 0
    assert ledger_path(on_file).read_text() == exported.read_text()
    assert cli(on_file, "ledger", "import", str(exported)) == 1
    assert apply(on_file) == 0
    assert len(server.received) == 3


# -- the password --------------------------------------------------------------------------------


def test_a_password_in_commbox_yaml_is_a_validation_error(
    tmp_path: Path, postgres: PgServer, capsys
) -> None:
    url = postgres.url("x", password=ROLE_PASSWORD)
    root = make(tmp_path, ledger=f"url: '{url}'")
    assert cli(root, "validate") == 1
    err = capsys.readouterr().err
    assert "commbox.yaml:6:" in err
    assert "ledger.url: holds a password, and commbox.yaml is a committed file" in err
    assert ROLE_PASSWORD not in err
    query = make(tmp_path / "q", ledger=f"url: 'postgresql://u@h/db?password={ROLE_PASSWORD}'")
    assert cli(query, "plan") == 1
    assert "holds a password" in capsys.readouterr().err


def _run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_password_never_shows(
    tmp_path: Path,
    server: SandboxServer,
    postgres: PgServer,
    db: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make(tmp_path / "p", count=2, ledger="namespace: team")
    for name in [n for n in os.environ if n.startswith(("PG", "COMMBOX_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COMMBOX_LEDGER_URL", postgres.url(db, password=ROLE_PASSWORD))
    seen = []
    for command in (
        ["apply", "--auto-approve"],
        ["plan"],
        ["plan", "--json"],
        ["plan", "-out", str(tmp_path / "saved.plan")],
        ["ledger", "list"],
        ["ledger", "list", "--json"],
        ["ledger", "show", key(0)],
        ["ledger", "export"],
        ["--debug", "ledger", "show", "nope"],
    ):
        cli(root, *command)
        seen.append("".join(capsys.readouterr()))
    seen.append((tmp_path / "saved.plan").read_text())
    assert "postgresql://commbox@127.0.0.1" in seen[1]
    assert len(server.received) == 2
    # A wrong password, from PGPASSWORD, in a process of its own: refused, not shown either.
    env = {**os.environ, "COMMBOX_LEDGER_URL": postgres.url(db)}
    env["PGPASSWORD"] = "wrong-" + ROLE_PASSWORD
    done = _run(root, env, "plan")
    assert done.returncode == 1
    assert "password authentication failed" in done.stderr
    assert "Traceback" not in done.stderr
    seen.append(done.stdout + done.stderr)
    for text_ in seen:
        assert ROLE_PASSWORD not in text_
    # ~/.pgpass works too.
    monkeypatch.setenv("COMMBOX_LEDGER_URL", postgres.url(db))
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:{db}:commbox:{ROLE_PASSWORD}\n")
    pgpass.chmod(0o600)
    assert "4 entries, 2 keys" in output(capsys, root, "ledger", "list")


def test_a_ledger_url_from_the_environment_must_be_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    root = make(tmp_path)
    monkeypatch.setenv("COMMBOX_LEDGER_URL", "mysql://u:secret-pw@h/db")
    assert cli(root, "plan") == 1
    err = capsys.readouterr().err
    assert "COMMBOX_LEDGER_URL must be a postgresql:// URL" in err
    assert "secret-pw" not in err


def test_without_the_extra_a_clear_error_says_how_to_install_it(
    tmp_path: Path, postgres: PgServer
) -> None:
    root = make(tmp_path, ledger=f"url: '{postgres.url('x')}'")
    script = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if psycopg were not installed
        "from commbox_yaml.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "-C", str(root), "plan"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "pip install 'commbox-yaml[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr


# -- a lost connection -----------------------------------------------------------------------------


def test_a_lost_database_connection_stops_apply_and_never_sends_twice(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, monkeypatch
) -> None:
    server.latency_ms = 300
    root = make(tmp_path, count=20, concurrency=4, ledger=on_db(postgres, db))
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    child = spawn(root, server.url, TOKEN, "--auto-approve")
    wait_until(lambda: len(server.received) >= 6)
    assert postgres.terminate(db) >= 2
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert "internal error" not in err
    assert "cannot record the outcome of" in errors[0] or "was not sent" in errors[0]
    server.latency_ms = 0
    first_run = set(delivered(server))
    states = pg_ledger(postgres, db).read().states
    held = {k for k, s in states.items() if s.status is KeyStatus.UNKNOWN}
    assert 1 <= len(held) <= 4  # at most the requests in flight
    use = {"COMMBOX_BASE_URL": server.url, "COMMBOX_API_TOKEN": TOKEN}
    for name, value in use.items():
        monkeypatch.setenv(name, value)
    assert apply(root) == 0
    counts = delivered(server)
    assert max(counts.values()) == 1, "a message went out twice"
    final = pg_ledger(postgres, db).read().states
    for n in range(20):
        status = final[key(n)].status
        assert status in (KeyStatus.SENT, KeyStatus.UNKNOWN)
        assert (counts[text(n)] == 1) or status is KeyStatus.UNKNOWN
        if status is KeyStatus.UNKNOWN:
            assert key(n) in held
    received = sum(1 for n in range(20) if counts[text(n)] == 1)
    held_only = sum(1 for n in range(20) if not counts[text(n)] and key(n) in held)
    assert received + held_only == 20
    assert first_run <= set(counts)


def test_a_killed_apply_leaves_at_most_concurrency_keys_unknown(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, monkeypatch
) -> None:
    server.latency_ms = 200
    root = make(tmp_path, count=30, concurrency=3, ledger=on_db(postgres, db))
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    child = spawn(root, server.url, TOKEN, "--auto-approve")
    wait_until(lambda: len(server.received) >= 7)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=20)
    time.sleep(0.4)  # the sandbox answers what was in flight
    states = pg_ledger(postgres, db).read().states
    unknown = [k for k, s in states.items() if s.status is KeyStatus.UNKNOWN]
    sent = [k for k, s in states.items() if s.status is KeyStatus.SENT]
    assert len(unknown) <= 3, unknown  # at most the requests in flight
    assert len(sent) + len(unknown) == len(states)
    # Claimed one by one, never in batches: every key in the ledger was received or in flight.
    assert len(states) <= len(server.received) + 3 < 30
    assert not ledger_path(root).exists()  # the file ledger was never touched


# -- reconcile on the shared ledger --------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_reconcile_settles_unknown_sends_on_the_shared_ledger(
    tmp_path: Path, server: SandboxServer, postgres: PgServer, db: str, capsys
) -> None:
    from commbox_yaml.sandbox import Fault

    root = make(tmp_path, count=4, concurrency=1, ledger=on_db(postgres, db))
    commbox = root / "commbox.yaml"
    commbox.write_text(commbox.read_text().replace("timeout_s: 10}", "timeout_s: 10, "
                                                   "reconcile_after_s: 0}"))  # fmt: skip
    server.script(Fault(store=True, drop=True), Fault(drop=True))
    assert apply(root) == 1  # two sends ended unknown
    plan = json.loads(output(capsys, root, "plan", "--json"))
    assert plan["summary"]["unknown"] == 2
    results = json.loads(output(capsys, root, "reconcile", "--json"))
    found = {r["key"]: r for r in results["results"]}
    assert sorted(r["result"] for r in found.values()) == ["absent", "sent"]
    stored = next(r for r in found.values() if r["result"] == "sent")
    objects = {str(r.data["Message"]): r.object_id for r in server.accepted if r.data}
    assert stored["object_id"] in objects.values()
    assert apply(root) == 0  # the absent one, once
    counts = delivered(server)
    assert [counts[text(n)] for n in range(4)] == [1, 1, 1, 1]
    plan = json.loads(output(capsys, root, "plan", "--json"))
    assert plan["summary"]["unchanged"] == 4
