"""The ``plugdock`` command. Every error prints one line and exits non-zero."""

from __future__ import annotations

import logging
import os
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from plugdock.cli.style import HelpStyle
from plugdock.errors import PlugdockError
from plugdock.version import __version__

if TYPE_CHECKING:  # each command imports what it needs when it runs (--help: none of it)
    from plugdock.config import Settings
    from plugdock.installer import Installer

app = typer.Typer(
    help="plugdock: install, run and remove plugins in a FastAPI application.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=HelpStyle,  # one --help style for every command (cli_style.py)
)
console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    from plugdock.config import load_settings

    return load_settings()


def _installer() -> Installer:
    from plugdock.installer import Installer

    return Installer(_settings())


def _refuse_a_database_without_the_instance(settings: Settings) -> None:
    """The instance lists installed plugins, but DATABASE_URL's database has no plugdock.

    An app that embeds plugdock and passes its engine in code has no DATABASE_URL in its
    environment: the CLI would create a fresh empty database beside the instance, report
    nothing installed, and ``doctor --repair`` would delete the live plugins' code.
    """
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    from plugdock.core.db import VERSION_TABLE
    from plugdock.instance.registry import read_registry

    try:
        listed = read_registry(settings.registry_path)
    except (OSError, ValueError):
        return  # doctor reports a broken registry
    if not listed:
        return
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        fresh = not Path(url.database).exists()
    else:
        engine = create_engine(url)
        try:
            fresh = not inspect(engine).has_table(VERSION_TABLE) and not inspect(engine).has_table(
                "addon_installations"
            )
        except Exception:
            return  # unreachable: the command itself says so
        finally:
            engine.dispose()
    if fresh:
        raise PlugdockError(
            f"the instance {settings.home} lists installed plugins "
            f"({', '.join(sorted(listed))}), but the database "
            f"{url.render_as_string(hide_password=True)} has none of plugdock's tables: set "
            "DATABASE_URL to the database the panel or your app uses"
        )


def _print_version(value: bool) -> None:
    if value:
        console.print(f"plugdock {__version__}")
        raise typer.Exit()


