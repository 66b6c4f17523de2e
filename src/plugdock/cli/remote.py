"""CLI commands for signing, trust, publishing and the plugin server.

``register(app)`` adds them to the ``plugdock`` command::

    plugdock keygen alice                        # alice.key (0600) + alice.pub
    plugdock sign my_plugin_v0.1.0.zip --key alice.key
    plugdock verify my_plugin_v0.1.0.zip         # who signed it; trusted here?
    plugdock trust add alice.pub --name alice    # on a host: trust a publisher
    plugdock trust server URL [--root root.json] # on a host: pin a server's index root
    plugdock trust bind my_plugin alice          # rotate the key a plugin id is bound to
    plugdock trust bindings                      # which key each plugin id is bound to
    plugdock publish my_plugin_v0.1.0.zip --server URL --token T
    plugdock server --data ./server-data --port 8080 [--review required|off]
    plugdock server token create alice --data ./server-data [--role reviewer]
    plugdock server review list|show|approve|reject ... --server URL --token T
    plugdock server status [PLUGIN_ID] --server URL --token T   # a publisher's versions
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from plugdock.cli.style import HelpStyle

if TYPE_CHECKING:
    from rich.progress import Progress

    from plugdock.config import Settings
    from plugdock.sources import Source

console = Console()
err_console = Console(stderr=True)

trust_app = typer.Typer(
    help="The publisher keys and plugin servers this instance trusts.", cls=HelpStyle
)
server_app = typer.Typer(
    help="Run the plugin server (plugdock server --data DIR), or manage it.",
    invoke_without_command=True,
    cls=HelpStyle,
)
token_app = typer.Typer(help="Publisher and reviewer tokens of a plugin server.", cls=HelpStyle)
server_app.add_typer(token_app, name="token")
review_app = typer.Typer(
    help="The review queue of a plugin server (with a reviewer token).", cls=HelpStyle
)
server_app.add_typer(review_app, name="review")


def load_settings() -> Settings:
    """The instance's settings; pydantic-settings loads only when a command reads them."""
    from plugdock.config import load_settings as load

    return load()


