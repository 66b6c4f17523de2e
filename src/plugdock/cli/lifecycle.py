"""``plugdock install|upgrade|disable|enable|uninstall``: a plugin's life from the terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from plugdock.installer import Installer
    from plugdock.plugin_code.hooks import BeforeCommit

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _with_hooks(
    installer: Installer, operation: Callable[[BeforeCommit], T], leaving: str | None = None
) -> T:
    """Run ``operation`` with the plugin's code where the isolation mode says: in this
    process (``inprocess``), or only in the plugin's sandbox (``process``)."""
    if installer.settings.isolation != "process":
        from plugdock.plugin_code.hooks import check_and_run_hooks

        return operation(check_and_run_hooks)
    from plugdock.isolation.lifecycle import run_sandboxed

    return run_sandboxed(
        installer.settings,
        installer.engine,
        operation,
        lambda plugin_id: installer.uninstall(plugin_id, before_commit=None),
        leaving=leaving,
    )


def install(
    requirement: str = typer.Argument(
        ...,
        metavar="ID[@VERSION]|PACKAGE",
        help="A plugin id from the source (newest version unless @VERSION), or a package zip.",
    ),
    by: str | None = typer.Option(None, "--by", metavar="NAME", help="Who installs (recorded)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be installed, dependencies first; change nothing."
    ),
    restore: Path | None = typer.Option(
        None,
        "--restore",
        metavar="BACKUP",
        help="A backup from 'uninstall' whose rows to put back.",
        dir_okay=False,
    ),
) -> None:
    """Install a plugin (and its missing dependencies) from the source, or a package file."""
    from plugdock.cli.remote import download_progress
    from plugdock.config import load_settings
    from plugdock.installer import Installer
    from plugdock.sources import parse_requirement

    settings = load_settings()
    with download_progress(settings) as source:  # a progress bar for remote downloads
        installer = Installer(settings, source=source)
        # A path ending in .zip is a package file; anything else is an id from the source.
        target = Path(requirement) if requirement.endswith(".zip") else requirement
        if dry_run:
            if isinstance(target, Path):
                raise typer.BadParameter("--dry-run plans installs from the source, not files")
            from rich.table import Table  # dry runs only

            planned = installer.plan(*parse_requirement(target))
            table = Table("plugin", "version", "why", title="would install, in this order")
            for item in planned:
                table.add_row(item.plugin_id, item.version, item.reason)
            console.print(table)
            for item in planned:
                _print_permissions(f"{item.plugin_id} {item.version}", item.permissions)
                for job in item.jobs:  # what will run on its own, on a schedule
                    console.print(f"{item.plugin_id} schedules {job}", highlight=False)
            if settings.full_rights_notice:
                console.print(
                    f"[yellow]full rights:[/] {settings.full_rights_notice}", highlight=False
                )
            return
        result = _with_hooks(
            installer,
            lambda hooks: installer.install(
                target, installed_by=by, restore=restore, before_commit=hooks
            ),
        )
    _warn(result.warnings)
    for dependency in result.dependencies:
        console.print(f"[green]installed[/] {dependency} (a dependency)")
    console.print(
        f"[green]installed[/] {result.plugin_id} {result.version} in {result.seconds * 1000:.0f} ms"
        + (f", rows restored from {restore.name}" if restore else "")
    )
    console.print(f"  package sha256: {result.package_sha256}")
    console.print(f"  signed by: {result.signer or 'nobody (unsigned)'}")
    console.print(f"  tables: {', '.join(result.tables) or 'none'}")
    console.print(f"  API routes: {', '.join(result.backend_routes) or 'none'}")
    console.print(f"  pages: {', '.join(result.frontend_routes) or 'none'}")
    console.print(f"  permissions granted: {', '.join(result.permissions) or 'none'}")


def _print_permissions(plugin: str, permissions: tuple[str, ...] | list[str]) -> None:
    """What a plugin asks for, one line each in plain words (what the admin grants)."""
    from plugdock.package.permissions import describe

    if not permissions:
        console.print(f"{plugin} asks for no permissions", highlight=False)
        return
    console.print(f"{plugin} asks for these permissions:", highlight=False)
    for permission in permissions:
        console.print(f"  {permission}: {describe(permission)}", highlight=False)


