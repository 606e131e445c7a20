"""Reaching CommBox from a command: where to, with which token, and the run's own sandbox.

apply and reconcile both talk to CommBox, so both set it up here: the destination checked
before anything is read, the token from the environment (refused before it could be sent
astray), and with --sandbox a local stand-in that lives as long as the command's client.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.plan import SANDBOX

if TYPE_CHECKING:
    from commbox_yaml.client import Client

BASE_URL_SOURCE = "the base URL (api.base_url or COMMBOX_BASE_URL)"
SANDBOX_TOKEN = "sandbox"


def destination(ctx: Context, sandbox: bool) -> str:
    """Where a plan is for: the sandbox, or the API's base URL (checked, so never a secret)."""
    if sandbox:
        return SANDBOX
    from commbox_yaml.endpoint import check_base_url  # urllib3 only for commands that need it

    return check_base_url(ctx.project().api.base_url, BASE_URL_SOURCE)


def api_token(ctx: Context, sandbox: bool) -> str:
    """The sandbox's token, or the API key from api.token_env, redacted from then on."""
    if sandbox:
        return SANDBOX_TOKEN
    name = ctx.project().api.token_env
    token = os.environ.get(name, "").strip()
    if not token:
        raise UserError(
            f"no API token: set the environment variable {name} (api.token_env) to your "
            "CommBox API key; nothing was sent. To rehearse without one: apply --sandbox"
        )
    ctx.console.redactor.add([token, os.environ[name]])
    if not (token.isascii() and token.isprintable()):  # never echo it: HTTP libraries would
        raise UserError(
            f"the environment variable {name} (api.token_env) holds a line break, another "
            "control character or a non-ASCII character, which an HTTP header cannot carry; "
            "set it to the API key alone; nothing was sent"
        )
    return token


@contextlib.contextmanager
def remote_client(ctx: Context, sandbox: bool, target: str, token: str) -> Iterator[Client]:
    """A client for `target`, or for a sandbox of this run's own; both closed on the way out."""
    from commbox_yaml.client import client_for  # urllib3 only for commands that need it

    project = ctx.project()
    with _sandbox_if(sandbox) as sandbox_url:
        client = client_for(project.api, project.root, sandbox_url or target, token)
        try:
            yield client
        finally:
            client.close()


@contextlib.contextmanager
def _sandbox_if(enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from commbox_yaml.sandbox import SandboxServer

    # One run's own sandbox: nothing reads its objects back (reconcile starts its own), so
    # it keeps nothing, and a rehearsal of 100,000 messages holds no more than one of 10.
    server = SandboxServer(record_requests=False, store_objects=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