def _bar() -> Progress:
    from rich.progress import (  # only a remote download shows a bar
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


@contextmanager
def download_progress(settings: Settings) -> Iterator[Source | None]:
    """The source for a CLI install: in remote mode one that shows a Rich download bar.

    Yields None in local mode (the installer then uses its usual source).
    """
    from plugdock.config import PluginSource

    if settings.plugin_source is not PluginSource.REMOTE:
        yield None
        return
    from plugdock.sources.remote import RemoteSource

    with _bar() as bar:
        task = None

        def progress(done: int, total: int | None) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("downloading", total=total)
            bar.update(task, completed=done, total=total)

        def warn(message: str) -> None:
            err_console.print(f"[yellow]warning:[/] {message}", highlight=False)

        yield RemoteSource(settings, progress=progress, warn=warn)


# ----------------------------------------------------------------------- signing


def keygen(
    name: str = typer.Argument(..., help="Key name, e.g. your publisher name."),
    directory: Path = typer.Option(
        Path("."), "--dir", "-d", metavar="FOLDER", help="Where to write the keys."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
) -> None:
    """Create an Ed25519 signing key: NAME.key (private, mode 0600) and NAME.pub."""
    from plugdock.trust.signing import generate_keypair, key_id, load_public_key

    private, public = generate_keypair(directory, name, overwrite=force)
    console.print(f"wrote {private} (private: keep it secret) and {public}")
    console.print(f"key id {key_id(load_public_key(public))}")
    console.print(f"next: plugdock sign PACKAGE.zip --key {private}")


def sign(
    package: Path = typer.Argument(..., help="The package zip to sign."),
    key: Path = typer.Option(
        ..., "--key", "-k", metavar="FILE", help="Private key from 'plugdock keygen'."
    ),
    signer: str | None = typer.Option(
        None, "--signer", metavar="NAME", help="Your name (default: key name)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="PACKAGE", help="Write here, not in place."
    ),
) -> None:
    """Sign a package: adds SIGNATURE.json over its checksums (so over every file)."""
    from plugdock.package.archive import Limits
    from plugdock.trust.signing import key_id, load_private_key, sign_package

    private = load_private_key(key)
    written = sign_package(
        package,
        private,
        signer or key.stem,
        output=output,
        limits=Limits.from_settings(load_settings()),
    )
    console.print(
        f"[green]signed[/] {written} as {signer or key.stem} "
        f"(key {key_id(private.public_key())[:16]})"
    )


def verify(package: Path = typer.Argument(..., help="The package zip.")) -> None:
    """Say who signed a package and whether this instance trusts that key.

    Exits 0 when the instance's signature policy would accept the package, 1 otherwise.
    """
    from plugdock.errors import SignatureError
    from plugdock.package.archive import Limits, inspect_package
    from plugdock.trust.store import TrustStore, enforce, examine

    settings = load_settings()
    info = inspect_package(package, Limits.from_settings(settings))
    verdict = examine(info, TrustStore(settings.trust_dir))
    meta = info.metadata
    colour = {"trusted": "green", "untrusted": "yellow", "unsigned": "yellow"}.get(
        verdict.status, "red"
    )
    console.print(
        f"{meta.id} {meta.version}: [{colour}]{verdict.status}[/] — {verdict.detail}",
        highlight=False,
    )
    if verdict.key_id:
        console.print(f"  key id {verdict.key_id}")
    policy = settings.effective_signature_policy.value
    try:
        enforce(info, settings)
    except SignatureError:
        console.print(f"  this instance would refuse it (signature policy {policy})")
        raise typer.Exit(1) from None
    console.print(f"  this instance would accept it (signature policy {policy})")


# ------------------------------------------------------------------------- trust


@trust_app.command("add")
def trust_add(
    public_key: Path = typer.Argument(..., metavar="PUBKEY", help="A .pub file from keygen."),
    name: str = typer.Option(..., "--name", "-n", help="Who this key belongs to."),
) -> None:
    """Trust a publisher's public key: packages it signs may be installed."""
    from plugdock.trust.signing import load_public_key
    from plugdock.trust.store import TrustStore

    trusted = TrustStore(load_settings().trust_dir).add(load_public_key(public_key), name)
    console.print(f"[green]trusted[/] {trusted.name}: key id {trusted.key_id}")


@trust_app.command("list")
def trust_list() -> None:
    """List trusted publisher keys and pinned plugin servers."""
    from rich.table import Table

    from plugdock.trust.store import TrustStore, pinned_servers

    settings = load_settings()
    keys = TrustStore(settings.trust_dir).list()
    table = Table("name", "key id", "added", title="trusted publisher keys")
    for key in keys:
        table.add_row(key.name, key.key_id, key.added)
    console.print(table if keys else "no trusted publisher keys (plugdock trust add)")
    servers = pinned_servers(settings)
    if servers:
        table = Table("server", "pinned", "how", "root key ids", title="plugin servers")
        for server in servers:
            root_ids = server.get("root_key_ids")
            ids = ", ".join(str(k)[:16] for k in root_ids) if isinstance(root_ids, list) else ""
            table.add_row(str(server["url"]), str(server["pinned"]), str(server["how"]), ids)
        console.print(table)


@trust_app.command("remove")
def trust_remove(
    key: str = typer.Argument(..., metavar="NAME|KEY_ID", help="A name or key id (prefix)."),
) -> None:
    """Stop trusting a publisher key."""
    from plugdock.trust.store import TrustStore

    removed = TrustStore(load_settings().trust_dir).remove(key)
    console.print(f"removed {removed.label}")


@trust_app.command("bind")
def trust_bind(
    plugin_id: str = typer.Argument(..., metavar="ID", help="A plugin id."),
    key: str = typer.Argument(
        ..., metavar="NAME|FINGERPRINT", help="A trusted key: its name, or fingerprint (prefix)."
    ),
    by: str | None = typer.Option(
        None, "--by", metavar="NAME", help="Who rebinds (recorded in the audit log)."
    ),
) -> None:
    """Bind a plugin id to a trusted publisher key (an explicit rotation after a key change).

    From then on only packages of ID signed by that key install or upgrade.
    """
    from plugdock.core.db import make_engine
    from plugdock.trust.binding import get_binding, rebind_signer
    from plugdock.trust.store import TrustStore

    settings = load_settings()
    trusted = TrustStore(settings.trust_dir).find(key)
    engine = make_engine(settings.db_url)
    try:
        with engine.begin() as conn:
            before = get_binding(conn, plugin_id)
            rebind_signer(conn, plugin_id, trusted.key_id, by)
    finally:
        engine.dispose()
    was = f" (was {before.key_id})" if before and before.key_id != trusted.key_id else ""
    console.print(
        f"[green]bound[/] {plugin_id} to key {trusted.key_id} ({trusted.name}){was}",
        highlight=False,
    )


@trust_app.command("unbind")
def trust_unbind(
    plugin_id: str = typer.Argument(..., metavar="ID", help="A plugin id."),
    by: str | None = typer.Option(
        None, "--by", metavar="NAME", help="Who unbinds (recorded in the audit log)."
    ),
) -> None:
    """Forget which key a plugin id is bound to (its next signed install binds it again)."""
    from plugdock.core.db import make_engine
    from plugdock.errors import NotFoundError
    from plugdock.trust.binding import unbind_signer

    engine = make_engine(load_settings().db_url)
    try:
        with engine.begin() as conn:
            if not unbind_signer(conn, plugin_id, by):
                raise NotFoundError(f"{plugin_id} is not bound to any key")
    finally:
        engine.dispose()
    console.print(f"unbound {plugin_id}")


@trust_app.command("bindings")
def trust_bindings() -> None:
    """List which publisher key each plugin id is bound to."""
    from plugdock.core.db import connect_read, make_engine
    from plugdock.trust.binding import list_bindings
    from plugdock.trust.store import TrustStore

    settings = load_settings()
    names = {k.key_id: k.name for k in TrustStore(settings.trust_dir).list()}
    engine = make_engine(settings.db_url)
    try:
        with connect_read(engine) as conn:
            bindings = list_bindings(conn)
    finally:
        engine.dispose()
    if not bindings:
        console.print("no plugin id is bound to a key yet (the first signed install binds it)")
        return
    # One line per binding, never a table: the fingerprint is what an admin compares, and a
    # table cuts it (or the plugin id) on a narrow terminal.
    console.print("key bindings (plugin id: key fingerprint, trusted as, bound):")
    for binding in bindings:
        console.print(
            f"{binding.plugin_id}: {binding.key_id}, "
            f"{names.get(binding.key_id, '[red]not trusted[/]')}, "
            f"bound {binding.bound_at.isoformat()}"
            + (f" by {binding.bound_by}" if binding.bound_by else ""),
            soft_wrap=True,
            highlight=False,
        )


@trust_app.command("server")
def trust_server(
    url: str = typer.Argument(..., metavar="URL", help="The plugin server's base URL."),
    root: Path | None = typer.Option(
        None,
        "--root",
        metavar="FILE",
        help="Its TUF root.json, obtained out of band (recommended).",
    ),
    allow_http: bool = typer.Option(
        False,
        "--allow-http",
        help="Fetch the root over plain http (anyone on the path could substitute it).",
    ),
) -> None:
    """Pin the root of a plugin server's signed index (from a file, or fetched now)."""
    from plugdock.errors import PlugdockError
    from plugdock.trust.store import normalize_server_url, pin_server_root

    settings = load_settings()
    if root is not None:
        data = root.read_bytes()
        how = "file"
    else:
        import httpx

        from plugdock.errors import SourceUnavailableError

        target = normalize_server_url(url) + "/tuf/root.json"
        if target.startswith("http://") and not (allow_http or settings.allow_http_pin):
            raise PlugdockError(
                f"refusing to fetch the index root over plain http ({url}): pass --root "
                "root.json (the file from the server's operator), or --allow-http"
            )
        try:
            response = httpx.get(target, timeout=settings.download_timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SourceUnavailableError(f"cannot fetch {target}: {exc}") from None
        data, how = response.content, "fetched"
    key_ids = pin_server_root(settings, url, data, how=how)
    console.print(f"[green]pinned[/] {normalize_server_url(url)}: root keys")
    for kid in key_ids:
        console.print(f"  {kid}")
    if how == "fetched":
        err_console.print(
            "[yellow]warning:[/] the root was fetched from the server itself; compare the key "
            "ids above with the ones 'plugdock server' printed at start-up"
        )


# ----------------------------------------------------------------------- publish


def publish(
    package: Path = typer.Argument(..., help="The package zip (signed: plugdock sign)."),
    server: str | None = typer.Option(
        None,
        "--server",
        "-s",
        metavar="URL",
        envvar="PLUGIN_SERVER_URL",
        help="The plugin server URL.",
    ),
    token: str = typer.Option(
        ..., "--token", "-t", envvar="PLUGDOCK_PUBLISH_TOKEN", help="Your publisher token."
    ),
) -> None:
    """Upload a package to a plugin server (runs every install check there first)."""
    from plugdock.errors import PlugdockError
    from plugdock.server.client import publish as publish_zip

    if not server:
        raise PlugdockError("say which server: --server URL (or PLUGIN_SERVER_URL)")
    with _bar() as bar:
        task = bar.add_task(f"uploading {package.name}", total=package.stat().st_size)
        record = publish_zip(
            package, server, token, progress=lambda done, total: bar.update(task, completed=done)
        )
    from rich.markup import escape

    signer = escape(str(record.get("signer")))  # the package names its signer
    signed = f"signed by {signer}" if record.get("signed") else "unsigned"
    if record.get("status") == "pending":
        console.print(
            f"[yellow]pending review[/] {record['id']} {record['version']} ({record['size']} "
            f"bytes, sha256 {record['sha256'][:16]}…, {signed}): hosts see it once a reviewer "
            f"approves it; follow it with: plugdock server status {record['id']}",
            highlight=False,
        )
        return
    console.print(
        f"[green]published[/] {record['id']} {record['version']} ({record['size']} bytes, "
        f"sha256 {record['sha256'][:16]}…, {signed})"
    )


# ------------------------------------------------------------------------ server


@server_app.callback()
def server(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    data: Path = typer.Option(
        Path("server-data"),
        "--data",
        metavar="FOLDER",
        envvar="PLUGDOCK_SERVER_DATA",
        help="Storage folder.",
    ),
    review: str = typer.Option(
        "required",
        "--review",
        envvar="PLUGDOCK_SERVER_REVIEW",
        help="required: a reviewer approves each version before hosts see it; off: at once.",
    ),
) -> None:
    """Run the plugin server (packages, manifest, signed index, publishing, review)."""
    if ctx.invoked_subcommand is not None:
        return
    from plugdock.errors import PlugdockError
    from plugdock.server import Storage, serve
    from plugdock.server.app import REVIEW_MODES

    if review not in REVIEW_MODES:
        raise PlugdockError(f"--review must be one of {', '.join(REVIEW_MODES)}, not {review!r}")
    storage = Storage(data).ensure()
    err_console.print(f"plugdock plugin server on http://{host}:{port}/  (data {storage.data_dir})")
    if review == "required":
        err_console.print(
            f"review required: reviewers approve versions at http://{host}:{port}/review"
        )
    else:
        err_console.print("review off: published versions are listed at once")
    err_console.print("signed index root keys (hosts pin these: plugdock trust server URL):")
    for kid in storage.index.root_key_ids():
        err_console.print(f"  {kid}")
    err_console.print(f"root metadata: {storage.index.metadata_dir / '1.root.json'}")
    serve(
        data,
        host,
        port,
        warn=lambda message: err_console.print(f"[yellow]warning:[/] {message}", highlight=False),
        review=review,
    )


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="Publisher (or reviewer) name."),
    data: Path = typer.Option(
        Path("server-data"),
        "--data",
        metavar="FOLDER",
        envvar="PLUGDOCK_SERVER_DATA",
        help="Storage folder.",
    ),
    role: str = typer.Option(
        "publisher", "--role", help="publisher (uploads) or reviewer (approves, rejects)."
    ),
) -> None:
    """Create (or replace) a token; it is shown once, only its hash is kept."""
    from plugdock.server import Storage

    token = Storage(data).ensure().create_token(name, role)
    err_console.print(f"token for {role} {name} (shown once; only its hash is stored):")
    console.print(token)


# ------------------------------------------------------------------------ review

_SERVER = typer.Option(
    None, "--server", "-s", metavar="URL", envvar="PLUGIN_SERVER_URL", help="The plugin server URL."
)
_REVIEW_TOKEN = typer.Option(
    ..., "--token", "-t", envvar="PLUGDOCK_REVIEW_TOKEN", help="Your reviewer token."
)


def _server_url(server: str | None) -> str:
    from plugdock.errors import PlugdockError

    if not server:
        raise PlugdockError("say which server: --server URL (or PLUGIN_SERVER_URL)")
    return server


def _version_path(plugin_id: str, version: str) -> str:
    from urllib.parse import quote

    return f"/api/v1/review/versions/{quote(plugin_id, safe='')}/{quote(version, safe='')}"


@review_app.command("list")
def review_list(
    status: str = typer.Option("pending", "--status", help="pending, approved, rejected or all."),
    server: str | None = _SERVER,
    token: str = _REVIEW_TOKEN,
) -> None:
    """The versions waiting for review (or with another status)."""
    from rich.markup import escape
    from rich.table import Table

    from plugdock.server.client import call

    data = call(
        _server_url(server), token, "GET", "/api/v1/review/versions", params={"status": status}
    )
    versions = data["versions"]
    if not versions:
        console.print(f"no {status} versions")
        return
    table = Table("plugin", "version", "publisher", "uploaded", "signature", "status")
    for v in versions:
        signature = f"signed by {v.get('signer')}" if v.get("signed") else "unsigned"
        cells = (v["id"], v["version"], v.get("publisher", ""), v.get("published", ""))
        table.add_row(  # cells are markup: escape what packages say
            *(escape(str(c)) for c in (*cells, signature, v.get("status", "published")))
        )
    console.print(table)


@review_app.command("show")
def review_show(
    plugin_id: str = typer.Argument(..., metavar="ID", help="A plugin id."),
    version: str = typer.Argument(..., help="The version, e.g. 1.2.0."),
    server: str | None = _SERVER,
    token: str = _REVIEW_TOKEN,
    as_json: bool = typer.Option(False, "--json", help="The whole report as JSON."),
) -> None:
    """A version's automated report: checks, declared permissions/routes/tables, scan, diff."""
    import json

    from plugdock.server.client import call

    data = call(_server_url(server), token, "GET", _version_path(plugin_id, version))
    if as_json:
        console.print_json(json.dumps(data))
        return
    record, report = data["record"], data.get("report")
    out = Console(highlight=False, markup=False)  # package text is shown as text
    out.print(f"{plugin_id} {version}: {record.get('status', 'published')}")
    out.print(f"  publisher {record.get('publisher')}, uploaded {record.get('published')}")
    out.print(f"  sha256 {record['sha256']}, {record['size']} bytes")
    if record.get("reason"):
        out.print(f"  rejected by {record.get('rejected_by')}: {record['reason']}")
    if record.get("approved_by"):
        out.print(f"  approved by {record['approved_by']} at {record.get('approved')}")
    if report is None:
        out.print("  no automated report (published with review off)")
        return
    declared = report["declared"]
    for label, key in (
        ("permissions", "permissions"),
        ("backend routes", "backend_routes"),
        ("pages", "frontend_routes"),
        ("tables", "tables"),
    ):
        out.print(f"  {label}: {', '.join(declared[key]) or 'none'}")
    scan = report["scan"]
    counts = ", ".join(f"{n} {k.lower()}" for k, n in scan.get("counts", {}).items())
    out.print(f"scan ({scan.get('tool')}): {scan.get('status')}; {counts}")
    for finding in scan.get("findings", []):
        when = "AT IMPORT" if finding.get("at_import") else "in a function"
        out.print(
            f"  {finding['severity']:<6} {when:<13} {finding['file']}:{finding['line']} "
            f"{finding['test_id']} {finding['text']}"
        )
    upgrade = report["checks"].get("upgrade")
    if upgrade:
        verdict = "ok" if upgrade["ok"] else "; ".join(upgrade["problems"])
        out.print(f"upgrade from {upgrade['from']}: {verdict}")
    diff = report.get("diff")
    if diff is None:
        out.print("diff: first version under review, nothing to compare")
        return
    out.print(f"diff against {diff['against']}:")
    for key in ("permissions", "tables", "backend_routes", "frontend_routes", "files"):
        change = diff[key]
        parts = [f"+{x}" for x in change["added"]] + [f"-{x}" for x in change["removed"]]
        parts += [f"~{x}" for x in change.get("changed", [])]
        out.print(f"  {key}: {' '.join(parts) or 'no change'}")
    for sql in diff["sql"]:
        out.print(f"  SQL {sql['path']} ({sql['status']}):")
        out.print(sql["diff"], markup=False)


@review_app.command("approve")
def review_approve(
    plugin_id: str = typer.Argument(..., metavar="ID", help="A plugin id."),
    version: str = typer.Argument(..., help="The version, e.g. 1.2.0."),
    server: str | None = _SERVER,
    token: str = _REVIEW_TOKEN,
) -> None:
    """Approve a pending version: it is signed into the index and hosts can install it."""
    from plugdock.server.client import call

    record = call(
        _server_url(server), token, "POST", _version_path(plugin_id, version) + "/approve"
    )
    console.print(
        f"[green]approved[/] {plugin_id} {version} (by {record.get('approved_by')}): listed and "
        "signed into the index",
        highlight=False,
    )


@review_app.command("reject")
def review_reject(
    plugin_id: str = typer.Argument(..., metavar="ID", help="A plugin id."),
    version: str = typer.Argument(..., help="The version, e.g. 1.2.0."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (the publisher sees it)."),
    server: str | None = _SERVER,
    token: str = _REVIEW_TOKEN,
) -> None:
    """Reject a pending version with a reason: never listed; its version number stays taken."""
    from plugdock.server.client import call

    call(
        _server_url(server),
        token,
        "POST",
        _version_path(plugin_id, version) + "/reject",
        json={"reason": reason},
    )
    from rich.markup import escape

    console.print(f"[red]rejected[/] {plugin_id} {version}: {escape(reason)}", highlight=False)


@server_app.command("status")
def server_status(
    plugin_id: str | None = typer.Argument(
        None, metavar="[ID]", help="Only this plugin's versions."
    ),
    server: str | None = _SERVER,
    token: str = typer.Option(
        ..., "--token", "-t", envvar="PLUGDOCK_PUBLISH_TOKEN", help="Your publisher token."
    ),
) -> None:
    """Your published versions and their review status (with the reason of a rejection)."""
    from plugdock.server.client import call

    params = {"plugin": plugin_id} if plugin_id else None
    data = call(_server_url(server), token, "GET", "/api/v1/publisher/versions", params=params)
    if not data["versions"]:
        console.print("no versions published yet")
        return
    out = Console(highlight=False, markup=False)  # package text is shown as text
    for v in data["versions"]:
        status = "pending review" if v["status"] == "pending" else v["status"]
        line = f"{v['id']} {v['version']}: {status}"
        if v.get("approved_by"):
            line += f" (approved by {v['approved_by']})"
        if v.get("reason"):
            line += f" — reason: {v['reason']}"
        out.print(line, markup=False)


def register(app: typer.Typer) -> None:
    """Add keygen, sign, verify, trust, publish and server to the ``plugdock`` command."""
    app.command()(keygen)
    app.command()(sign)
    app.command()(verify)
    app.command()(publish)
    app.add_typer(trust_app, name="trust")
    app.add_typer(server_app, name="server")
