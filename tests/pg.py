"""A throwaway PostgreSQL server for the tests, from the machine's PostgreSQL programs.

One server per test session, in a temporary folder, on 127.0.0.1 and a free port, with
password authentication (scram-sha-256) so that the password tests mean something. PostgreSQL
refuses to run as root: as root, the server runs as the `postgres` system user (or `nobody`).
Each test gets a fresh database owned by an ordinary role (no superuser), as a team's would be.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.sending import free_port

ADMIN, ADMIN_PASSWORD = "admin", "admin-7d1f0c2b9e"
ROLE, ROLE_PASSWORD = "commbox", "pw-Qx81vTz0m2Lr"


def bindir() -> Path:
    """Where initdb and pg_ctl are: pg_config's answer, else the newest Debian-style install."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    installs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if installs:
        return Path(installs[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")


@dataclass
class PgServer:
    folder: Path
    port: int
    user: str | None  # the system user the server runs as, when started by root
    _databases: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str, role: str = ROLE, password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{role}{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.url(database, ADMIN, ADMIN_PASSWORD), autocommit=True, connect_timeout=10
        )

    def new_database(self) -> str:
        name = f"ledger_{os.getpid()}_{next(self._databases)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return name

    def sessions(self, database: str) -> list[int]:
        """Backend pids of commbox-yaml's connections to a database."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND application_name = 'commbox-yaml'",
                (database,),
            ).fetchall()
        return [row[0] for row in rows]

    def terminate(self, database: str) -> int:
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = 'commbox-yaml'",
                (database,),
            ).fetchall()
        return len(rows)


def _as_user(user: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


@contextmanager
def running_server() -> Iterator[PgServer]:
    programs = bindir()
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="commbox-pg-"))
    data = folder / "data"
    pwfile = folder / "pwfile"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    if user:
        entry = pwd.getpwnam(user)
        for path in (folder, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def run(*command: object) -> None:
        args = _as_user(user, [str(c) for c in command])
        subprocess.run(args, capture_output=True, text=True, check=True)

    run(
        programs / "initdb", "-D", data, "-U", ADMIN, "--pwfile", pwfile,
        "--auth", "scram-sha-256", "--encoding", "UTF8", "--no-sync",
    )  # fmt: skip
    port = free_port()
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    try:
        run(programs / "pg_ctl", "-D", data, "-o", options, "-l", folder / "log", "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from None
    server = PgServer(folder, port, user)
    try:
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
        yield server
    finally:
        subprocess.run(
            _as_user(user, [str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
