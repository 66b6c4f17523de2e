"""How a host's uvicorn should run it: what ``plugdock serve`` sets for the reference panel.

Any host gets the same with one call::

    uvicorn.run("myapp.main:app", workers=4, **host.uvicorn_options(workers=4))

or, from uvicorn's command line, the same values as flags (docs/embedding.md lists them).
"""

from __future__ import annotations

import os
from typing import Any

from plugdock.config import Settings
from plugdock.runtime.recycle import KEEP_ALIVE_SECONDS, SUPERVISED_ENV

#: uvicorn's ``--http`` for the slow-client deadlines (an import string works on its CLI).
SLOW_CLIENT_PROTOCOL = "plugdock.core.slow_clients:SlowClientGuard"


def uvicorn_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``: slow clients dropped, keep-alive longer than
    clients keep idle connections, forwarded headers only from the configured proxies.

    With several workers, it also lets a worker recycle itself after many plugin changes
    (uvicorn's supervisor starts a fresh one): the flag is an environment variable, which
    uvicorn's spawned workers inherit.
    """
    if workers > 1:
        os.environ[SUPERVISED_ENV] = "1"
    proxies = settings.trusted_proxies.strip()
    return {
        "http": SLOW_CLIENT_PROTOCOL,  # header and body deadlines (PLUGDOCK_HEADER/BODY_TIMEOUT)
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # X-Forwarded-* only from the configured proxies: uvicorn's default trusts loopback,
        # which lets any local client pick the address the sign-in throttle and audit see.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or "",
    }
