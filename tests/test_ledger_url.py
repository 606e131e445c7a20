"""A ledger database URL that cannot be read, or whose password holds `@` or `/`: the error is
worded from the parts that were read, and no piece of the password ever shows."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.sandbox import SandboxServer
from tests.ledgers import TOKEN, make
from tests.pg import PgServer
from tests.sending import apply, delivered

PIECES = ("Rolepw", "8812xyz", "Rolepw%2f8812xyz")
NOT_SHOWN = "the password and the rest are not shown"


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, server: SandboxServer, leak_guard: object
) -> pytest.MonkeyPatch:
    for name in ("COMMBOX_LEDGER_URL", "PGPASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMMBOX_BASE_URL", server.url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    leak_guard.register(*PIECES)  # type: ignore[attr-defined]
    return monkeypatch


def _run(root: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-C", str(root), *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


MALFORMED = [
    (
        "postgresql://commbox:Rolepw%2f8812xyz@[::1]x:55432/ledger",
        "after the host's ']' comes something other than :PORT (read so far: user 'commbox', "
        "database 'ledger'; " + NOT_SHOWN + ")",
    ),
    (
        "postgresql://commbox:Rolepw8812xyz@[::1:55432/ledger",
        "an IPv6 host misses its closing ']' (read so far: user 'commbox', database 'ledger'; "
        + NOT_SHOWN
        + ")",
    ),
    (
        "postgresql://commbox:Rolepw?8812xyz@db.example:5432/ledger",
        "a '?' comes before the '@' that ends the password (write it %3F) (" + NOT_SHOWN + ")",
    ),
    (
        "postgresql://commbox:Rolepw8812xyz@db.example:99999/ledger",
        "the port is not a number from 1 to 65535 (read so far: user 'commbox', host "
        "'db.example', database 'ledger'; " + NOT_SHOWN + ")",
    ),
    (
        "postgresql://commbox:Rolepw8812xyz@db.ex%20ample/ledger",
        "the host is not a host name, an IP address or [an IPv6 address] (a password with an "
        "unencoded '/', '?' or '#'?) (read so far: user 'commbox', database 'ledger'; "
        + NOT_SHOWN
        + ")",
    ),
]


@pytest.mark.parametrize(("url", "why"), MALFORMED)
@pytest.mark.parametrize("command", [["plan"], ["ledger", "path"], ["apply", "--auto-approve"]])
def test_a_malformed_url_from_the_environment_shows_no_password(
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    server: SandboxServer,
    url: str,
    why: str,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make(tmp_path, count=2)
    env.setenv("COMMBOX_LEDGER_URL", url)
    code, shown = _run(root, capsys, *command)
    assert code == 1
    assert shown.splitlines() == [
        f"error: COMMBOX_LEDGER_URL is not a PostgreSQL URL commbox-yaml can read: {why}; "
        "write it as postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, with @ : / ? # in "
        "the password written %40 %3A %2F %3F %23"
    ]
    assert server.received == []
    for piece in PIECES:
        assert piece not in shown


def test_a_malformed_url_in_commbox_yaml_is_a_validation_error(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, ledger="url: 'postgresql://commbox:Rolepw8812xyz@[::1:55432/ledger'")
    code, shown = _run(root, capsys, "validate")
    assert code == 1
    assert shown.splitlines()[0].startswith(
        "error: commbox.yaml:6:15: ledger.url: the URL is not a PostgreSQL URL commbox-yaml "
        "can read: an IPv6 host misses its closing ']'"
    )
    for piece in PIECES:
        assert piece not in shown


def test_a_refused_connection_is_worded_from_its_parts(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=2)
    port = _closed_port()
    env.setenv("COMMBOX_LEDGER_URL", f"postgresql://commbox:Rolepw8812xyz@127.0.0.1:{port}/ledger")
    code, shown = _run(root, capsys, "plan")
    assert code == 1
    assert shown.splitlines() == [
        f"error: cannot connect to the ledger database postgresql://commbox@127.0.0.1:{port}/"
        "ledger (namespace default): nothing accepts connections at 127.0.0.1, port "
        f"{port} (connection refused); check ledger.url (or COMMBOX_LEDGER_URL) and the "
        "password (in COMMBOX_LEDGER_URL, PGPASSWORD or ~/.pgpass; it is not shown)"
    ]


def test_an_unresolvable_host_is_named_without_the_password(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path, count=2)
    env.setenv("COMMBOX_LEDGER_URL", "postgresql://commbox:Rolepw8812xyz@no-such-host.invalid/l")
    code, shown = _run(root, capsys, "plan")
    assert code == 1
    assert "the host no-such-host.invalid could not be found (DNS)" in shown
    for piece in PIECES:
        assert piece not in shown


@pytest.fixture
def awkward_role(postgres: PgServer) -> tuple[str, str, str]:
    """A role whose password holds '@', '/' and ':' (unencoded in the URL), owning a database."""
    role = f"awk_{uuid.uuid4().hex[:10]}"
    password = "Rolepw@8812xyz/a:b"
    database = f"ledger_{role}"
    with postgres.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{database}" OWNER {role}')
    return role, password, database


def test_a_password_with_an_unencoded_at_sign_works_and_never_shows(
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    server: SandboxServer,
    postgres: PgServer,
    awkward_role: tuple[str, str, str],
    leak_guard: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, password, database = awkward_role
    leak_guard.register(password)  # type: ignore[attr-defined]
    root = make(tmp_path, count=2, ledger="namespace: team")
    url = f"postgresql://{role}:{password}@127.0.0.1:{postgres.port}/{database}"
    env.setenv("COMMBOX_LEDGER_URL", url)
    code, shown = _run(root, capsys, "ledger", "init")
    assert code == 0, shown
    assert shown == (
        f"Created postgresql://{role}@127.0.0.1:{postgres.port}/{database} (namespace team)\n"
    )
    assert apply(root) == 0
    assert sum(delivered(server).values()) == 2
    # A wrong password, in the same awkward form: refused, worded from the parts.
    env.setenv("COMMBOX_LEDGER_URL", url.replace("8812xyz", "8812xyq"))
    code, shown = _run(root, capsys, "plan")
    assert code == 1
    assert f"password authentication failed for user '{role}'" in shown
    assert "8812xy" not in shown
    assert "Rolepw" not in shown


def test_parts_are_read_as_written() -> None:
    from commbox_yaml.ledger.url import MalformedUrl, parse

    parts = parse("postgresql://u%40x:p%2Fw@[::1]:5433,db2.example/led%20ger?sslmode=require")
    assert parts.user == "u@x"
    assert parts.password == "p/w"
    assert parts.hosts == ("::1", "db2.example")
    assert parts.ports == ("5433", "")
    assert parts.database == "led ger"
    assert parts.params() == {
        "sslmode": "require",
        "host": "::1,db2.example",
        "port": "5433,",
        "user": "u@x",
        "password": "p/w",
        "dbname": "led ger",
    }
    assert parts.display("n") == "postgresql://u%40x@[::1]:5433,db2.example/led%20ger (namespace n)"
    with pytest.raises(MalformedUrl):
        parse("mysql://x@y/z")
