"""The plugin server: publishers upload packages, hosts in remote mode install from it.

* :mod:`plugdock.server.storage` keeps packages, their records and publisher tokens
  in a folder (the records: :mod:`~plugdock.server.catalog`; the tokens:
  :mod:`~plugdock.server.accounts`);
* :mod:`plugdock.server.index` signs the index of packages with TUF metadata;
* :mod:`plugdock.server.app` is the FastAPI app (``plugdock server`` runs it);
* :mod:`plugdock.server.client` publishes a package (``plugdock publish``);
* :mod:`plugdock.server.review_api`, :mod:`~plugdock.server.review_page`,
  :mod:`~plugdock.server.report`, :mod:`~plugdock.server.scan` and
  :mod:`~plugdock.server.audit_trail`: the review queue (``--review required``, the default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from plugdock.server.app import create_app
from plugdock.server.storage import Storage

__all__ = ["Storage", "create_app", "serve", "startup_warnings"]

log = logging.getLogger("plugdock.server")


def startup_warnings(storage: Storage, review: str | None = None) -> list[str]:
    """What an operator should fix before trusting this server in production."""
    warnings = []
    if review == "required" and not storage.reviewers_path.exists():
        warnings.append(
            "review is required but there is no reviewer: published versions will wait; "
            "create one with 'plugdock server token create NAME --role reviewer'"
        )
    root_key = storage.index.keys_dir / "root.key"
    if root_key.exists():
        # Whoever holds the root key can sign a new root with keys of their choosing, and
        # every host follows a root chain: the one key that must not live on the server.
        warnings.append(
            f"the index root key is online ({root_key}): whoever gets into this machine can "
            "replace every signing key and hosts will follow; move it to offline storage "
            "(the server runs without it; see 'Keeping the root key offline' in "
            "docs/publishing.md)"
        )
    return warnings


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    warn: Callable[[str], None] | None = None,
    review: str = "required",
) -> None:
    """Run the plugin server over ``data_dir`` with uvicorn until interrupted.

    ``warn`` receives the :func:`startup_warnings` (default: the log); ``review`` is
    ``required`` (versions wait for a reviewer's approval) or ``off``.
    """
    import uvicorn

    from plugdock.core.slow_clients import SlowClientGuard

    storage = Storage(data_dir).ensure()
    for message in startup_warnings(storage, review):
        (warn or log.warning)(message)
    uvicorn.run(
        create_app(storage, review=review),
        host=host,
        port=port,
        log_level="info",
        http=SlowClientGuard,  # slow_clients' default deadlines: 10 s headers, 120 s body
    )
