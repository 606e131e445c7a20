"""The HTTP client: one connection policy for every request commbox-yaml makes to CommBox.

It owns what callers must not have to think about: the URL check (the same parser urllib3
sends with), proxies and CA bundles, pooled keep-alive connections, the Authorization header,
and a real deadline per request. Callers get a `Reply`, or one of two exceptions that say the
only thing that matters for a POST that is not idempotent:

- `NotSent`: no byte of the request left this machine (DNS, refused connection, TLS handshake,
  proxy refusal, a connect deadline): trying again cannot send it twice.
- `ReplyLost`: the request may have reached the server, but no whole reply came back (a
  dropped connection, the deadline, a reply over the size cap): the outcome is unknown.

Every request goes through urllib3's public API: a pool's `urlopen`, or the `ProxyManager`.
`connections.py` notes when a request left and holds it to its deadline; `endpoint.py` checks
where it goes.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import LocationParseError
from urllib3.util import Retry, parse_url

from commbox_yaml import __version__
from commbox_yaml.connections import POOLS, Attempt, Watchdog, track
from commbox_yaml.endpoint import ca_bundle, check_base_url, proxy_for
from commbox_yaml.errors import UserError
from commbox_yaml.project import ApiSettings

MAX_REPLY_BYTES = 1024 * 1024
_DETAIL_LIMIT = 200


class NotSent(Exception):
    """Nothing of the request left this machine."""

    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal  # no later try can do better (a refused certificate)


class ReplyLost(Exception):
    """The request may have reached the server; no whole reply came back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A whole reply; its headers are urllib3's HTTPHeaderDict (names looked up without regard
    to case)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


def _in_step(reply: Reply) -> bool:
    return True


@dataclass
class ClientSettings:
    base_url: str
    token: str
    timeout_s: float = 30
    concurrency: int = 4
    ca_bundle: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


def client_for(api: ApiSettings, root: Path, base_url: str, token: str) -> Client:
    """The client for a project's API settings (a relative CA bundle is under the project root)."""
    bundle = (root / api.ca_bundle) if api.ca_bundle else None
    return Client(ClientSettings(base_url, token, api.timeout_s, api.concurrency, bundle))


