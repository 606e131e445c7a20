"""`preview --serve`: the site on 127.0.0.1, built again when the project changes.

The open page polls `/__version` (a few lines of inline script, no websocket library) and
reloads when the number changes: after a message, template or vars file is saved.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.3
_IGNORED = {".commbox", ".git", "__pycache__", ".venv"}


class PreviewServer:
    """Serves `out` and rebuilds it (`rebuild(version)`) when a file under `root` changes.
    A page reloads when the served version is not the one it was written for, so a change
    made before its first poll still reaches it."""

    def __init__(
        self,
        out: Path,
        root: Path,
        rebuild: Callable[[int], object],
        port: int = 0,
        on_error: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.out = out
        self.root = root
        self.rebuild = rebuild
        self.on_error = on_error
        self.version = 1
        self._stop = threading.Event()
        handler = functools.partial(_Handler, self, directory=str(out))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._signature = _signature(root, out)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, name="preview-http", daemon=True).start()
        threading.Thread(target=self._watch, name="preview-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            signature = _signature(self.root, self.out)
            if signature == self._signature:
                continue
            self._signature = signature
            try:
                self.rebuild(self.version + 1)  # its pages know their version
            except Exception as exc:  # a broken edit: keep serving the last good site
                self.on_error(str(exc))
                continue
            self.version += 1


def _signature(root: Path, out: Path) -> tuple[tuple[str, int, int], ...]:
    """Every project file's path, size and modification time (the site's own aside): a
    change to any is a change."""
    found = []
    site = out.resolve()
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if (parts and parts[0] in _IGNORED) or path.resolve().is_relative_to(site):
            continue
        with contextlib.suppress(OSError):
            stat = path.stat()
            if path.is_file():
                found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, server: PreviewServer, *args: Any, **kwargs: Any) -> None:
        self.preview = server
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/__version":
            body = str(self.preview.version).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        # A page rebuilt within the second keeps its Last-Modified: never answer 304 (the
        # browser would show the page it has, and reload again for ever).
        del self.headers["If-Modified-Since"]
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass
