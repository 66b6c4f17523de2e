"""A per-client rate limit for the chat's public (visitor) endpoints.

Anyone on the internet can call them, and each call writes rows (and may ask a paid model),
so every client address gets a token bucket: ``limit`` requests a minute, at most ``limit``
at once. Starting a chat has a bucket of its own with a smaller limit. Over the limit the
answer is 429 with ``Retry-After``.

Memory is bounded: at most ``MAX_CLIENTS`` addresses are remembered per bucket, the least
recently seen are forgotten first. The buckets live per web app (one per worker process),
so with N workers a client may get up to N times the limit. Behind a reverse proxy every
visitor has the proxy's address unless the panel believes the proxy's X-Forwarded-For
(``PLUGDOCK_TRUSTED_PROXIES``); the client address is the one the panel gives the request.

Settings (environment, re-read per request):

``PLUGDOCK_PLUGIN_AI_CHATBOT_RATE_LIMIT``    visitor requests per minute per address (60)
``PLUGDOCK_PLUGIN_AI_CHATBOT_START_LIMIT``   new chats per minute per address (10)
"""

import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, Request, status

from plugdock import sdk

from .responders import PLUGIN_ID, log

DEFAULT_RATE_LIMIT = 60
DEFAULT_START_LIMIT = 10
MAX_CLIENTS = 10_000
MAX_LIMIT = 100_000


class RateLimiter:
    """Token buckets per client: ``per_minute`` tokens, refilled evenly over a minute.

    >>> limiter = RateLimiter(2, clock=lambda: 0.0)
    >>> limiter.wait("1.2.3.4"), limiter.wait("1.2.3.4"), limiter.wait("1.2.3.4")
    (0.0, 0.0, 30.0)
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0  # tokens per second
        self.max_clients = max_clients
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def wait(self, client: str) -> float:
        """Take one token for ``client``: 0.0 if allowed, else seconds until one is free."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.refill)
            if tokens >= 1.0:
                tokens -= 1.0
                waited = 0.0
            else:
                waited = (1.0 - tokens) / self.refill
            self._buckets[client] = (tokens, now)  # most recently seen last
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return waited

    def __len__(self) -> int:
        return len(self._buckets)


# One set of buckets per app (worker), created on first use; a new limit starts fresh ones.
_limiters: "weakref.WeakKeyDictionary[object, dict[tuple[str, int], RateLimiter]]" = (
    weakref.WeakKeyDictionary()
)
_limiters_lock = threading.Lock()


def _setting(name: str, default: int) -> int:
    raw = sdk.plugin_settings(PLUGIN_ID).get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        log.warning("%s %r is not a number of requests per minute; using %s", name, raw, default)
        return default
    return value


def limiter_for(request: Request, bucket: str, per_minute: int) -> RateLimiter:
    """The app's limiter for ``bucket`` at ``per_minute``."""
    with _limiters_lock:
        by_key = _limiters.setdefault(request.app, {})
        key = (bucket, per_minute)
        if key not in by_key:
            for old in [k for k in by_key if k[0] == bucket]:
                del by_key[old]
            by_key[key] = RateLimiter(per_minute)
        return by_key[key]


def _check(request: Request, bucket: str, per_minute: int) -> None:
    client = request.client.host if request.client else "unknown"
    wait = limiter_for(request, bucket, per_minute).wait(client)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many requests; please wait {seconds} s and try again",
            headers={"Retry-After": str(seconds)},
        )


def visitor_limit(request: Request) -> None:
    """Dependency of every visitor endpoint."""
    _check(request, "visitor", _setting("rate_limit", DEFAULT_RATE_LIMIT))


def start_limit(request: Request) -> None:
    """Dependency of starting a chat: a smaller limit of its own, on top of ``visitor_limit``."""
    _check(request, "start", _setting("start_limit", DEFAULT_START_LIMIT))
