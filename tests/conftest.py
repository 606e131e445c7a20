from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from commbox_yaml.sandbox import SandboxServer

if TYPE_CHECKING:
    from tests.pg import PgServer


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A sandbox on 127.0.0.1 for the test's duration."""
    with SandboxServer() as running:
        yield running


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the whole session (tests/pg.py)."""
    from tests.pg import running_server

    with running_server() as running:
        yield running