class Client:
    """Requests to one CommBox base URL, `concurrency` at a time over pooled connections."""

    def __init__(self, settings: ClientSettings) -> None:
        self.base_url = check_base_url(settings.base_url)
        self.timeout_s = settings.timeout_s
        self._headers = {
            "Authorization": f"Bearer {settings.token}",
            "Accept": "application/json",
            "User-Agent": f"commbox-yaml/{__version__}",
        }
        self._watchdog = Watchdog()
        self.proxy = proxy_for(self.base_url, settings.environ)
        self.pool = _manager(settings, self.proxy)
        # Without a proxy a request goes to the one host's pool directly: the PoolManager
        # would parse the URL and look the pool up again for every request.
        self._direct = None if self.proxy else self.pool.connection_from_url(self.base_url)
        self._post_headers: dict[str, dict[str, str]] = {}  # per content type
        self._uris: dict[str, str] = {}  # per path: the request target, as urllib3 writes it

    def close(self) -> None:
        self._watchdog.close()
        self.pool.clear()

    def post(
        self,
        path: str,
        body: bytes,
        content_type: str,
        in_step: Callable[[Reply], bool] = _in_step,
    ) -> Reply:
        """POST `body`. `in_step` judges the whole reply before its connection goes back to
        the pool: False (a reply that proves the connection out of step, such as a stray copy
        of an earlier one) closes the connection, so no later request reads what it holds."""
        headers = self._post_headers.get(content_type)
        if headers is None:
            headers = self._post_headers[content_type] = {
                **self._headers,
                "Content-Type": content_type,
            }
        return self._request("POST", path, body, headers, in_step)

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Reply:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        return self._request("GET", path, None, self._headers, _in_step)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        in_step: Callable[[Reply], bool],
    ) -> Reply:
        attempt = Attempt(time.monotonic() + self.timeout_s, self.timeout_s)
        track(attempt)
        watched = self._watchdog.add(attempt)
        try:
            try:
                response = self._open(method, path, body, headers)
            except Exception as exc:  # any failure, however odd the reply: see _classify
                attempt.end()
                raise _classify(exc, attempt) from None
            try:
                reply = _read(response, attempt)
            except ReplyLost:
                attempt.end()
                _drop(response)
                raise
            attempt.end()
            if in_step(reply):
                if attempt.connection is not None:
                    attempt.connection.in_step(attempt)
                response.release_conn()
            else:
                _drop(response)  # and, were it back in the pool already, it is never reused
            return reply
        finally:
            self._watchdog.discard(watched)
            track(None)

    def _target(self, path: str) -> str:
        uri = self._uris.get(path)
        if uri is None:
            uri = self._uris[path] = parse_url(self.base_url + path).request_uri
        return uri

    def _open(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> urllib3.BaseHTTPResponse:
        if self._direct is None:
            return self.pool.request(
                method, self.base_url + path, body=body, headers=headers, redirect=False,
                preload_content=False, retries=_NO_RETRIES,
            )  # fmt: skip
        return self._direct.urlopen(
            method, self._target(path), body=body, headers=headers, redirect=False,
            assert_same_host=False, preload_content=False, retries=_NO_RETRIES,
        )  # fmt: skip


_NO_RETRIES = Retry(False, redirect=False)  # what retries=False becomes, built once


def _drop(response: urllib3.BaseHTTPResponse) -> None:
    """Close the reply's connection (unread or unframed bytes must never be taken for the next
    reply) and give its slot back to the pool, or the pool runs dry."""
    with contextlib.suppress(Exception):
        response.close()
    with contextlib.suppress(Exception):
        response.release_conn()


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's wait in seconds (a number, or an HTTP date from now); None when
    the header is absent or unreadable. Capping it is the caller's business."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return float((when - datetime.now(UTC)).total_seconds())


def _read(response: urllib3.BaseHTTPResponse, attempt: Attempt) -> Reply:
    """The whole reply, its body up to MAX_REPLY_BYTES; a longer, unfinished or unreadable one
    is a lost reply (whatever urllib3 or http.client raised on it)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = response.read(MAX_REPLY_BYTES + 1 - size, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise ReplyLost(_too_long())
            chunks.append(chunk)
            if response.length_remaining == 0 and "content-encoding" not in response.headers:
                break  # its whole Content-Length read, nothing left to decode: it is complete
        reply = Reply(response.status, response.reason or "", response.headers, b"".join(chunks))
    except ReplyLost:
        raise
    except Exception as exc:
        raise _classify(exc, attempt) from None
    if attempt.expired:
        raise ReplyLost(_deadline(attempt.timeout_s))
    return reply


def _too_long() -> str:
    return f"the reply was longer than {MAX_REPLY_BYTES // 1024} KiB; it was not read to the end"


def _deadline(timeout_s: float) -> str:
    return f"no reply within {timeout_s:g} s (api.timeout_s)"


def _classify(exc: BaseException, attempt: Attempt) -> Exception:
    """NotSent when nothing of the request left this machine, else ReplyLost."""
    timeout_s = attempt.timeout_s
    if not attempt.left:
        if attempt.expired:
            return NotSent(f"could not connect within {timeout_s:g} s (api.timeout_s)")
        if _certificate_refused(exc):
            return NotSent(f"TLS failed, certificate refused: {reason(exc)}", fatal=True)
        if _tls_failed(exc):
            return NotSent(f"TLS failed in the handshake: {reason(exc)}", fatal=True)
        return NotSent(f"could not connect: {reason(exc)}")
    if attempt.expired or any(isinstance(e, _TIMEOUTS) for e in _chain(exc)):
        return ReplyLost(_deadline(timeout_s))
    if _is_tls(exc):
        return ReplyLost(f"TLS error after the request was sent: {reason(exc)}")
    if any(isinstance(e, OSError) for e in _chain(exc)):
        return ReplyLost(f"connection dropped after the request was sent: {reason(exc)}")
    # A bad status line, a bad length, a bad chunk size: the server's bytes were not HTTP as
    # urllib3 reads it. The request went out; what the server did with it is unknown.
    return ReplyLost(f"the reply could not be read: {reason(exc)}")


_TIMEOUTS = (urllib3.exceptions.ReadTimeoutError, TimeoutError, socket.timeout)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [c for c in (current.__cause__, current.__context__) if c is not None]
        stack += [a for a in current.args if isinstance(a, BaseException)]


def _certificate_refused(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc))


def _is_tls(exc: BaseException) -> bool:
    return any(isinstance(e, (ssl.SSLError, urllib3.exceptions.SSLError)) for e in _chain(exc))


def _tls_failed(exc: BaseException) -> bool:
    """A TLS error (not a timeout) while connecting: a plain-http server, a bad protocol."""
    chain = list(_chain(exc))
    if any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain):
        return False
    return any(isinstance(e, (ssl.SSLError, urllib3.exceptions.SSLError)) for e in chain)


def reason(exc: BaseException) -> str:
    """An exception's own words, short."""
    text = str(getattr(exc, "reason", None) or exc)
    # The ellipsis marks the cut, where output redaction also masks a secret's beginning.
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "..."


def _manager(settings: ClientSettings, proxy: str | None) -> urllib3.PoolManager:
    options: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": settings.concurrency,
        "block": True,
        "retries": False,
        "timeout": urllib3.Timeout(connect=settings.timeout_s, read=settings.timeout_s),
    }
    cafile = ca_bundle(settings.ca_bundle, settings.environ)
    if cafile is not None:
        if not Path(cafile).is_file():
            raise UserError(
                f"the CA bundle {cafile} does not exist (api.ca_bundle, SSL_CERT_FILE or "
                "REQUESTS_CA_BUNDLE); point it at a PEM file of the CAs to trust"
            )
        options["ca_certs"] = cafile
    manager: urllib3.PoolManager
    if proxy is not None:
        try:
            manager = urllib3.ProxyManager(proxy, **options)
        except (LocationParseError, ValueError) as exc:
            raise UserError(
                f"the proxy URL in HTTPS_PROXY/HTTP_PROXY is not valid ({exc}); "
                "write it as http://host:port"
            ) from None
    else:
        manager = urllib3.PoolManager(**options)
    manager.pool_classes_by_scheme = POOLS
    return manager
