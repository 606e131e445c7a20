"""A ledger database URL: read by this module alone, never handed to a library whole.

libpq quotes a URL it cannot parse in its error message, password and all, and splits the
userinfo at the first `@`, so an unencoded `@` in a password puts the rest of it in a "failed
to resolve host" message. Here the URL is taken apart once (the userinfo ends at the last
`@`), each part is checked, and the database driver gets the parts as separate parameters.
An error names only the parts that were read correctly, never the password and never the
text that could not be read (it may be a piece of the password).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

SCHEMES = ("postgresql", "postgres")
FORM = (
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, with @ : / ? # in the password "
    "written %40 %3A %2F %3F %23"
)
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_OPTION = re.compile(r"[a-z_]+\Z")
_ORDER = ("user", "host", "port", "data")  # the parts as a URL writes them (first 4 letters)


class MalformedUrl(ValueError):
    """What is wrong, and the parts read correctly so far (no password, no unread text)."""

    def __init__(self, what: str, parsed: dict[str, str]) -> None:
        super().__init__(what)
        self.what = what
        self.parsed = parsed

    def explain(self, source: str) -> str:
        in_order = sorted(self.parsed.items(), key=lambda item: _ORDER.index(item[0][:4]))
        shown = ", ".join(f"{name} {value!r}" for name, value in in_order)
        read = f"read so far: {shown}; " if shown else ""
        return (
            f"{source} is not a PostgreSQL URL commbox-yaml can read: {self.what} ({read}the "
            f"password and the rest are not shown); write it as {FORM}"
        )


@dataclass(frozen=True)
class LedgerUrl:
    scheme: str
    user: str | None
    password: str | None
    hosts: tuple[str, ...]  # as libpq takes them: IPv6 without brackets; "" is the local socket
    ports: tuple[str, ...]
    database: str | None
    options: tuple[tuple[str, str], ...]  # the query's parameters other than the password

    def params(self) -> dict[str, str]:
        """Keyword parameters for the driver: each part on its own, no URL to quote."""
        params = dict(self.options)
        if any(self.hosts):
            params["host"] = ",".join(self.hosts)
        if any(self.ports):
            params["port"] = ",".join(self.ports)
        for name, value in (("user", self.user), ("password", self.password)):
            if value is not None:
                params[name] = value
        if self.database is not None:
            params["dbname"] = self.database
        return params

    def display(self, namespace: str) -> str:
        """`postgresql://user@host:port/db (namespace NAME)`: no password, no query."""
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        places = ",".join(
            _bracketed(host) + (f":{port}" if port else "")
            for host, port in zip(self.hosts, self.ports, strict=True)
        )
        database = f"/{quote(self.database, safe='')}" if self.database is not None else ""
        return f"{self.scheme}://{user}{places}{database} (namespace {namespace})"


def parse(url: str) -> LedgerUrl:
    """The URL's parts, each checked; MalformedUrl says what is wrong without showing it."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        raise MalformedUrl("it does not start with postgresql://", {})
    before_query, _, query = rest.partition("?")
    if "@" not in before_query and "@" in query:
        raise MalformedUrl("a '?' comes before the '@' that ends the password (write it %3F)", {})
    userinfo, at, authority_and_path = before_query.rpartition("@")
    if not at:
        userinfo, authority_and_path = "", before_query
    user, colon, password = userinfo.partition(":")
    parsed: dict[str, str] = {}
    if user:
        parsed["user"] = unquote(user)
    authority, slash, path = authority_and_path.partition("/")
    database = unquote(path) if slash and path else None
    if database is not None:
        if "/" in path:
            raise MalformedUrl("the database name holds a '/' (write it %2F)", parsed)
        parsed["database"] = database
    hosts, ports = _places(authority, parsed)
    options, query_password = _options(query, parsed)
    return LedgerUrl(
        scheme=scheme,
        user=unquote(user) if user else None,
        password=unquote(password) if colon else query_password,
        hosts=hosts,
        ports=ports,
        database=database,
        options=options,
    )


def _places(authority: str, parsed: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """HOST[:PORT], or several separated by commas, as libpq allows."""
    hosts, ports = [], []
    for number, place in enumerate(authority.split(",")):
        suffix = "" if number == 0 else f" {number + 1}"
        host, port = _place(place, parsed)
        if host:
            parsed[f"host{suffix}"] = host
        hosts.append(host)
        ports.append(_port(port, parsed) if port is not None else "")
        if port:
            parsed[f"port{suffix}"] = port
    return tuple(hosts), tuple(ports)


def _place(place: str, parsed: dict[str, str]) -> tuple[str, str | None]:
    """The host, checked, and the port's text (None when there is no `:PORT`)."""
    if place.startswith("["):
        inside, closing, after = place[1:].partition("]")
        if not closing:
            raise MalformedUrl("an IPv6 host misses its closing ']'", parsed)
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise MalformedUrl("the host in [ ] is not an IPv6 address", parsed) from None
        if after and not after.startswith(":"):
            raise MalformedUrl("after the host's ']' comes something other than :PORT", parsed)
        return inside, after[1:] if after else None
    host, colon, port = place.partition(":")
    host = unquote(host)
    if host and not (host.startswith("/") or _HOST_NAME.match(host)):
        raise MalformedUrl(
            "the host is not a host name, an IP address or [an IPv6 address] (a password with "
            "an unencoded '/', '?' or '#'?)",
            parsed,
        )
    return host, port if colon else None


def _port(text: str, parsed: dict[str, str]) -> str:
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise MalformedUrl("the port is not a number from 1 to 65535", parsed)
    return text


def _options(query: str, parsed: dict[str, str]) -> tuple[tuple[tuple[str, str], ...], str | None]:
    options, password = [], None
    for pair in filter(None, query.split("&")):
        name, equals, value = pair.partition("=")
        if not equals or not _OPTION.match(name):
            raise MalformedUrl("a query parameter is not NAME=VALUE", parsed)
        if name == "password":
            password = unquote(value)
        else:
            options.append((name, unquote(value)))
    return tuple(options), password


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else quote(host, safe="")


def password_in(url: str) -> str | None:
    """The password written into a URL (userinfo or `?password=`), if any; for a URL that
    cannot be read, the whole userinfo and query (what a password could be part of)."""
    try:
        return parse(url).password
    except MalformedUrl:
        userinfo = url.partition("://")[2].partition("?")[0].rpartition("@")[0]
        return userinfo.partition(":")[2] or None


def display(url: str, namespace: str) -> str:
    """`postgresql://user@host:port/db (namespace NAME)`: no password, no query."""
    return parse(url).display(namespace)
