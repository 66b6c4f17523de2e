"""``plugdock dev FOLDER``: the command; the dev loop itself is :mod:`plugdock.cli.dev_server`.

Light to import (typer only), like the other ``cli_*`` modules: the panel loads only when
``dev`` runs.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``dev`` command to the ``plugdock`` command."""

    @app.command()
    def dev(
        folder: Path = typer.Argument(
            ..., metavar="FOLDER", help="The plugin's source folder (with metadata.json)."
        ),
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8000, help="Port to listen on."),
        home: Path | None = typer.Option(
            None,
            "--home",
            help="Instance folder to use and keep (default: a scratch folder removed at exit).",
        ),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Database of the instance (default: SQLite in it)."
        ),
    ) -> None:
        """Run a panel serving FOLDER's plugin, reloaded when its files change."""
        from plugdock.cli.dev_server import run

        run(folder, host=host, port=port, home=home, database_url=database_url)
