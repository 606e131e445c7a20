"""How requests are shown: the message objects of `render --json` and `plan --json`."""

from __future__ import annotations

from typing import Any

from commbox_yaml.compile import Request


def message_object(
    request: Request, action: str = "send", changed_fields: list[str] | None = None
) -> dict[str, Any]:
    return {
        "address": request.address,
        "key": request.key,
        "action": action,
        "channel": request.channel,
        "stream": request.stream,
        "fingerprint": request.fingerprint,
        "changed_fields": changed_fields or [],
        "request": request_object(request),
    }


def request_object(request: Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "body": request.body,
        "files": [
            {"path": f.path, "name": f.name, "bytes": f.size, "sha256": f.sha256, "mime": f.mime}
            for f in request.files
        ],
    }
