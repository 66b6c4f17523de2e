"""``python -m billing.serve``: the billing app under uvicorn, set up as docs/embedding.md says.

Several workers (every one serves what is installed), slow clients dropped (plugdock's
``SlowClientGuard``), keep-alive 15 s. ``BILLING_HOST``, ``BILLING_PORT`` and
``BILLING_WORKERS`` override 127.0.0.1, 8100 and 2.
"""

from __future__ import annotations

import os

import uvicorn

from plugdock.core.slow_clients import SlowClientGuard


def main() -> None:
    uvicorn.run(
        "billing.app:create_app",
        factory=True,
        host=os.environ.get("BILLING_HOST", "127.0.0.1"),
        port=int(os.environ.get("BILLING_PORT", "8100")),
        workers=int(os.environ.get("BILLING_WORKERS", "2")),
        http=SlowClientGuard,
        timeout_keep_alive=15,
    )


if __name__ == "__main__":
    main()
