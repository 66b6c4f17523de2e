"""``plugdock events ...``: the host's events, who handles them, and their deliveries.

What the running host declared is recorded in the database, so this works from any shell
with the instance's settings (``DATABASE_URL`` for an embedding app's database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from plugdock.config import Settings


def register(app: typer.Typer) -> None:
    """Add the ``events`` command group to the ``plugdock`` command."""
    from plugdock.cli.style import HelpStyle

    events_app = typer.Typer(
        help="Host events: declared points, deliveries, retries.",
        no_args_is_help=True,
        cls=HelpStyle,
    )

    @events_app.command("list")
    def list_points() -> None:
        """The events and filters the host declares, each with the installed plugins that
        handle it (filters in the order they run)."""
        from rich.console import Console
        from rich.table import Table

        from plugdock.core.db import connect_read
        from plugdock.installer import Installer
        from plugdock.instance import outbox

        installer = Installer(_settings())
        with connect_read(installer.engine) as conn:
            points = [
                *outbox.declared_points(conn).values(),
                *outbox.declared_points(conn, "filter").values(),
            ]
        handlers: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for plugin_id, meta in sorted(installer.workspace.installed_metadata().items()):
            for name, handler in meta.events.items():
                handlers.setdefault(("event", name), []).append((0, f"{plugin_id} ({handler})"))
            for name, spec in meta.filters.items():
                handlers.setdefault(("filter", name), []).append(
                    (spec.priority, f"{plugin_id} ({spec.handler}, priority {spec.priority})")
                )
        table = Table("kind", "name", "version", "description", "handled by")
        for point in points:
            handled = ", ".join(h for _p, h in sorted(handlers.get((point.kind, point.name), [])))
            table.add_row(
                point.kind, point.name, str(point.version), point.description, handled or "-"
            )
        Console().print(table if points else "no events declared (the host declares them)")

    @events_app.command("deliveries")
    def deliveries(
        dead: bool = typer.Option(False, "--dead", help="Only the dead ones (retries used up)."),
        limit: int = typer.Option(50, min=1, max=1000, help="How many, newest first."),
    ) -> None:
        """The newest deliveries with their status, attempts and last error."""
        from rich.console import Console
        from rich.table import Table

        from plugdock.core.db import connect_read, make_engine
        from plugdock.instance import outbox

        engine = make_engine(_settings().db_url)
        with connect_read(engine) as conn:
            rows = outbox.list_deliveries(conn, status="dead" if dead else None, limit=limit)
        table = Table("id", "event", "key", "plugin", "status", "attempts", "last error")
        for row in rows:
            table.add_row(
                str(row["id"]),
                row["name"],
                row["event_key"] or "-",
                row["plugin_id"],
                row["status"],
                str(row["attempts"]),
                (row["last_error"] or "")[:120],
            )
        Console().print(table if rows else "no deliveries")

    @events_app.command("retry")
    def retry(delivery_id: int = typer.Argument(..., min=1, help="A dead delivery's id.")) -> None:
        """Deliver a dead delivery again (its attempts start afresh)."""
        from plugdock.core.db import make_engine
        from plugdock.errors import NotFoundError
        from plugdock.instance import outbox

        if not outbox.retry(make_engine(_settings().db_url), delivery_id):
            raise NotFoundError(f"no dead delivery {delivery_id}")
        typer.echo(f"delivery {delivery_id} will be delivered again")

    app.add_typer(events_app, name="events")


def _settings() -> Settings:
    from plugdock.config import load_settings

    return load_settings()
