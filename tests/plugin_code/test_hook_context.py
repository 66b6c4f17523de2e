"""The context a plugin's lifecycle hooks get: ``plugdock.sdk.HookContext``.

A hook does its work with it (seed its own table in the operation's transaction, read
its own settings, log under its own name), and it carries nothing of the host: no host
``Settings``, no secret key, no paths. The type is what authors annotate with, so mypy
must accept correct use and flag reaching for anything else.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from plugdock import sdk
from plugdock.config import Settings
from plugdock.core.db import make_engine
from plugdock.installer import Installer
from support import REPO, instance_settings, make_plugin, pack_into

#: Filled by the probe plugin's hooks (the plugin imports this module by name).
SEEN: list[sdk.HookContext] = []
SECRET = "host-secret-key-7f3a9c"
ADMIN_PASSWORD = "host-admin-password-51be"

PROBE = """\
from sqlalchemy import text

from plugdock import sdk

from .routes import router

import test_hook_context as probe


def on_install(ctx: sdk.HookContext) -> None:
    probe.SEEN.append(ctx)
    greeting = ctx.settings.get("greeting", "none")
    ctx.connection.execute(
        text("INSERT INTO probe_notes (body) VALUES (:b)"),
        {"b": f"{ctx.operation} {ctx.plugin_id} {ctx.version} {greeting}"},
    )
    ctx.logger.info("seeded %s", ctx.plugin_id)


def on_upgrade(ctx: sdk.HookContext, from_version: str) -> None:
    probe.SEEN.append(ctx)
    ctx.connection.execute(
        text("INSERT INTO probe_notes (body) VALUES (:b)"),
        {"b": f"{ctx.operation} {ctx.from_version}->{ctx.version} ({from_version})"},
    )


def on_uninstall(ctx: sdk.HookContext) -> None:
    probe.SEEN.append(ctx)
    count = ctx.connection.execute(text("SELECT COUNT(*) FROM probe_notes")).scalar()
    ctx.logger.info("uninstalling with %s notes", count)
"""


@pytest.fixture
def installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installer]:
    """A SQLite instance whose host settings hold a secret key and an admin password."""
    monkeypatch.setenv("PLUGDOCK_SECRET_KEY", SECRET)  # as a host would configure it
    monkeypatch.setenv("PLUGDOCK_PLUGIN_PROBE_GREETING", "hi")  # the plugin's own setting
    settings = instance_settings(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}").model_copy(
        update={"secret_key": SecretStr(SECRET), "admin_password": SecretStr(ADMIN_PASSWORD)}
    )
    engine = make_engine(settings.db_url)
    installer = Installer(settings, engine=engine)
    installer.workspace.rewrite_registry()
    SEEN.clear()
    yield installer
    SEEN.clear()
    engine.dispose()


def _probe(tmp_path: Path, version: str = "1.0.0", **kwargs: Any) -> Path:
    folder = make_plugin(
        tmp_path, "probe", version, extra_files={"backend/__init__.py": PROBE}, **kwargs
    )
    return pack_into(folder, tmp_path / "zips")


def _notes(installer: Installer) -> list[str]:
    with installer.engine.connect() as conn:
        return list(conn.execute(text("SELECT body FROM probe_notes ORDER BY id")).scalars())


def test_a_hook_does_its_work_with_the_context(
    installer: Installer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugdock.plugins.probe")
    installer.install(_probe(tmp_path))
    assert _notes(installer) == ["hello", "install probe 1.0.0 hi"]
    assert ("plugdock.plugins.probe", "seeded probe") in [
        (r.name, r.getMessage()) for r in caplog.records
    ]

    installer.upgrade("probe", package=_probe(tmp_path, "1.1.0"))
    assert _notes(installer)[-1] == "upgrade 1.0.0->1.1.0 (1.0.0)"

    installer.uninstall("probe")
    assert "uninstalling with 3 notes" in caplog.text  # its tables still existed
    assert [(c.operation, c.version, c.from_version) for c in SEEN] == [
        ("install", "1.0.0", None),
        ("upgrade", "1.1.0", "1.0.0"),
        ("uninstall", "1.1.0", None),
    ]


def test_the_context_holds_nothing_of_the_host(installer: Installer, tmp_path: Path) -> None:
    installer.install(_probe(tmp_path))
    [ctx] = SEEN
    assert type(ctx) is sdk.HookContext
    assert [f.name for f in dataclasses.fields(ctx)] == [
        "plugin_id",
        "version",
        "operation",
        "connection",
        "settings",
        "logger",
        "from_version",
    ]
    # What the old context exposed is gone: the host's Settings, paths, internals.
    for name in ("metadata", "backend_dir", "operation_id", "module_token", "engine", "home"):
        assert not hasattr(ctx, name), name
    assert not hasattr(ctx, "__dict__")  # slots: nothing can be hung on it either
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.settings = installer.settings  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        ctx.host_settings = installer.settings  # type: ignore[attr-defined]

    # Its settings are the plugin's own (PLUGDOCK_PLUGIN_PROBE_*), not the host's.
    assert dict(ctx.settings) == {"greeting": "hi"}
    assert ctx.logger.name == "plugdock.plugins.probe"
    plain = [getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name != "connection"]
    assert not any(isinstance(value, Settings) for value in plain)
    rendered = repr(plain) + repr(dict(ctx.settings))
    assert SECRET not in rendered and ADMIN_PASSWORD not in rendered


@pytest.mark.slow  # mypy, 20 s with a cold cache
def test_the_context_type_checks(tmp_path: Path) -> None:
    """Correct use passes mypy; reaching for the host or writing to the context does not."""
    good = tmp_path / "good_hooks.py"
    good.write_text(
        textwrap.dedent(
            """\
            import logging
            from collections.abc import Mapping

            from sqlalchemy import Connection, text

            from plugdock import sdk


            def on_install(ctx: sdk.HookContext) -> None:
                conn: Connection = ctx.connection
                conn.execute(text("SELECT 1"))
                settings: Mapping[str, str] = ctx.settings
                logger: logging.Logger = ctx.logger
                logger.info("%s %s %s", ctx.plugin_id, ctx.version, settings.get("x"))


            def on_upgrade(ctx: sdk.HookContext, from_version: str) -> None:
                previous: str | None = ctx.from_version
                assert ctx.operation == "upgrade" and previous == from_version
            """
        )
    )
    bad = tmp_path / "bad_hooks.py"
    bad.write_text(
        textwrap.dedent(
            """\
            from plugdock import sdk


            def on_install(ctx: sdk.HookContext) -> None:
                print(ctx.settings.secret_key)
                print(ctx.engine)
                ctx.version = "9.9.9"
                ctx.settings["greeting"] = "changed"
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(REPO / ".mypy_cache"),
            str(good),
            str(bad),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "good_hooks.py" in e], result.stdout
    flagged = {int(e.split(":")[1]) for e in errors if "bad_hooks.py" in e}
    assert flagged == {5, 6, 7, 8}, result.stdout
