from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import urllib3

from commbox_yaml.sandbox import SandboxServer
from tests.leaks import LeakGuard, leak_report

if TYPE_CHECKING:
    from tests.pg import PgServer


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A sandbox on 127.0.0.1 for the test's duration."""
    with SandboxServer() as running:
        yield running


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    """A urllib3 pool for requests a test makes by hand to a server on 127.0.0.1."""
    # retries=False: every attempt is the test's own, as with the tool's explicit retry policy.
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))
    yield pool
    pool.clear()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the whole session (tests/pg.py)."""
    from tests.pg import running_server

    with running_server() as running:
        yield running


@pytest.fixture(autouse=True)
def leak_guard(request: pytest.FixtureRequest) -> Iterator[LeakGuard]:
    """Fails every test whose output, ledgers or plan files show a secret (tests/leaks.py).

    What the test reads with capsys/capfd or from a child process is recorded here; what it
    leaves unread, and the files under its tmp_path, are checked when it ends
    (pytest_runtest_makereport below). A test declares more secrets with
    `leak_guard.register(value)`.
    """
    guard = LeakGuard(request.module)
    request.node.stash[GUARD] = guard
    read = pytest.CaptureFixture.readouterr
    communicate = subprocess.Popen.communicate

    def recording_readouterr(self: pytest.CaptureFixture[Any]) -> Any:
        result = read(self)
        guard.seen("captured output", result.out, result.err)
        return result

    def recording_communicate(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        result = communicate(self, *args, **kwargs)
        guard.seen("a child process's output", *result)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pytest.CaptureFixture, "readouterr", recording_readouterr)
        patch.setattr(subprocess.Popen, "communicate", recording_communicate)
        yield guard


GUARD = pytest.StashKey[LeakGuard]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        guard = item.stash.get(GUARD, None)
        if guard is not None:
            guard.snapshot_environment()  # before monkeypatch restores it


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    guard = item.stash.get(GUARD, None)
    if call.when == "teardown" and guard is not None and report.passed:
        tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
        found = leak_report(guard, report.sections, tmp_path)
        if found:
            report.outcome = "failed"
            report.longrepr = found
    return report
