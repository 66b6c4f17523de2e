"""Each plugin id is bound to the publisher key that signed it (issue 9, item 3).

Unit tests of plugdock.trust.binding on SQLite, PostgreSQL and MariaDB, then the attack
end to end: a plugin installed signed by key A, uninstalled, and the same id signed by
another trusted key B is refused (local source, and from a plugin server), until an admin
rebinds the id with ``plugdock trust bind``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from plugdock.cli import app
from plugdock.core.db import connect_read
from plugdock.errors import PlugdockError
from plugdock.installer import Installer
from plugdock.instance import audit
from plugdock.trust.binding import (
    SIGNER_REBIND,
    SignerMismatchError,
    bind_signer,
    check_signer,
    get_binding,
    list_bindings,
    rebind_signer,
    unbind_signer,
)
from plugdock.trust.signing import generate_keypair, key_id, load_private_key, load_public_key
from plugdock.trust.signing import sign_package as sign
from plugdock.trust.store import TrustStore
from remote_helpers import Remote, host_settings, trust_alice
from support import instance_settings, make_plugin, pack_into, snapshot

A = "a" * 64
B = "b" * 64


# ------------------------------------------------------------------ the functions


def test_the_first_signed_install_binds_and_another_key_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        check_signer(conn, "notes", A)  # nothing bound yet
        bind_signer(conn, "notes", A, "alice")
        bind_signer(conn, "notes", A, "bob")  # same key: a no-op, the first binder stays
    with engine.begin() as conn:
        binding = get_binding(conn, "notes")
        assert binding is not None and (binding.key_id, binding.bound_by) == (A, "alice")
        check_signer(conn, "notes", A)
        with pytest.raises(SignerMismatchError) as refused:
            check_signer(conn, "notes", B)
        with pytest.raises(SignerMismatchError):
            bind_signer(conn, "notes", B, "mallory")
        check_signer(conn, "other", B)  # the binding is per id
    message = str(refused.value)
    assert A in message and B in message  # named by fingerprint
    assert "plugdock trust bind notes" in message
    with connect_read(engine) as conn:
        assert [(b.plugin_id, b.key_id) for b in list_bindings(conn)] == [("notes", A)]


def test_unsigned_packages_are_neither_checked_nor_bound(engine: Engine) -> None:
    with engine.begin() as conn:
        bind_signer(conn, "notes", None, "alice")
        assert get_binding(conn, "notes") is None
        bind_signer(conn, "notes", A, "alice")
        check_signer(conn, "notes", None)  # policy warn/off: their business, not the binding's


def test_a_rebind_rotates_the_key_and_is_audited(engine: Engine) -> None:
    with engine.begin() as conn:
        bind_signer(conn, "notes", A, None)
    with engine.begin() as conn:
        rebind_signer(conn, "notes", B, "admin")
        rebind_signer(conn, "fresh", A, "admin")  # binding an id never installed is allowed
    with engine.begin() as conn:
        check_signer(conn, "notes", B)
        with pytest.raises(SignerMismatchError):
            check_signer(conn, "notes", A)
        entries = audit.query(conn, action=SIGNER_REBIND)
        assert [(e.plugin_id, e.actor, e.detail) for e in entries] == [
            ("fresh", "admin", {"from": None, "to": A}),
            ("notes", "admin", {"from": A, "to": B}),
        ]
        assert unbind_signer(conn, "notes", "admin") is True
        assert unbind_signer(conn, "notes", "admin") is False
        check_signer(conn, "notes", A)


def test_a_rolled_back_install_leaves_no_binding(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        bind_signer(conn, "notes", A, "alice")
        transaction.rollback()
    with connect_read(engine) as conn:
        assert get_binding(conn, "notes") is None


@pytest.mark.parametrize(
    ("plugin_id", "key"),
    [("Notes", A), ("notes\n", A), ("notes", "A" * 64), ("notes", A + "\n"), ("notes", "ab")],
)
def test_bad_ids_and_fingerprints_are_refused(engine: Engine, plugin_id: str, key: str) -> None:
    with engine.begin() as conn, pytest.raises(PlugdockError):
        rebind_signer(conn, plugin_id, key, "admin")
    with connect_read(engine) as conn:
        assert list_bindings(conn) == []


# ------------------------------------------------------------------- end to end


def _signed(tmp_path: Path, folder: Path, key: Path, version: str = "1.0.0") -> Path:
    """``notes`` packed into ``folder`` and signed with ``key`` (claiming to be alice)."""
    package = pack_into(make_plugin(tmp_path / f"src-{version}", "notes", version), folder)
    return sign(package, load_private_key(key), "alice")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reinstall_signed_by_another_trusted_key_is_refused(
    tmp_path: Path, database_url: str, monkeypatch
) -> None:
    settings = instance_settings(tmp_path, database_url)
    alice_key, alice_pub = generate_keypair(tmp_path / "keys", "alice")
    bob_key, bob_pub = generate_keypair(tmp_path / "keys", "bob")
    store = TrustStore(settings.trust_dir)
    store.add(load_public_key(alice_pub), "alice")
    store.add(load_public_key(bob_pub), "bob")
    alice, bob = key_id(load_public_key(alice_pub)), key_id(load_public_key(bob_pub))
    installer = Installer(settings)

    package = _signed(tmp_path, settings.plugin_local_dir, alice_key)
    installer.install("notes", installed_by="admin")
    installer.uninstall("notes")
    with connect_read(installer.engine) as conn:  # the binding outlives the uninstall
        binding = get_binding(conn, "notes")
        assert binding is not None and binding.key_id == alice, (
            "installer wiring missing: a signed install must bind_signer() in its transaction"
        )

    package.unlink()
    _signed(tmp_path, settings.plugin_local_dir, bob_key)  # bob's notes, also "alice"
    before = snapshot(settings, installer.engine)
    with pytest.raises(SignerMismatchError) as refused:
        installer.install("notes")
    assert alice in str(refused.value) and bob in str(refused.value)
    assert "bob (" not in str(refused.value)
    assert snapshot(settings, installer.engine) == before

    # The admin rotates explicitly; from then on bob's packages of notes install.
    monkeypatch.setenv("PLUGDOCK_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    done = runner.invoke(app, ["trust", "bind", "notes", "bob", "--by", "admin"])
    assert done.exit_code == 0, done.output
    assert bob in done.output and alice in done.output
    done = runner.invoke(app, ["trust", "bindings"], env={"COLUMNS": "300"})
    assert done.exit_code == 0 and "notes" in done.output and bob in done.output
    result = installer.install("notes")
    assert result.signer is not None and result.signer.startswith("bob (")
    refused_bind = runner.invoke(app, ["trust", "bind", "notes", "nobody"])
    assert refused_bind.exit_code != 0 and "no trusted key" in str(refused_bind.exception)


def test_a_plugin_server_cannot_swap_the_signer_of_an_installed_id(
    tmp_path: Path, remote: Remote
) -> None:
    """Alice's account publishes 1.1.0 signed by bob, whom the host trusts for his own ids."""
    dist = tmp_path / "dist"
    remote.publish(_signed(tmp_path, dist, remote.key_path), sign=False)
    settings = host_settings(tmp_path, remote.url)
    trust_alice(settings, remote)
    bob_key, bob_pub = generate_keypair(tmp_path / "keys", "bob")
    TrustStore(settings.trust_dir).add(load_public_key(bob_pub), "bob")
    installer = Installer(settings)
    assert installer.install("notes").version == "1.0.0"

    remote.publish(_signed(tmp_path, dist, bob_key, version="1.1.0"), sign=False)
    before = snapshot(settings, installer.engine)
    with pytest.raises(SignerMismatchError):
        installer.upgrade("notes")
    assert snapshot(settings, installer.engine) == before
    installer.uninstall("notes")
    with pytest.raises(SignerMismatchError):
        installer.install("notes")  # 1.1.0, bob's
    assert installer.install("notes@1.0.0").version == "1.0.0"  # alice's still installs


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_package_refused_for_its_signer_never_runs_its_code(
    tmp_path: Path, database_url: str
) -> None:
    """The binding is checked before the plugin is imported or its on_install runs.

    Needs the installer to call check_signer in its validate step (before copy_code and
    hooks), not only bind_signer when it records the row.
    """
    settings = instance_settings(tmp_path, database_url)
    alice_key, alice_pub = generate_keypair(tmp_path / "keys", "alice")
    bob_key, bob_pub = generate_keypair(tmp_path / "keys", "bob")
    store = TrustStore(settings.trust_dir)
    store.add(load_public_key(alice_pub), "alice")
    store.add(load_public_key(bob_pub), "bob")
    installer = Installer(settings)
    package = _signed(tmp_path, settings.plugin_local_dir, alice_key)
    installer.install("notes")
    installer.uninstall("notes")
    package.unlink()

    marker = tmp_path / "bob-code-ran"
    init = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    bobs = make_plugin(
        tmp_path / "bob",
        "notes",
        extra_files={"backend/__init__.py": init + "from .routes import router\n"},
    )
    sign(pack_into(bobs, settings.plugin_local_dir), load_private_key(bob_key), "bob")
    with pytest.raises(SignerMismatchError):
        installer.install("notes")
    assert not marker.exists(), (
        "installer wiring: check_signer ran only after the refused package's code was "
        "imported; call it in the validate step, before copy_code and hooks"
    )
