"""Where requests go: the base URL as urllib3 will route it, the proxy from the environment,
and the CAs to trust. Checked before anything is sent, with the parser urllib3 sends with."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from commbox_yaml.errors import UserError

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def check_base_url(base_url: str, where: str = "api.base_url") -> str:
    """The base URL as urllib3 will use it; refused when it could send the token astray.

    Checked with urllib3's own parser (the one that routes the request), so that a URL that
    another parser reads differently (`http://127.0.0.2:4119\\@localhost`) cannot pass the
    plain-http check for one host and connect to another.
    """
    text = base_url.strip()
    if "\\" in text or any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise UserError(
            f"{where} {text!r} contains a backslash, a space or a control character; "
            "write it as https://host[:port][/path]"
        )
    try:
        url = parse_url(text)
    except LocationParseError as exc:
        raise UserError(
            f"{where} {text!r} is not a valid URL ({exc}); write it as https://host[:port][/path]"
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UserError(
            f"{where} {text!r} is not an http(s) URL with a host; "
            "write it as https://host[:port][/path]"
        )
    if url.auth is not None or "@" in text:
        raise UserError(
            f"{where} must not hold a user name or password ('@'); the API token is sent as a "
            f"Bearer header (api.token_env)"
        )
    if url.query is not None or url.fragment is not None:
        raise UserError(f"{where} {text!r} must not have a query ('?') or a fragment ('#')")
    if url.scheme == "http" and url.host.lower() not in LOCAL_HOSTS:
        raise UserError(
            f"refusing to send the API token to http://{url.host}: use https "
            "(plain http is allowed only to 127.0.0.1 or localhost, e.g. for the sandbox); "
            "nothing was sent"
        )
    return text.rstrip("/")


def proxy_for(base_url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy URL from HTTPS_PROXY (either case), unless NO_PROXY covers the host.

    Plain http never goes through a proxy: it is allowed only to this machine (the sandbox),
    and a proxy would read the token in clear.
    """
    url = parse_url(base_url)
    if url.scheme != "https":
        return None
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            proxies.setdefault(lowered[: -len("_proxy")], value)
    for name, value in environ.items():  # lower-case names win, as curl and requests do
        if value and name.endswith("_proxy") and name.islower():
            proxies[name[: -len("_proxy")]] = value
    proxy = proxies.get("https")
    if not proxy or _bypassed(url.host or "", url.port, proxies.get("no", "")):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether NO_PROXY names the host: `*`, the host, a domain suffix (`.corp` or `corp`),
    optionally with `:port`, as curl reads it."""
    host = host.strip("[]").lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        name = name.strip("[]").lstrip("*").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def ca_bundle(configured: Path | None, environ: Mapping[str, str]) -> str | None:
    """The CA file to trust: api.ca_bundle, else SSL_CERT_FILE, else REQUESTS_CA_BUNDLE."""
    if configured is not None:
        return str(configured)
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = environ.get(name)
        if value:
            return value
    return None
