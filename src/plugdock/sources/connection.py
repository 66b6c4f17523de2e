"""HTTP to one plugin server: every request of the remote source goes through it.

:class:`ServerConnection` holds the HTTP client of :class:`~plugdock.sources.remote.RemoteSource`
and of its signed index (:mod:`plugdock.sources.signed_index`), and the rules every request
follows:

* **Where it goes.** Redirects are followed only within the server's origin (scheme, host,
  port); one to another origin, or from https to http, is refused
  (:class:`RedirectRefusedError`).
* **Transient failures** (connection errors, timeouts, 5xx/429, a body cut short) are
  retried with exponential backoff (``PLUGDOCK_DOWNLOAD_RETRIES`` attempts, ``…_TIMEOUT``
  per request); what still fails is a :class:`~plugdock.errors.SourceUnavailableError`
  with one clear line (the panel answers 502).
* **Messages** name the server by :attr:`ServerConnection.addr`: its URL without the
  credentials it may carry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from plugdock.errors import NotFoundError, SourceUnavailableError
from plugdock.version import __version__

# The remote source's logger: its retries are logged under the name they always had.
log = logging.getLogger("plugdock.sources.remote")

_BACKOFF = 0.25  # seconds before the second attempt; doubles each time
_BACKOFF_CAP = 4.0


class RedirectRefusedError(SourceUnavailableError):
    """The server redirected to another origin, or from https to http."""


class Transient(Exception):
    """A failure worth retrying (5xx, 429, a body cut short)."""


class ServerConnection:
    """The HTTP client of one plugin server (``url``, normalized), with its retries.

    ``client`` replaces the default ``httpx.Client``; the redirect check is added to it.
    """

    def __init__(
        self,
        url: str,
        *,
        retries: int,
        timeout: float,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        # For messages, which reach any signed-in panel user: never credentials in a URL.
        self.addr = without_credentials(url)
        self.retries = retries
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": f"plugdock/{__version__}"},
            follow_redirects=True,
        )
        # Redirects are followed only within the server's own origin (see _check_redirect).
        self.client.event_hooks["response"] = [
            *self.client.event_hooks["response"],
            self._check_redirect,
        ]

    def close(self) -> None:
        self.client.close()

    def _check_redirect(self, response: httpx.Response) -> None:
        """Refuse a redirect that leaves the server's origin, above all one from https to http.

        The index and hashes would still catch altered bytes, but a redirect elsewhere sends
        the request (and whatever the URL carries) to a host nobody configured, and a
        downgrade to http hands the rest of the exchange to anyone on the network.
        """
        if not response.has_redirect_location:
            return
        here = response.request.url
        try:
            there = here.join(response.headers["location"])
        except (httpx.InvalidURL, ValueError):
            raise RedirectRefusedError(
                f"plugin server {self.addr} sent a redirect to a malformed address; refusing it"
            ) from None
        if _origin(there) == _origin(here):
            return
        target = without_credentials(f"{there.scheme}://{there.netloc.decode('ascii')}")
        if here.scheme == "https" and there.scheme != "https":
            raise RedirectRefusedError(
                f"plugin server {self.addr} redirected from https to {target}; refusing a "
                "downgrade to plain http"
            )
        raise RedirectRefusedError(
            f"plugin server {self.addr} redirected to another origin ({target}); refusing it "
            "(set PLUGIN_SERVER_URL to the server's real address)"
        )

    def retrying(self, what: str, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` with retries and backoff on transient failures."""
        last: Exception | None = None
        for number in range(self.retries):
            if number:
                time.sleep(min(_BACKOFF * 2 ** (number - 1), _BACKOFF_CAP))
            try:
                return attempt()
            except (httpx.TransportError, Transient) as exc:
                last = exc
                log.info("attempt %d for %s failed: %s", number + 1, what, exc)
        reason = _describe(last)
        raise SourceUnavailableError(
            f"plugin server {self.addr} unavailable while getting {what}: {reason} "
            f"({self.retries} attempt{'s' if self.retries != 1 else ''})"
        )

    def get_bytes(self, path: str, what: str, limit: int) -> bytes:
        """The body of ``GET <server><path>``, refused when larger than ``limit`` bytes."""
        url = f"{self.url}{path}"

        def once() -> bytes:
            chunks = []
            size = 0
            with self.client.stream("GET", url) as response:
                check_status(response, what)
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise SourceUnavailableError(
                            f"{what} from {without_credentials(url)} is larger than {limit}"
                        )
                    chunks.append(chunk)
            return b"".join(chunks)

        return self.retrying(what, once)  # type: ignore[no-any-return]


def check_status(response: httpx.Response, what: str) -> None:
    """Pass a 200; raise :class:`Transient` for 5xx/429, else NotFound/SourceUnavailable."""
    status = response.status_code
    if status == 200:
        return
    if status >= 500 or status == 429:
        raise Transient(f"HTTP {status}")
    if status == 404:
        raise NotFoundError(f"the plugin server has no {what} (404)")
    raise SourceUnavailableError(f"the plugin server answered HTTP {status} for {what}")


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke off mid-transfer"
    if isinstance(exc, httpx.TransportError):
        return f"network error ({type(exc).__name__})"
    return str(exc) if exc else "unknown error"


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default
