"""A ledger database URL: how to show it (never its password) and whether it holds one."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, unquote, urlsplit

SCHEMES = ("postgresql", "postgres")


def password_in(url: str) -> str | None:
    """The password written into a URL (userinfo or `?password=`), if any."""
    parts = urlsplit(url)
    try:
        if parts.password is not None:
            return unquote(parts.password)
    except ValueError:  # pragma: no cover - a malformed netloc has no readable password
        return None
    values = parse_qs(parts.query).get("password")
    return values[0] if values else None


def display(url: str, namespace: str) -> str:
    """`postgresql://user@host:port/db (namespace NAME)`: no password, no query."""
    parts = urlsplit(url)
    user = f"{quote(unquote(parts.username), safe='')}@" if parts.username else ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path} (namespace {namespace})"
