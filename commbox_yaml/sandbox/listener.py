"""The sandbox's HTTP layer: a threaded HTTP/1.1 server on 127.0.0.1 that hands each request
to `Routes` and writes its answer back."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO, cast

from commbox_yaml import __version__
from commbox_yaml.sandbox.routes import Routes
from commbox_yaml.sandbox.wire import MAX_BODY_BYTES, Answer


class Listener(ThreadingHTTPServer):
    """Serves `routes` and keeps track of its open connections, so a stop can close them."""

    daemon_threads = True
    # Never wait for handlers on close: one may be sleeping in a scripted delay.
    block_on_close = False
    # socketserver's default backlog of 5 resets connections when an apply opens 32 at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], routes: Routes, output: TextIO | None) -> None:
        self.routes = routes
        self._output = output
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away (a read timeout, a reset): nothing to tell anyone
        text = traceback.format_exc()
        (self._output or sys.stderr).write(f"commbox sandbox: internal error\n{text}")

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def shut_connections(self) -> None:
        """Wake handler threads blocked on an idle keep-alive connection."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (about 40 ms a request on Linux).
    disable_nagle_algorithm = True
    server_version = f"commbox-sandbox/{__version__}"

    def version_string(self) -> str:
        return self.server_version  # without the Python version http.server appends

    @property
    def _listener(self) -> Listener:
        return cast(Listener, self.server)

    def setup(self) -> None:
        super().setup()
        self._listener.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._listener.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sandbox prints its own line per request."""

    def _dispatch(self) -> None:
        routes = self._listener.routes
        body = self._read_body()
        if body is None:
            self.close_connection = True
            answer = routes.unreadable(self.command, self.path, self.headers)
        else:
            answer = routes.handle(self.command, self.path, self.headers, body)
        self._write(answer)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes | None:
        """The whole request body (so keep-alive stays in step), or None when unreadable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 <= length <= MAX_BODY_BYTES:
            return None
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
            except ValueError:
                return None
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _write(self, answer: Answer) -> None:
        if answer.status is None:
            self._drop()
            return
        self.send_response(answer.status)
        content_types = {name.lower() for name, _ in answer.headers}
        if "content-type" not in content_types:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _drop(self) -> None:
        # The request was read in full; closing now is "dropped after the request went out".
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
