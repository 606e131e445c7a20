"""A local stand-in for CommBox's Create Object endpoint, for rehearsals and tests.

`SandboxServer` is a real threaded HTTP/1.1 server on 127.0.0.1 that answers
`POST /streams/{STREAM_ID}/objects` the way the reference describes: it checks the Bearer token
and the body's shape, answers 200 with `data.id` (or 400/401/404/501 with
`status`/`description`/`response_time`), and records every request it received. Faults can be
injected periodically (latency, 429 with Retry-After, 5xx, dropped connections) or scripted one
request at a time with `Fault`, so a client's retry and "unknown outcome" paths can be exercised
over real sockets.

Multipart bodies are parsed with the standard library's `email` package on purpose: the client
builds them with urllib3, and a sandbox using the same library would hide its mistakes.
"""

from __future__ import annotations

from commbox_yaml.sandbox.server import SandboxServer
from commbox_yaml.sandbox.wire import (
    FIRST_ID,
    Fault,
    Received,
    ReceivedFile,
    check_data,
    log_line,
    parse_body,
)

__all__ = [
    "FIRST_ID",
    "Fault",
    "Received",
    "ReceivedFile",
    "SandboxServer",
    "check_data",
    "log_line",
    "parse_body",
]
