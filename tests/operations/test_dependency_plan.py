"""Dependencies, resolved: install plans them (deps first, all or nothing), uninstall and
upgrade keep every installed plugin's ranges true. Tiny generated plugins in the local source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from plugdock.core.db import audit_log
from plugdock.errors import PackageError, PlugdockError, StepError
from plugdock.installer import Installer
from plugdock.instance import audit
from plugdock.operations.plan import PlanError
from support import make_plugin, pack_into, snapshot

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# What an operation that changed nothing leaves exactly as it was (audit and generation
# may record an undone dependency, so they are compared separately where it matters).
STATE = ("addons", "rows", "applied", "tables", "journal", "staging")


def offer(
    installer: Installer,
    plugin_id: str,
    version: str = "1.0.0",
    deps: dict[str, str] | None = None,
    **metadata: Any,
) -> None:
    """Put ``plugin_id`` ``version`` into the instance's local source folder."""
    folder = make_plugin(
        installer.settings.plugin_local_dir.parent / "src",
        plugin_id,
        version,
        metadata={"dependencies": deps or {}} | metadata,
    )
    pack_into(folder, installer.settings.plugin_local_dir)


def offer_failing(installer: Installer, plugin_id: str, deps: dict[str, str]) -> None:
    """A plugin whose on_install raises (after its up.sql ran in the transaction)."""
    folder = make_plugin(
        installer.settings.plugin_local_dir.parent / "src",
        plugin_id,
        metadata={"dependencies": deps},
        extra_files={
            "backend/__init__.py": "from .routes import router\n\n\n"
            "def on_install(ctx):\n    raise RuntimeError('on_install refuses')\n"
        },
    )
    pack_into(folder, installer.settings.plugin_local_dir)


def offer_diamond(installer: Installer) -> None:
    """a → b, a → c, b → d >=1.0.0, c → d >=1.2.0,<2.0.0; d 1.0.0/1.2.0/1.3.0/2.0.0."""
    offer(installer, "pa", deps={"pb": ">=1.0.0", "pc": ">=1.0.0"})
    offer(installer, "pb", deps={"pd": ">=1.0.0"})
    offer(installer, "pc", deps={"pd": ">=1.2.0,<2.0.0"})
    for version in ("1.0.0", "1.2.0", "1.3.0", "2.0.0"):
        offer(installer, "pd", version)


def versions(installer: Installer) -> dict[str, str]:
    return {i.plugin_id: i.version for i in installer.installed()}


def state(installer: Installer) -> dict[str, Any]:
    full = snapshot(installer.settings, installer.engine)
    return {key: full[key] for key in STATE}


def test_diamond_picks_the_highest_version_every_range_allows(installer: Installer) -> None:
    offer_diamond(installer)

    planned = installer.plan("pa")
    assert [(p.plugin_id, p.version) for p in planned] in (
        [("pd", "1.3.0"), ("pb", "1.0.0"), ("pc", "1.0.0"), ("pa", "1.0.0")],
        [("pd", "1.3.0"), ("pc", "1.0.0"), ("pb", "1.0.0"), ("pa", "1.0.0")],
    )
    reasons = {p.plugin_id: p.reason for p in planned}
    assert reasons["pa"] == "requested"
    assert "pb (>=1.0.0)" in reasons["pd"] and "pc (>=1.2.0,<2.0.0)" in reasons["pd"]
    assert installer.installed() == []  # planning changes nothing

    result = installer.install("pa", installed_by="alice")

    assert result.plugin_id == "pa"
    assert result.dependencies[0] == "pd" and set(result.dependencies) == {"pb", "pc", "pd"}
    assert versions(installer) == {"pa": "1.0.0", "pb": "1.0.0", "pc": "1.0.0", "pd": "1.3.0"}
    with installer.engine.connect() as conn:
        installs = [
            r.plugin_id
            for r in conn.execute(
                select(audit_log)
                .where(audit_log.c.action == audit.INSTALL)
                .order_by(audit_log.c.id)
            )
        ]
    assert installs == [*result.dependencies, "pa"]  # deps really went in first


@SQLITE
def test_an_installed_dependency_is_reused_not_reinstalled(installer: Installer) -> None:
    offer_diamond(installer)
    installer.install("pd@1.2.0")
    planned = installer.plan("pa")
    assert [p.plugin_id for p in planned if p.plugin_id == "pd"] == []
    installer.install("pa")
    assert versions(installer)["pd"] == "1.2.0"


@SQLITE
def test_a_range_from_a_version_no_longer_chosen_does_not_constrain(installer: Installer) -> None:
    """pb 2.0.0 (→ pd >=2) is tried first, then pc narrows pb to 1.x (→ pd <2): pd 1.0.0."""
    offer(installer, "pa", deps={"pb": ">=1.0.0", "pc": ">=1.0.0"})
    offer(installer, "pb", "2.0.0", deps={"pd": ">=2.0.0"})
    offer(installer, "pb", "1.0.0", deps={"pd": "<2.0.0"})
    offer(installer, "pc", deps={"pb": "<2.0.0"})
    offer(installer, "pd", "1.0.0")
    offer(installer, "pd", "2.0.0")

    planned = {p.plugin_id: p for p in installer.plan("pa")}

    assert {k: p.version for k, p in planned.items()} == {
        "pa": "1.0.0",
        "pb": "1.0.0",
        "pc": "1.0.0",
        "pd": "1.0.0",
    }
    assert ">=2.0.0" not in planned["pd"].reason  # only what the chosen versions ask