@app.callback()
def _startup(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s")
    settings = _settings()
    trust_off = settings.trust_off_warning()
    if trust_off:  # said on every command, so nobody forgets the checks are off
        err_console.print(f"[yellow]warning:[/] {trust_off}", highlight=False)
    _refuse_a_database_without_the_instance(settings)
    # The last operation died midway (or one runs now: recovery waits for its lock): settle
    # it first. A staging folder or upload alone is enough to tell, when it died before
    # the journal (recovery removes only what no live process holds).
    if settings.journal_path.exists() or any(
        folder.is_dir() and any(folder.iterdir())
        for folder in (settings.staging_dir, settings.uploads_dir)
    ):
        try:
            outcome = _installer().recover()
        except Exception as exc:  # report, but let read-only commands like doctor still run
            err_console.print(
                f"[red]error:[/] could not settle the interrupted operation ({exc}); "
                "changes are refused until it is; see 'plugdock doctor'",
                highlight=False,
            )
        else:
            if outcome:
                err_console.print(f"[yellow]recovered:[/] {outcome}")


@app.command()
def new(
    plugin_id: str = typer.Argument(..., metavar="ID", help="The new plugin's id, e.g. my_plugin."),
    directory: Path = typer.Option(
        Path("."), "--dir", "-d", metavar="FOLDER", help="Where to create it."
    ),
) -> None:
    """Create a working plugin folder to start from (also an npm project for its UI)."""
    from plugdock.package.scaffold import scaffold

    folder = scaffold(plugin_id, directory)
    console.print(f"created {folder}")
    console.print(f"next: (cd {folder} && npm install) && plugdock pack {folder} -o modules")


@app.command()
def pack(
    directory: Path = typer.Argument(..., metavar="FOLDER", help="The plugin folder."),
    outdir: Path = typer.Option(
        Path("."), "--outdir", "-o", metavar="FOLDER", help="Where to write the zip."
    ),
) -> None:
    """Pack a plugin folder into <id>_v<version>.zip (deterministic, with checksums)."""
    from plugdock.package.pack import pack as pack_folder

    outdir.mkdir(parents=True, exist_ok=True)
    console.print(f"wrote {pack_folder(directory, outdir)}")


@app.command()
def validate(
    path: Path = typer.Argument(
        ..., metavar="PACKAGE|FOLDER", help="A package zip or a plugin folder."
    ),
    upgrade_from: Path | None = typer.Option(
        None,
        "--upgrade-from",
        metavar="PACKAGE|FOLDER",
        help="An older package of the plugin: check that upgrading it gives the same schema.",
    ),
    no_code: bool = typer.Option(
        False,
        "--no-code",
        help="Do not run the plugin's code, not even in a sandbox; "
        "its routes and addon.config are then not checked.",
    ),
) -> None:
    """Run the installer's checks without installing; names the ones it could not run.

    The checks that run the package's code (its backend's import, its addon.config) run
    in a sandbox (bubblewrap), never on this host; without bubblewrap they are skipped.
    """
    from plugdock.checks.validate import CodeRunner, validate_package
    from plugdock.isolation.probe import SandboxedCode, sandbox_missing
    from plugdock.package.archive import Limits

    settings = _settings()
    code: CodeRunner | None = None
    why = "--no-code"
    if not no_code:
        missing = sandbox_missing()
        if missing is None:
            code = SandboxedCode(settings)
        else:  # never on this host instead
            why = f"the package's code runs only in a sandbox, and {missing}"
    report = validate_package(
        path,
        Limits.from_settings(settings),
        upgrade_from=upgrade_from,
        code=code,
        no_code_because=why,
    )
    meta = report.info.metadata
    tables = ", ".join(report.tables) or "none"
    console.print(
        f"[green]ok[/] {meta.id} {meta.version}: {len(report.info.files)} files, tables: {tables}"
    )
    console.print(f"SQL checked for {', '.join(report.dialects)}; sha256 {report.info.sha256}")
    if report.steps:
        console.print(f"upgrade steps: {', '.join(report.steps)}")
    if report.upgraded_from:
        console.print(
            f"upgrade {report.upgraded_from} → {meta.version} gives the schema of a fresh install"
        )
    console.print(f"not checked here (install checks them): {'; '.join(report.skipped)}")


@app.command()
def available() -> None:
    """List the plugins the configured source offers (PLUGIN_LOCAL_DIR or the plugin server)."""
    from rich.table import Table

    from plugdock.cli.remote import download_progress
    from plugdock.config import PluginSource
    from plugdock.errors import NotFoundError
    from plugdock.sources import make_source

    settings = _settings()
    if settings.plugin_source is PluginSource.LOCAL:
        where = f"{settings.plugin_local_dir} (PLUGIN_LOCAL_DIR)"
        if not settings.plugin_local_dir.is_dir():  # an empty table would hide the typo
            raise NotFoundError(f"the plugin folder {where} does not exist")
    else:
        where = f"{settings.plugin_server_url} (PLUGIN_SERVER_URL)"
    # The remote source announces a first-use pin of the server's root, as install does.
    with download_progress(settings) as source:
        catalog = (source or make_source(settings)).catalog()
    table = Table("id", "name", "versions", "category", "price", title=f"plugins in {where}")
    for entry in catalog.plugins.values():
        price = "Free" if not entry.price else f"{entry.price:.2f}"
        table.add_row(entry.id, entry.name, ", ".join(entry.versions), entry.category, price)
    if catalog.plugins:
        console.print(table)
    else:
        console.print(f"no plugins in {where}", soft_wrap=True, markup=False, highlight=False)
    for broken in catalog.broken:
        err_console.print(f"[red]broken[/] {broken.location}: {broken.error}")


import_module("plugdock.cli.lifecycle").register(app)  # install, upgrade, ...


@app.command("list")
def list_installed() -> None:
    """List installed plugins."""
    from rich.table import Table

    installed = _installer().installed()
    table = Table("id", "name", "version", "state", "installed at", "by", "tables")
    for item in installed:
        table.add_row(
            item.plugin_id,
            item.name,
            item.version,
            "enabled" if item.enabled else "disabled",
            item.installed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            item.installed_by or "",
            ", ".join(item.tables),
        )
    console.print(table if installed else "no plugins installed")


@app.command()
def doctor(repair: bool = typer.Option(False, "--repair", help="Fix what can be fixed.")) -> None:
    """Compare registry, rows, code folders and tables; report (and repair) drift."""
    from plugdock.installer import doctor as doc

    installer = _installer()
    if repair:
        for action in doc.repair(installer):
            console.print(f"[green]repaired[/] {action}")
    for note in doc.isolation_notes(installer):
        err_console.print(f"[yellow]note[/] {note}")
    findings = doc.diagnose(installer)
    for finding in findings:
        hint = "" if finding.repairable or repair else " (not repairable automatically)"
        err_console.print(f"[red]drift[/] {finding.problem}{hint}")
    if findings:
        raise typer.Exit(1)
    console.print("[green]ok[/] registry, rows, code folders and tables agree")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (they share the instance)."),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
) -> None:
    """Run the panel: core API, marketplace, and every installed plugin, live."""
    import uvicorn

    from plugdock.host.app import log_config
    from plugdock.host.serving import uvicorn_options

    settings = _settings()
    err_console.print(
        f"plugdock panel on http://{host}:{port}/  (instance {settings.home}, "
        f"source {settings.plugin_source}, {workers} worker(s))"
    )
    os.environ["PLUGDOCK_SERVE_ADDRESS"] = f"{host}:{port}"  # named in the replica list
    uvicorn.run(
        "plugdock.host.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if not reload else None,
        reload=reload,
        reload_dirs=[str(Path(__file__).parents[1])] if reload else None,
        log_level="info",
        # The same options any host gets from PluginHost.uvicorn_options (slow clients,
        # keep-alive, trusted proxies; workers may recycle themselves).
        **uvicorn_options(settings, workers=1 if reload else workers),
        # Root at WARNING (INFO with -v), not the CLI's ERROR: warnings must reach the log.
        log_config=log_config(min(logging.getLogger().level, logging.WARNING)),
    )


import_module("plugdock.cli.users").register(app)  # plugdock user ...
import_module("plugdock.cli.events").register(app)  # plugdock events ...
import_module("plugdock.cli.config").register(app)  # plugdock config ID [KEY [VALUE]]
import_module("plugdock.cli.jobs").register(app)  # plugdock jobs ...
import_module("plugdock.cli.dev").register(app)  # plugdock dev FOLDER
import_module("plugdock.cli.remote").register(app)  # keygen, sign, trust, server ...


def main() -> None:
    """Entry point of the ``plugdock`` console script."""
    try:
        app()
    except PlugdockError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
