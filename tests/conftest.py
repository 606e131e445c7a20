from __future__ import annotations

from collections.abc import Iterator

import pytest

from commbox_yaml.sandbox import SandboxServer


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A sandbox on 127.0.0.1 for the test's duration."""
    with SandboxServer() as running:
        yield running