@SQLITE
def test_a_cycle_is_refused_named_and_nothing_installed(installer: Installer) -> None:
    offer(installer, "pa", deps={"pb": ">=1.0.0"})
    offer(installer, "pb", deps={"pc": ">=1.0.0"})
    offer(installer, "pc", deps={"pa": ">=1.0.0"})
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(PlanError, match="dependency cycle: pa → pb → pc → pa"):
        installer.install("pa")

    assert snapshot(installer.settings, installer.engine) == before


@SQLITE
def test_impossible_ranges_are_named(installer: Installer) -> None:
    offer(installer, "pa", deps={"pb": ">=2.0.0"})
    offer(installer, "pb", "1.0.0")
    offer(installer, "pb", "1.5.0")
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PlanError) as caught:
        installer.install("pa")
    message = str(caught.value)
    assert "pb" in message and ">=2.0.0 (needed by pa)" in message and "1.5.0, 1.0.0" in message

    # Two ranges that each can be met, but never together: both are named.
    offer(installer, "px", deps={"py": ">=1.0.0", "pz": ">=1.0.0"})
    offer(installer, "py", deps={"pb": "<1.2.0"})
    offer(installer, "pz", deps={"pb": ">=1.2.0"})
    with pytest.raises(PlanError) as caught:
        installer.install("px")
    message = str(caught.value)
    assert "<1.2.0 (needed by py)" in message and ">=1.2.0 (needed by pz)" in message

    offer(installer, "lonely", deps={"nowhere": ">=1.0.0"})
    with pytest.raises(PlanError, match=r"nowhere is needed .* the source does not offer it"):
        installer.install("lonely")
    assert snapshot(installer.settings, installer.engine) == before


@SQLITE
def test_an_installed_dependency_that_is_too_old_is_refused(installer: Installer) -> None:
    offer_diamond(installer)
    installer.install("pd@1.0.0")
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(PlanError) as caught:
        installer.install("pa")

    message = str(caught.value)
    assert "pc needs pd >=1.2.0,<2.0.0, but 1.0.0 is installed" in message
    assert "upgrade pd first" in message
    assert snapshot(installer.settings, installer.engine) == before


@SQLITE
def test_a_version_needing_another_core_is_passed_over(installer: Installer) -> None:
    offer(installer, "pa", deps={"pb": ">=1.0.0"})
    offer(installer, "pb", "1.0.0")
    offer(installer, "pb", "1.1.0")
    offer(installer, "pb", "1.2.0", requires=">=99.0.0")

    assert [(p.plugin_id, p.version) for p in installer.plan("pa")] == [
        ("pb", "1.1.0"),
        ("pa", "1.0.0"),
    ]
    installer.install("pa")
    assert versions(installer) == {"pa": "1.0.0", "pb": "1.1.0"}

    # The requested plugin itself, when no version is asked for, is picked the same way.
    offer(installer, "pb", "2.0.0", requires=">=99.0.0")
    installer.uninstall("pa")
    installer.uninstall("pb")
    assert [(p.plugin_id, p.version) for p in installer.plan("pb")] == [("pb", "1.1.0")]
    assert installer.install("pb").version == "1.1.0"
    with pytest.raises(PlanError, match=r"pb 2\.0\.0 needs plugdock >=99\.0\.0"):
        installer.plan("pb", "2.0.0")  # asked for by name: refused, not replaced

    # When no version fits this core, the refusal says so.
    offer(installer, "pq", deps={"pr": ">=1.0.0"})
    offer(installer, "pr", "1.0.0", requires=">=99.0.0")
    with pytest.raises(PlanError, match="no version of pr satisfies"):
        installer.install("pq")


@pytest.mark.parametrize("failing", ["pa", "pc"])
def test_all_or_nothing_when_a_later_install_fails(installer: Installer, failing: str) -> None:
    """The requested plugin's (or a middle dependency's) on_install raises: every plugin
    this call installed is gone again, with its tables, rows, migrations and code."""
    offer(installer, "pd", "1.3.0")
    offer(installer, "pb", deps={"pd": ">=1.0.0"})
    deps = {"pa": {"pb": ">=1.0.0", "pc": ">=1.0.0"}, "pc": {"pd": ">=1.2.0"}}
    for plugin_id in ("pa", "pc"):
        if plugin_id == failing:
            offer_failing(installer, plugin_id, deps[plugin_id])
        else:
            offer(installer, plugin_id, deps=deps[plugin_id])
    offer(installer, "keeper")
    installer.install("keeper")  # a plugin installed before is not touched
    before = state(installer)

    with pytest.raises(StepError, match="on_install refuses"):
        installer.install("pa")

    assert state(installer) == before
    assert versions(installer) == {"keeper": "1.0.0"}
    with installer.engine.connect() as conn:
        actions = [
            (r.action, r.plugin_id)
            for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
        ][1:]
    installed = [p for action, p in actions if action == audit.INSTALL]
    removed = [p for action, p in actions if action == audit.UNINSTALL]
    assert failing not in installed and installed and removed == installed[::-1]


@SQLITE
def test_uninstall_refuses_while_dependents_exist(installer: Installer) -> None:
    offer_diamond(installer)
    installer.install("pa")
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(PlugdockError, match="pd is needed by pb, pc; uninstall them first"):
        installer.uninstall("pd")
    with pytest.raises(PlugdockError, match="pb is needed by pa; uninstall it first"):
        installer.uninstall("pb", backup=True)

    assert snapshot(installer.settings, installer.engine) == before
    assert installer.uninstall_plan("pd")[2] == ["pb", "pc"]
    for plugin_id in ("pa", "pb", "pc", "pd"):  # in dependency order it works
        installer.uninstall(plugin_id)
    assert installer.installed() == []


@SQLITE
def test_upgrade_outside_a_dependents_range_is_refused(installer: Installer) -> None:
    offer_diamond(installer)
    installer.install("pa")
    plan = installer.upgrade_plan("pd")
    assert (plan.version, plan.compatible) == ("2.0.0", False)
    assert "pc needs pd >=1.2.0,<2.0.0" in (plan.problem or "")
    assert "pb" not in (plan.problem or "")  # pb's >=1.0.0 takes 2.0.0
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(PackageError) as caught:
        installer.upgrade("pd")

    assert "pc needs pd >=1.2.0,<2.0.0" in str(caught.value)
    assert "pb needs" not in str(caught.value)
    assert snapshot(installer.settings, installer.engine) == before
    assert installer.upgrade_plan("pd", "1.3.0").problem is not None  # same version: not newer
    # A version inside every dependent's range goes through.
    offer(installer, "pd", "1.4.0")
    assert installer.upgrade_plan("pd", "1.4.0").compatible
    assert installer.upgrade("pd", "1.4.0").version == "1.4.0"


@SQLITE
def test_partial_versions_in_ranges_as_the_issue_writes_them(installer: Installer) -> None:
    """``>=1.2.0,<2`` (the issue's own example) means <2.0.0."""
    offer(installer, "pa", deps={"pd": ">=1.2.0,<2"})
    for version in ("1.0.0", "1.3.0", "2.0.0"):
        offer(installer, "pd", version)
    installer.install("pa")
    assert versions(installer) == {"pa": "1.0.0", "pd": "1.3.0"}
    with pytest.raises(PackageError, match=r"pa needs pd >=1\.2\.0,<2"):
        installer.upgrade("pd")


@SQLITE
def test_cli_install_dry_run_prints_the_plan_and_changes_nothing(
    installer: Installer, database_url: str
) -> None:
    offer_diamond(installer)
    before = snapshot(installer.settings, installer.engine)
    env = os.environ | {
        "PLUGDOCK_HOME": str(installer.settings.home),
        "PLUGIN_LOCAL_DIR": str(installer.settings.plugin_local_dir),
        "DATABASE_URL": database_url,
        "COLUMNS": "200",
    }

    shown = subprocess.run(
        [sys.executable, "-m", "plugdock", "install", "pa", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if line.strip()]
    rows = [line for line in lines if any(f" p{x} " in line for x in "abcd")]
    order = [next(w for w in row.split() if w.startswith("p") and len(w) == 2) for row in rows]
    assert order[0] == "pd" and order[-1] == "pa" and set(order) == {"pa", "pb", "pc", "pd"}
    assert "1.3.0" in rows[0] and "requested" in rows[-1]
    assert snapshot(installer.settings, installer.engine) == before

    refused = subprocess.run(
        [sys.executable, "-m", "plugdock", "install", "nothing_here", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert refused.stderr.strip().startswith("error:") and "nothing_here" in refused.stderr


def test_a_plugin_that_an_enabled_plugin_needs_cannot_be_disabled(
    installer: Installer, tmp_path: Path
) -> None:
    modules = installer.settings.plugin_local_dir
    pack_into(make_plugin(tmp_path / "s", "base_dep", "1.0.0"), modules)
    pack_into(
        make_plugin(
            tmp_path / "s", "needs_base", "1.0.0", metadata={"dependencies": {"base_dep": ">=1"}}
        ),
        modules,
    )
    installer.install("needs_base")
    with pytest.raises(PlugdockError, match="base_dep is needed by needs_base"):
        installer.disable("base_dep")
    installer.disable("needs_base")
    installer.disable("base_dep")  # nothing enabled needs it now
    assert {i.plugin_id: i.enabled for i in installer.installed()} == {
        "base_dep": False,
        "needs_base": False,
    }
