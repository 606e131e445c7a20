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
_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_OLD = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class PageFolder:
    """`with PageFolder(path) as pages:` write each page with `pages.write(name, text)`;
    leaving the block removes every `*.html` the run did not write."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._dir = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        self._old = {n for n in os.listdir(self._dir) if os.path.splitext(n)[1] == _SUFFIX}
        self._stale = set(self._old)

    def write(self, name: str, text: str) -> None:
        data = text.encode("utf-8")
        old = name in self._old
        fd = os.open(name, _OLD if old else _NEW, 0o666, dir_fd=self._dir)
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
        try:
            if kind is None:
                for name in self._stale:
                    os.unlink(name, dir_fd=self._dir)
        finally:
            os.close(self._dir)