def upgrade(
    requirement: str = typer.Argument(
        ..., metavar="ID[@VERSION]", help="An installed plugin; default: its newest version."
    ),
    package: Path | None = typer.Option(
        None,
        "--package",
        metavar="PACKAGE",
        help="Upgrade to this package zip instead of the source's version.",
        dir_okay=False,
    ),
    by: str | None = typer.Option(None, "--by", metavar="NAME", help="Who upgrades (recorded)."),
    grant_permissions: bool = typer.Option(
        False,
        "--grant-permissions",
        help="Grant the permissions the new version asks for beyond the current grant "
        "(without it, such an upgrade is refused and lists them).",
    ),
) -> None:
    """Upgrade a plugin in place, keeping its data; any failure leaves the old version."""
    from plugdock.cli.remote import download_progress
    from plugdock.config import load_settings
    from plugdock.errors import PermissionsNotGrantedError
    from plugdock.installer import Installer
    from plugdock.operations.upgrade import Grant
    from plugdock.package.permissions import describe
    from plugdock.sources import parse_requirement

    plugin_id, version = parse_requirement(requirement)
    settings = load_settings()
    grant: Grant = "all" if grant_permissions else ()
    try:
        with download_progress(settings) as source:
            installer = Installer(settings, source=source)
            result = _with_hooks(
                installer,
                lambda hooks: installer.upgrade(
                    plugin_id,
                    version,
                    package=package,
                    upgraded_by=by,
                    grant=grant,
                    before_commit=hooks,
                ),
            )
    except PermissionsNotGrantedError as exc:  # nothing changed: say what to confirm
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        for permission in exc.added:
            err_console.print(f"  {permission}: {describe(permission)}", highlight=False)
        err_console.print("run again with --grant-permissions to grant them", highlight=False)
        raise SystemExit(1) from None
    _warn(result.warnings)
    steps = ", ".join(result.steps) or "none"
    console.print(
        f"[green]upgraded[/] {plugin_id} {result.from_version} → {result.version} "
        f"in {result.seconds * 1000:.0f} ms; upgrade steps run: {steps}"
    )


def disable(
    plugin_id: str = typer.Argument(..., metavar="ID", help="An installed plugin."),
    by: str | None = typer.Option(None, "--by", metavar="NAME", help="Who disables it (recorded)."),
) -> None:
    """Stop serving a plugin's routes and pages everywhere; its tables and rows stay."""
    from plugdock.config import load_settings
    from plugdock.installer import Installer

    Installer(load_settings()).disable(plugin_id, actor=by)
    console.print(
        f"[green]disabled[/] {plugin_id}; its data stays ('plugdock enable' brings it back)"
    )


def enable(
    plugin_id: str = typer.Argument(..., metavar="ID", help="A disabled plugin."),
    by: str | None = typer.Option(None, "--by", metavar="NAME", help="Who enables it (recorded)."),
) -> None:
    """Serve a disabled plugin again; no SQL runs."""
    from plugdock.config import load_settings
    from plugdock.installer import Installer

    Installer(load_settings()).enable(plugin_id, actor=by)
    console.print(f"[green]enabled[/] {plugin_id}")


def uninstall(
    plugin_id: str = typer.Argument(..., metavar="ID", help="An installed plugin."),
    by: str | None = typer.Option(None, "--by", metavar="NAME", help="Who uninstalls (recorded)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the tables (with row counts) it would drop; change nothing."
    ),
    no_backup: bool = typer.Option(
        False, "--no-backup", help="Do not keep the plugin's rows in instance/backups/ first."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Run none of the plugin's code (its on_uninstall is skipped); audited as forced.",
    ),
) -> None:
    """Remove a plugin: its tables (down.sql), code, registry entry and row."""
    from plugdock.config import load_settings
    from plugdock.installer import Installer

    installer = Installer(load_settings())
    if dry_run:
        from rich.table import Table  # dry runs only

        row, tables, dependents = installer.uninstall_plan(plugin_id)
        table = Table("table", "rows", title=f"uninstalling {plugin_id} {row.version} drops")
        for item in tables:
            table.add_row(item.name, str(item.rows))
        console.print(table)
        if dependents:
            err_console.print(f"[red]blocked:[/] needed by {', '.join(dependents)}")
        console.print("a backup of the rows is written first" if not no_backup else "no backup")
        return
    if force:  # no plugin code runs, in either mode: no sandbox to start either
        result = installer.uninstall(
            plugin_id, uninstalled_by=by, backup=not no_backup, before_commit=None, force=True
        )
    else:
        result = _with_hooks(
            installer,
            lambda hooks: installer.uninstall(
                plugin_id, uninstalled_by=by, backup=not no_backup, before_commit=hooks
            ),
            leaving=plugin_id,
        )
    _warn(result.warnings)
    dropped = ", ".join(result.tables_dropped) or "none"
    forced = " (forced: its on_uninstall did not run)" if force else ""
    console.print(
        f"[green]uninstalled[/] {result.plugin_id} {result.version}{forced}; "
        f"tables dropped: {dropped}"
    )
    if result.backup is not None:
        console.print(f"  rows kept in {result.backup} (plugdock install {plugin_id} --restore …)")


def register(app: typer.Typer) -> None:
    for command in (install, upgrade, disable, enable, uninstall):
        app.command()(command)
