"""Corporate networks: a real CONNECT proxy in front of a real TLS server with its own CA."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commbox_yaml.ledger import KeyStatus
from tests.sending import apply, events, read_request
from tests.test_apply_faults import TOKEN, key, make, states


@dataclass
class Authority:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A private CA and a server certificate for 127.0.0.1 that it signed."""
    where = tmp_path_factory.mktemp("ca")
    ca, ca_key = where / "ca.pem", where / "ca-key.pem"
    cert, key_file, csr = where / "server.pem", where / "server-key.pem", where / "server.csr"
    ext = where / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=commbox-yaml test CA", "-keyout", str(ca_key),
         "-out", str(ca)],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key_file), "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert)],
    ]  # fmt: skip
    for command in run:
        subprocess.run(command, check=True, capture_output=True)
    return Authority(ca, cert, key_file)


class _Listener:
    """A threaded TCP server on 127.0.0.1; `handle(conn)` runs per connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, ssl.SSLError):
            conn.settimeout(10)
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class TLSApi(_Listener):
    """Answers every Create Object with a new object id, over TLS with the test CA's cert."""

    def __init__(self, authority: Authority) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(authority.cert, authority.key)
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with self.context.wrap_socket(conn, server_side=True) as tls:
            while True:
                request = read_request(tls)
                if not request:
                    return
                with self._lock:
                    self.received.append(request)
                    object_id = 500 + len(self.received)
                body = json.dumps({"status": "200", "data": {"id": object_id}}).encode()
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )


@dataclass
class Proxy(_Listener):
    """A CONNECT proxy: records each CONNECT line, then pipes bytes both ways."""

    refuse: bool = False
    connects: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.connects.append(line)
        method, target, _ = line.split(" ", 2)
        if self.refuse or method != "CONNECT":
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with upstream:
            threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
            _pipe(conn, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def api(authority: Authority) -> Iterator[TLSApi]:
    server = TLSApi(authority)
    yield server
    server.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMMBOX_API_TOKEN", TOKEN)
    return monkeypatch


def _project(root: Path, api: TLSApi, ca_bundle: Path | None, count: int = 3) -> Path:
    make(root, count=count)
    if ca_bundle is not None:
        text = (root / "commbox.yaml").read_text()
        text = text.replace("api:\n", f"api:\n  ca_bundle: {ca_bundle}\n", 1)
        (root / "commbox.yaml").write_text(text)
    return root


@pytest.mark.parametrize("case", ["HTTPS_PROXY", "https_proxy"])
def test_apply_goes_through_a_connect_proxy_trusting_the_configured_ca(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, api: TLSApi, authority: Authority, case: str
) -> None:
    proxy = Proxy()
    try:
        clean_env.setenv(case, f"http://127.0.0.1:{proxy.port}")
        clean_env.setenv("COMMBOX_BASE_URL", f"https://127.0.0.1:{api.port}")
        root = _project(tmp_path, api, authority.ca)
        assert apply(root) == 0
    finally:
        proxy.close()
    assert proxy.connects
    assert all(c.startswith(f"CONNECT 127.0.0.1:{api.port} HTTP/") for c in proxy.connects)
    assert len(api.received) == 3
    assert {s.status for s in states(root).values()} == {KeyStatus.SENT}
    assert b"Authorization: Bearer " + TOKEN.encode() in api.received[0]


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_the_ca_bundle_can_come_from_the_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, api: TLSApi, authority: Authority, variable: str
) -> None:
    clean_env.setenv(variable, str(authority.ca))
    clean_env.setenv("COMMBOX_BASE_URL", f"https://127.0.0.1:{api.port}")
    root = _project(tmp_path, api, None, count=1)
    assert apply(root) == 0
    assert len(api.received) == 1


def test_without_the_ca_the_certificate_is_refused_and_nothing_is_sent(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, api: TLSApi
) -> None:
    clean_env.setenv("COMMBOX_BASE_URL", f"https://127.0.0.1:{api.port}")
    root = _project(tmp_path, api, None, count=2)
    assert apply(root) == 1
    assert api.received == []
    assert {s.status for s in states(root).values()} == {KeyStatus.FAILED}


def test_a_proxy_that_refuses_the_connect_is_failed_not_unknown(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, api: TLSApi, authority: Authority
) -> None:
    proxy = Proxy(refuse=True)
    try:
        clean_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        clean_env.setenv("COMMBOX_BASE_URL", f"https://127.0.0.1:{api.port}")
        root = _project(tmp_path, api, authority.ca, count=2)
        assert apply(root) == 1
    finally:
        proxy.close()
    assert proxy.connects, "the proxy was not asked"
    assert api.received == []
    final = states(root)
    assert final[key(0)].status is KeyStatus.FAILED
    assert all(s.status is KeyStatus.FAILED for s in final.values())
    assert not any(e["event"] == "unknown" for e in events(root))


def test_no_proxy_sends_directly(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, api: TLSApi, authority: Authority
) -> None:
    proxy = Proxy()
    try:
        clean_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        clean_env.setenv("NO_PROXY", "example.com, 127.0.0.1")
        clean_env.setenv("COMMBOX_BASE_URL", f"https://127.0.0.1:{api.port}")
        root = _project(tmp_path, api, authority.ca, count=1)
        assert apply(root) == 0
    finally:
        proxy.close()
    assert proxy.connects == []
    assert len(api.received) == 1
