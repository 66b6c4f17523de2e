"""Package signatures, the trust store, the signature policy, and their CLI commands."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plugdock.cli import app
from plugdock.config import load_settings
from plugdock.errors import PlugdockError, SignatureError
from plugdock.installer import Installer
from plugdock.package.archive import inspect_package
from plugdock.trust.signing import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    read_signature,
    sign_package,
)
from plugdock.trust.store import TrustStore, enforce
from support import instance_settings, make_plugin, pack_into, snapshot


def _package(tmp_path: Path, version: str = "1.0.0") -> Path:
    return pack_into(make_plugin(tmp_path / "src", "notes", version), tmp_path / "dist")


def _rewrite(package: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(package) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    entries.update(change)
    with zipfile.ZipFile(package, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "keys", "alice")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"PUBLIC KEY" in public.read_bytes()
    assert key_id(load_public_key(public)) == key_id(load_private_key(private).public_key())
    assert key_id(load_public_key(private)) == key_id(load_public_key(public))
    with pytest.raises(PlugdockError, match="already exists"):
        generate_keypair(tmp_path / "keys", "alice")
    with pytest.raises(PlugdockError, match="not a usable key name"):
        generate_keypair(tmp_path / "keys", "../alice")


def test_signing_is_deterministic_and_keeps_the_package_valid(tmp_path: Path) -> None:
    package = _package(tmp_path)
    original = inspect_package(package)
    key = load_private_key(generate_keypair(tmp_path, "alice")[0])
    once = sign_package(package, key, "alice", output=tmp_path / "a.zip").read_bytes()
    twice = sign_package(package, key, "alice", output=tmp_path / "b.zip").read_bytes()
    assert once == twice
    # Signing a signed package again replaces the signature and gives the same bytes.
    assert sign_package(tmp_path / "a.zip", key, "alice").read_bytes() == once

    info = inspect_package(tmp_path / "a.zip")
    assert info.checksums_text == original.checksums_text
    assert info.files == original.files
    check = read_signature(info)
    assert check.status == "valid"
    assert check.signer == "alice"
    assert check.key_id == key_id(key.public_key())
    assert read_signature(original).status == "unsigned"


def test_a_tampered_or_transplanted_signature_is_invalid(tmp_path: Path) -> None:
    key = load_private_key(generate_keypair(tmp_path, "alice")[0])
    package = sign_package(_package(tmp_path), key, "alice")
    with zipfile.ZipFile(package) as archive:
        signature = json.loads(archive.read("SIGNATURE.json"))

    renamed = tmp_path / "renamed.zip"
    renamed.write_bytes(package.read_bytes())
    forged = json.loads(json.dumps(signature))
    forged["signed"]["signer"] = "the boss"
    _rewrite(renamed, {"SIGNATURE.json": json.dumps(forged).encode()})
    assert read_signature(inspect_package(renamed)).status == "invalid"

    other = _package(tmp_path / "v2", version="2.0.0")  # a different package
    _rewrite(other, {"SIGNATURE.json": json.dumps(signature).encode()})
    check = read_signature(inspect_package(other))
    assert check.status == "invalid"
    assert "other contents" in check.detail

    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(package.read_bytes())
    _rewrite(garbage, {"SIGNATURE.json": b'{"format": 1}'})
    assert read_signature(inspect_package(garbage)).status == "invalid"


def test_a_changed_file_breaks_the_checksums_before_the_signature(tmp_path: Path) -> None:
    key = load_private_key(generate_keypair(tmp_path, "alice")[0])
    package = sign_package(_package(tmp_path), key, "alice")
    _rewrite(package, {"backend/routes.py": b"import os; os.system('evil')\n"})
    with pytest.raises(PlugdockError, match="altered"):
        inspect_package(package)


@pytest.mark.parametrize(
    ("policy", "case", "outcome"),
    [
        ("require", "trusted", "ok"),
        ("require", "unsigned", "refused"),
        ("require", "untrusted", "refused"),
        ("require", "invalid", "refused"),
        ("warn", "trusted", "ok"),
        ("warn", "unsigned", "warned"),
        ("warn", "untrusted", "refused"),
        ("warn", "invalid", "refused"),
        ("off", "unsigned", "ok"),
        ("off", "untrusted", "ok"),
        ("off", "invalid", "ok"),
    ],
)
def test_the_policy_matrix(tmp_path: Path, policy: str, case: str, outcome: str) -> None:
    settings = load_settings(home=tmp_path / "instance", signature_policy=policy)
    alice_key, alice_pub = generate_keypair(tmp_path, "alice")
    mallory_key, _ = generate_keypair(tmp_path, "mallory")
    TrustStore(settings.trust_dir).add(load_public_key(alice_pub), "alice")
    package = _package(tmp_path)
    if case in ("trusted", "invalid"):
        sign_package(package, load_private_key(alice_key), "alice")
    if case == "untrusted":
        sign_package(package, load_private_key(mallory_key), "mallory")
    if case == "invalid":
        with zipfile.ZipFile(package) as archive:
            signature = json.loads(archive.read("SIGNATURE.json"))
        signature["signed"]["version"] = "9.9.9"
        _rewrite(package, {"SIGNATURE.json": json.dumps(signature).encode()})
    info = inspect_package(package)
    if outcome == "refused":
        with pytest.raises(SignatureError):
            enforce(info, settings)
        return
    verdict = enforce(info, settings)
    assert bool(verdict.warnings) == (outcome == "warned")
    assert (verdict.signer is not None) == (case == "trusted" and policy != "off")


def test_policy_defaults_depend_on_the_source(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).effective_signature_policy.value == "warn"
    remote = load_settings(home=tmp_path, plugin_source="remote")
    assert remote.effective_signature_policy.value == "require"


def test_trust_store_add_list_remove(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    _, alice = generate_keypair(tmp_path, "alice")
    _, bob = generate_keypair(tmp_path, "bob")
    added = store.add(load_public_key(alice), "alice")
    store.add(load_public_key(bob), "bob")
    with pytest.raises(PlugdockError, match="already trusted"):
        store.add(load_public_key(alice), "alice again")
    with pytest.raises(PlugdockError, match="already trusted"):
        store.add(load_public_key(generate_keypair(tmp_path, "carol")[1]), "alice")
    assert [k.name for k in store.list()] == ["alice", "bob"]
    assert store.get(added.key_id) == added
    store.remove(added.key_id[:12])
    store.remove("bob")
    assert store.list() == []
    with pytest.raises(PlugdockError, match="no trusted key"):
        store.remove("bob")


def test_local_mode_installs_unsigned_with_a_warning_and_records_a_trusted_signer(
    tmp_path: Path,
) -> None:
    settings = instance_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    installer = Installer(settings)
    pack_into(make_plugin(tmp_path / "src", "notes", "1.0.0"), settings.plugin_local_dir)
    result = installer.install("notes")
    assert result.signer is None
    assert result.warnings and "not signed" in result.warnings[0]
    installer.uninstall("notes")

    private, public = generate_keypair(tmp_path, "alice")
    sign_package(next(settings.plugin_local_dir.glob("*.zip")), load_private_key(private), "alice")
    TrustStore(settings.trust_dir).add(load_public_key(public), "Alice Example")
    result = installer.install("notes")
    assert result.signer == f"Alice Example ({result.signer.split('(')[1][:16]})"
    assert installer.get("notes").signer == result.signer
    assert result.warnings == []

    # Untrusted now: refused even in local mode, nothing changes.
    installer.uninstall("notes")
    TrustStore(settings.trust_dir).remove("Alice Example")
    before = snapshot(settings, installer.engine)
    with pytest.raises(SignatureError):
        installer.install("notes")
    assert snapshot(settings, installer.engine) == before


def test_cli_keygen_sign_verify_and_trust(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PLUGDOCK_HOME", str(tmp_path / "instance"))
    monkeypatch.delenv("PLUGIN_SOURCE", raising=False)
    runner = CliRunner()
    package = _package(tmp_path)

    done = runner.invoke(app, ["keygen", "alice", "--dir", str(tmp_path / "keys")])
    assert done.exit_code == 0, done.output
    key = tmp_path / "keys" / "alice.key"

    done = runner.invoke(app, ["verify", str(package)])
    assert done.exit_code == 0 and "unsigned" in done.output  # local default: warn

    done = runner.invoke(app, ["sign", str(package), "--key", str(key)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["verify", str(package)])
    assert done.exit_code == 1 and "untrusted" in done.output and "refuse" in done.output

    pub = tmp_path / "keys" / "alice.pub"
    done = runner.invoke(app, ["trust", "add", str(pub), "--name", "alice"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["verify", str(package)])
    assert done.exit_code == 0 and "trusted" in done.output and "alice" in done.output
    done = runner.invoke(app, ["trust", "list"])
    assert "alice" in done.output
    done = runner.invoke(app, ["trust", "remove", "alice"])
    assert done.exit_code == 0


def test_the_verdict_names_the_key_by_fingerprint_not_by_the_claimed_name(tmp_path: Path) -> None:
    """Key binding keys on the verdict's key_id: the verified key's hash, whatever it claims."""
    settings = load_settings(home=tmp_path / "instance", signature_policy="require")
    private, public = generate_keypair(tmp_path, "mallory")
    TrustStore(settings.trust_dir).add(load_public_key(public), "mallory")
    package = sign_package(_package(tmp_path), load_private_key(private), "alice")
    verdict = enforce(inspect_package(package), settings)
    assert verdict.key_id == key_id(load_public_key(public))
    assert verdict.signer is not None and verdict.signer.startswith("mallory (")
    assert TrustStore(settings.trust_dir).find(verdict.key_id[:12]).name == "mallory"
