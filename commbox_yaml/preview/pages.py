"""The folder of a site's message pages: each page written over the one a previous run left
under its name, and the pages no message has any more removed.

A page that exists already is written over in place (its bytes, then its length) rather than
truncated first: on ext4, a file truncated to nothing and written again is flushed to disk
when it is closed, which made writing 10,000 pages over themselves cost about a second.
Creating and deleting the pages on every run would cost the file system more still.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

_SUFFIX = ".html"
_OLD = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NEW = _OLD | os.O_TRUNC


class PageFolder:
    """`with PageFolder(path) as pages:` write each page with `pages.write(name, text)`;
    leaving the block removes every `*.html` the run did not write."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._prefix = os.path.join(path, "")
        self._old = {n for n in os.listdir(path) if os.path.splitext(n)[1] == _SUFFIX}
        self._stale = set(self._old)

    def write(self, name: str, text: str) -> None:
        data = text.encode("utf-8")
        old = name in self._old
        fd = os.open(self._prefix + name, _OLD if old else _NEW, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if old:
                os.ftruncate(fd, len(data))  # the old page may have been longer
        finally:
            os.close(fd)
        self._stale.discard(name)

    def __enter__(self) -> PageFolder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            for name in self._stale:
                os.unlink(self._prefix + name)
