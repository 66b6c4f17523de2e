"""The plugin server: publishers upload packages, hosts in remote mode install from it.

* :mod:`plugdock.server.storage` keeps packages, their records and publisher tokens
  in a folder;
* :mod:`plugdock.server.index` signs the index of packages with TUF metadata;
* :mod:`plugdock.server.app` is the FastAPI app (``plugdock server`` runs it);
* :mod:`plugdock.server.client` publishes a package (``plugdock publish``).
"""

from __future__ import annotations

from pathlib import Path

from plugdock.server.app import create_app
from plugdock.server.storage import Storage

__all__ = ["Storage", "create_app", "serve"]


def serve(data_dir: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the plugin server over ``data_dir`` with uvicorn until interrupted."""
    import uvicorn

    storage = Storage(data_dir).ensure()
    uvicorn.run(create_app(storage), host=host, port=port, log_level="info")
