"""Helpers for the tests that apply projects to the sandbox and read the ledger back."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.ledger import KeyState, Ledger
from commbox_yaml.sandbox import SandboxServer


def apply(root: Path, *args: str) -> int:
    """`apply --auto-approve` in-process, as a CI job runs it."""
    return main(["-C", str(root), "apply", "--auto-approve", *args])


def ledger_path(root: Path) -> Path:
    return root / ".commbox" / "ledger.jsonl"


def file_ledger(root: Path) -> Ledger:
    """The project's file ledger, shown as `.commbox/ledger.jsonl`."""
    return Ledger(ledger_path(root), ".commbox/ledger.jsonl")


def states(root: Path, name: str = "ledger.jsonl") -> dict[str, KeyState]:
    """Every key's state in the ledger `.commbox/NAME`."""
    return Ledger(root / ".commbox" / name, name).read().states


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, token: str) -> None:
    """Send to `url` with `token`, as a CI job's environment does."""
    monkeypatch.setenv("COMMBOX_BASE_URL", url)
    monkeypatch.setenv("COMMBOX_API_TOKEN", token)


def free_port() -> int:
    """A port nothing listens on now (for a server started in a child process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def events(root: Path) -> list[dict[str, object]]:
    """Every ledger event, in order (none when there is no ledger)."""
    if not ledger_path(root).exists():
        return []
    return [json.loads(line) for line in ledger_path(root).read_text().splitlines()]


def delivered(server: SandboxServer) -> collections.Counter[str]:
    """How many objects the server created per Message text: the deliveries."""
    return collections.Counter(str(r.data["Message"]) for r in server.accepted if r.data)


def spawn(root: Path, url: str, token: str, *args: str) -> subprocess.Popen[str]:
    """`commbox-yaml apply ARGS` as a separate process, against the server at `url`."""
    env = {**os.environ, "COMMBOX_BASE_URL": url, "COMMBOX_API_TOKEN": token}
    return subprocess.Popen(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), "apply", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def read_request(sock: socket.socket) -> bytes:
    """One HTTP request off a raw socket: its head and its Content-Length of body, or what
    arrived before the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@dataclass
class RawServer:
    """One connection at a time; `handler(sock, received)` does what it likes with each."""

    handler: Callable[[socket.socket, list[bytes]], None]
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    self.handler(conn, self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


@contextlib.contextmanager
def raw_server(handler: Callable[[socket.socket, list[bytes]], None]) -> Iterator[RawServer]:
    running = RawServer(handler)
    try:
        yield running
    finally:
        running.close()


@contextlib.contextmanager
def sandbox_command(http: urllib3.PoolManager, *options: str) -> Iterator[tuple[str, str]]:
    """`commbox-yaml sandbox --port 0 OPTIONS` run as a user runs it, in a process of its own:
    its URL and the line it prints of its faults; stopped (SIGTERM) when the block ends."""
    command = [sys.executable, "-m", "commbox_yaml", "sandbox", "--port", "0", *options]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            first, _export, faults = (process.stdout.readline() for _ in range(3))
            yield first.split()[4], faults.strip()
            http.clear()
            process.terminate()
            process.communicate(timeout=5)
        finally:
            if process.poll() is None:
                process.kill()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1, made by openssl."""
    cert, key_file = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key_file), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key_file
