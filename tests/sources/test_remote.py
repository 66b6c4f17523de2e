"""Remote mode end to end: a real plugin server on loopback, real installs, real attacks.

Every refusal is checked to leave the host instance exactly as it was (``snapshot``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from plugdock.core.db import make_engine
from plugdock.errors import (
    NotFoundError,
    SignatureError,
    SourceUnavailableError,
    UntrustedIndexError,
)
from plugdock.installer import Installer
from plugdock.server import create_app
from plugdock.sources.connection import RedirectRefusedError
from plugdock.sources.remote import IntegrityError, RemoteSource
from plugdock.trust.signing import generate_keypair, load_private_key, sign_package
from plugdock.trust.store import pinned_root
from remote_helpers import (
    Chaos,
    LiveServer,
    Remote,
    host_settings,
    self_signed_cert,
    start_remote,
    trust_alice,
)
from support import make_plugin, pack_into, snapshot


def _package(tmp_path: Path, plugin_id: str = "notes", version: str = "1.0.0") -> Path:
    return pack_into(make_plugin(tmp_path / "src", plugin_id, version), tmp_path / "dist")


def _installer(tmp_path: Path, remote: Remote, *, trust: bool = True, **overrides) -> Installer:
    settings = host_settings(tmp_path, remote.url, **overrides)
    if trust:
        trust_alice(settings, remote)
    return Installer(settings)


def test_publish_then_install_and_uninstall_from_remote(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    installer = _installer(tmp_path, remote)

    catalog = installer.source.catalog()
    assert catalog.plugins["notes"].versions == ("1.0.0",)
    assert catalog.broken == ()

    result = installer.install("notes")
    assert result.version == "1.0.0"
    assert result.tables == ["notes_notes"]
    assert result.signer is not None and result.signer.startswith("alice (")
    assert result.warnings == []
    row = installer.get("notes")
    assert row is not None and row.signer == result.signer
    settings = installer.settings
    assert (settings.backend_dir / "notes" / "routes.py").is_file()
    registry = json.loads(settings.registry_path.read_text())
    assert "notes" in json.dumps(registry)
    # The server's root was pinned on first use.
    assert pinned_root(settings, remote.url) is not None

    installer.uninstall("notes")
    assert installer.get("notes") is None
    assert not (settings.backend_dir / "notes").exists()


def test_latest_is_the_highest_semver_not_the_highest_string(
    tmp_path: Path, remote: Remote
) -> None:
    remote.publish(_package(tmp_path, version="1.9.0"))
    remote.publish(_package(tmp_path, version="1.10.0"))
    installer = _installer(tmp_path, remote)
    assert installer.source.catalog().plugins["notes"].versions == ("1.10.0", "1.9.0")
    assert installer.install("notes").version == "1.10.0"


def test_a_cached_package_is_reused(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    installer = _installer(tmp_path, remote)
    installer.install("notes@1.0.0")
    installer.uninstall("notes")
    installer.install("notes@1.0.0")
    assert remote.chaos.hits["download"] == 1

    # A cached file that changed on disk is never trusted: it is fetched again.
    installer.uninstall("notes")
    [cached] = installer.settings.cache_dir.glob("*.zip")
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0x01
    cached.chmod(0o644)
    cached.write_bytes(bytes(data))
    assert installer.install("notes@1.0.0").version == "1.0.0"
    assert remote.chaos.hits["download"] == 2


def test_a_flipped_byte_in_the_served_package_is_refused(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    stored = remote.storage.package_path("notes", "1.0.0")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.chmod(0o644)
    stored.write_bytes(bytes(data))

    installer = _installer(tmp_path, remote)
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(IntegrityError, match="altered"):
        installer.install("notes")
    assert snapshot(installer.settings, installer.engine) == before
    assert list(installer.settings.cache_dir.iterdir()) == []


def test_a_package_signed_by_an_untrusted_key_is_refused(tmp_path: Path, remote: Remote) -> None:
    package = _package(tmp_path)
    mallory, _ = generate_keypair(tmp_path / "keys", "mallory")
    sign_package(package, load_private_key(mallory), "alice")  # claims to be alice
    remote.publish(package, sign=False)

    installer = _installer(tmp_path, remote)
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(SignatureError, match="does not trust"):
        installer.install("notes")
    assert snapshot(installer.settings, installer.engine) == before


def test_an_unsigned_package_is_refused_in_remote_mode_unless_the_policy_says_warn(
    tmp_path: Path, remote: Remote
) -> None:
    remote.publish(_package(tmp_path), sign=False)
    installer = _installer(tmp_path, remote)
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(SignatureError, match="not signed"):
        installer.install("notes")
    assert snapshot(installer.settings, installer.engine) == before

    lenient = Installer(host_settings(tmp_path, remote.url, signature_policy="warn"))
    result = lenient.install("notes")
    assert result.signer is None
    assert any("not signed" in w for w in result.warnings)


def test_a_replayed_older_index_is_refused(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path, version="1.0.0"))
    old_timestamp = (remote.storage.index.metadata_dir / "timestamp.json").read_bytes()
    remote.publish(_package(tmp_path, version="1.1.0"))

    installer = _installer(tmp_path, remote)
    assert installer.source.catalog().plugins["notes"].latest == "1.1.0"  # host saw the new one

    remote.chaos.replace["/tuf/timestamp.json"] = old_timestamp  # a mirror replays the old one
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(UntrustedIndexError, match="rollback"):
        installer.install("notes")
    with pytest.raises(UntrustedIndexError, match="rollback"):
        installer.source.catalog()
    assert snapshot(installer.settings, installer.engine) == before


def test_an_expired_index_is_refused(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    installer = _installer(tmp_path, remote)
    installer.source.catalog()
    # The attacker holds on to a validly signed timestamp until it has expired (freeze).
    index = remote.storage.index
    index.resign_timestamp(expires=datetime.now(UTC) - timedelta(minutes=1))
    remote.chaos.replace["/tuf/timestamp.json"] = (
        index.metadata_dir / "timestamp.json"
    ).read_bytes()

    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(UntrustedIndexError, match="expired"):
        installer.install("notes")
    assert snapshot(installer.settings, installer.engine) == before


def test_a_tampered_index_is_refused(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    installer = _installer(tmp_path, remote)
    timestamp = json.loads((remote.storage.index.metadata_dir / "timestamp.json").read_bytes())
    timestamp["signed"]["version"] += 5  # claim a newer index without the key
    remote.chaos.replace["/tuf/timestamp.json"] = json.dumps(timestamp).encode()
    with pytest.raises(UntrustedIndexError, match="signature"):
        installer.install("notes")


def test_a_package_the_signed_index_does_not_list_is_not_offered(
    tmp_path: Path, remote: Remote
) -> None:
    remote.publish(_package(tmp_path, version="1.0.0"))
    # Someone with write access to the storage, but not the index keys, slips in a version.
    storage = remote.storage
    evil = _package(tmp_path, version="9.0.0")
    catalog = json.loads(storage.catalog_path.read_text())
    record = dict(catalog["notes"]["versions"]["1.0.0"])
    from plugdock.package.checksums import sha256_file

    record |= {"version": "9.0.0", "sha256": sha256_file(evil), "size": evil.stat().st_size}
    catalog["notes"]["versions"]["9.0.0"] = record
    target = storage.package_path("notes", "9.0.0")
    target.write_bytes(evil.read_bytes())
    storage.catalog_path.write_text(json.dumps(catalog))

    installer = _installer(tmp_path, remote)
    offered = installer.source.catalog()
    assert offered.plugins["notes"].versions == ("1.0.0",)
    assert [b.location for b in offered.broken] == ["notes 9.0.0"]
    with pytest.raises(NotFoundError):
        installer.install("notes@9.0.0")
    assert installer.install("notes").version == "1.0.0"


def test_a_download_cut_off_is_retried(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    remote.chaos.truncate_downloads = 1
    remote.chaos.fail_downloads = 1
    installer = _installer(tmp_path, remote)
    assert installer.install("notes").version == "1.0.0"
    assert remote.chaos.hits["download"] == 3


def test_a_server_dying_mid_download_changes_nothing_and_a_later_retry_works(
    tmp_path: Path, remote: Remote
) -> None:
    remote.publish(_package(tmp_path))
    installer = _installer(tmp_path, remote)
    remote.chaos.truncate_downloads = 100
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(SourceUnavailableError, match="broke off") as caught:
        installer.install("notes")
    assert "\n" not in str(caught.value)
    assert remote.chaos.hits["download"] == installer.settings.download_retries
    assert snapshot(installer.settings, installer.engine) == before
    assert list(installer.settings.cache_dir.iterdir()) == []

    remote.chaos.truncate_downloads = 0
    assert Installer(installer.settings).install("notes").version == "1.0.0"


@pytest.mark.slow  # a CLI run retrying a closed port
def test_a_server_that_is_down_is_one_clear_error(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    settings = host_settings(tmp_path, url, download_retries=2)
    with pytest.raises(SourceUnavailableError, match="cannot connect"):
        RemoteSource(settings).catalog()

    env = {
        **os.environ,
        "PLUGIN_SOURCE": "remote",
        "PLUGIN_SERVER_URL": url,
        "PLUGDOCK_HOME": str(tmp_path / "cli-instance"),
        "PLUGDOCK_DOWNLOAD_RETRIES": "2",
        "PLUGDOCK_ALLOW_HTTP_PIN": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "plugdock", "install", "notes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: plugin server http://127.0.0.1:9 unavailable")


def test_a_strict_host_needs_the_server_root_pinned_first(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    installer = _installer(tmp_path, remote, trust_on_first_use=False)
    with pytest.raises(UntrustedIndexError, match="plugdock trust server"):
        installer.install("notes")

    from plugdock.trust.store import pin_server_root

    pin_server_root(installer.settings, remote.url, remote.storage.index.root_bytes(), how="file")
    assert installer.install("notes").version == "1.0.0"


def test_policy_off_uses_the_manifest_and_skips_signatures(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path), sign=False)
    installer = _installer(tmp_path, remote, trust=False, signature_policy="off")
    result = installer.install("notes")
    assert result.signer is None
    assert not (installer.settings.trust_dir / "servers").exists()


def test_switching_source_is_one_setting(tmp_path: Path, remote: Remote) -> None:
    package = _package(tmp_path)
    remote.publish(package)
    local = tmp_path / "modules"
    local.mkdir()
    (local / package.name).write_bytes(package.read_bytes())
    for source in ("local", "remote"):
        settings = host_settings(
            tmp_path / source, remote.url, plugin_source=source, plugin_local_dir=local
        )
        trust_alice(settings, remote)
        installer = Installer(settings, engine=make_engine(settings.db_url))
        assert installer.source.catalog().plugins["notes"].versions == ("1.0.0",)
        result = installer.install("notes")
        assert result.signer is not None and result.signer.startswith("alice")
        installer.uninstall("notes")


def test_cli_install_from_remote_shows_the_signer(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path))
    settings = host_settings(tmp_path, remote.url)
    trust_alice(settings, remote)
    env = {
        **os.environ,
        "PLUGIN_SOURCE": "remote",
        "PLUGIN_SERVER_URL": remote.url,
        "PLUGDOCK_HOME": str(settings.home),
        "DATABASE_URL": settings.db_url,
        "PLUGDOCK_ALLOW_HTTP_PIN": "true",  # the test server is plain http on loopback
    }
    done = subprocess.run(
        [sys.executable, "-m", "plugdock", "install", "notes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "installed notes 1.0.0" in done.stdout
    assert "trusting plugin server" in done.stderr  # first-use pinning is announced


def _zip_with(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name, data)


def test_the_five_command_author_flow(tmp_path: Path, remote: Remote, monkeypatch) -> None:
    """new → pack → sign → publish on the author's machine; install on a remote-mode host."""
    from typer.testing import CliRunner

    from plugdock.cli import app

    runner = CliRunner()
    author = tmp_path / "author"
    author.mkdir()
    monkeypatch.chdir(author)
    monkeypatch.setenv("PLUGDOCK_HOME", str(author / "instance"))

    def run(*args: str) -> str:
        done = runner.invoke(app, list(args))
        assert done.exit_code == 0, f"{args}: {done.output}"
        return done.output

    run("keygen", "alice")  # once per author
    run("new", "my_plugin")
    run("pack", "my_plugin", "-o", "dist")
    package = author / "dist" / "my_plugin_v0.1.0.zip"
    run("sign", str(package), "--key", "alice.key")
    assert "published my_plugin 0.1.0" in run(
        "publish", str(package), "--server", remote.url, "--token", remote.token
    )

    # The host: remote mode, trusts alice's key; the server's root is pinned on first use.
    host = tmp_path / "host"
    monkeypatch.setenv("PLUGDOCK_HOME", str(host / "instance"))
    monkeypatch.setenv("PLUGIN_SOURCE", "remote")
    monkeypatch.setenv("PLUGIN_SERVER_URL", remote.url)
    monkeypatch.setenv("PLUGDOCK_ALLOW_HTTP_PIN", "true")  # plain http on loopback
    run("trust", "add", str(author / "alice.pub"), "--name", "alice")
    installed = run("install", "my_plugin")
    assert "installed my_plugin 0.1.0" in installed
    assert "signed by: alice" in installed  # the admin sees whose key vouched for it
    listed = run("list")
    assert "my_plugin" in listed


def test_cli_server_token_create_and_publish_errors(tmp_path: Path, remote: Remote) -> None:
    from typer.testing import CliRunner

    from plugdock.cli import app

    runner = CliRunner()
    data = remote.storage.data_dir
    done = runner.invoke(app, ["server", "token", "create", "bob", "--data", str(data)])
    assert done.exit_code == 0, done.output
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("pdt_") and remote.storage.authenticate(token).name == "bob"

    package = _package(tmp_path)
    done = runner.invoke(
        app, ["publish", str(package), "--server", remote.url, "--token", "pdt_nope"]
    )
    assert done.exit_code != 0
    assert "HTTP 403" in str(done.exception)


def test_a_redirect_to_another_origin_is_refused(tmp_path: Path, remote: Remote) -> None:
    """A server (or whoever answers for it) sends the host to another machine: not followed."""
    remote.publish(_package(tmp_path))
    live, elsewhere = start_remote(tmp_path / "elsewhere")
    try:
        elsewhere.publish(_package(tmp_path / "elsewhere"))
        elsewhere.chaos.hits.clear()
        remote.chaos.redirect_to = elsewhere.url
        installer = _installer(tmp_path, remote)
        before = snapshot(installer.settings, installer.engine)
        with pytest.raises(RedirectRefusedError, match="another origin"):
            installer.source.catalog()
        with pytest.raises(RedirectRefusedError, match="another origin"):
            installer.install("notes")
        assert sum(elsewhere.chaos.hits.values()) == 0  # not one request reached it
        assert pinned_root(installer.settings, remote.url) is None
        assert snapshot(installer.settings, installer.engine) == before
    finally:
        live.__exit__()


def test_a_redirect_from_https_to_http_is_refused(
    tmp_path: Path, remote: Remote, monkeypatch
) -> None:
    remote.publish(_package(tmp_path))
    remote.chaos.hits.clear()
    cert, key = self_signed_cert(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the host trusts the test certificate
    # The same server over TLS works ...
    with LiveServer(Chaos(create_app(remote.storage)), tls=(cert, key)) as tls:
        settings = host_settings(tmp_path / "direct", tls.url)
        trust_alice(settings, remote)
        with RemoteSource(settings) as source:  # closed: the server need not wait for it
            assert source.catalog().plugins["notes"].versions == ("1.0.0",)
    # ... but an https address that redirects to plain http is not followed.
    with LiveServer(Chaos(app=None, redirect_to=remote.url), tls=(cert, key)) as tls:
        settings = host_settings(tmp_path / "downgraded", tls.url)
        trust_alice(settings, remote)
        with (
            RemoteSource(settings) as source,
            pytest.raises(RedirectRefusedError, match="downgrade to plain http"),
        ):
            source.catalog()
        assert pinned_root(settings, tls.url) is None
    assert sum(remote.chaos.hits.values()) == 0


def test_first_use_pinning_over_plain_http_needs_the_admin_to_ask(
    tmp_path: Path, remote: Remote
) -> None:
    """Over http whoever sits on the path could hand a fresh host their own index root."""
    remote.publish(_package(tmp_path))
    remote.chaos.hits.clear()
    installer = _installer(tmp_path, remote, allow_http_pin=False)
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(UntrustedIndexError, match="plain http") as caught:
        installer.install("notes")
    assert "PLUGDOCK_ALLOW_HTTP_PIN" in str(caught.value)
    assert "plugdock trust server" in str(caught.value)
    assert remote.chaos.hits["/tuf/root.json"] == 0
    assert pinned_root(installer.settings, remote.url) is None
    assert snapshot(installer.settings, installer.engine) == before

    # Pinning explicitly (the file from the operator) keeps working over http.
    from plugdock.trust.store import pin_server_root

    pin_server_root(installer.settings, remote.url, remote.storage.index.root_bytes(), how="file")
    assert installer.install("notes").version == "1.0.0"


def test_cli_trust_server_fetches_a_root_over_http_only_when_asked(
    tmp_path: Path, remote: Remote, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from plugdock.cli import app

    monkeypatch.setenv("PLUGDOCK_HOME", str(tmp_path / "instance"))
    monkeypatch.delenv("PLUGDOCK_ALLOW_HTTP_PIN", raising=False)
    runner = CliRunner()
    refused = runner.invoke(app, ["trust", "server", remote.url])
    assert refused.exit_code != 0
    assert "plain http" in str(refused.exception)
    settings = host_settings(tmp_path, remote.url)
    assert pinned_root(settings, remote.url) is None

    done = runner.invoke(app, ["trust", "server", remote.url, "--allow-http"])
    assert done.exit_code == 0, done.output
    assert pinned_root(settings, remote.url) == remote.storage.index.root_bytes()
    root_file = tmp_path / "root.json"
    root_file.write_bytes(remote.storage.index.root_bytes())
    done = runner.invoke(app, ["trust", "server", remote.url, "--root", str(root_file)])
    assert done.exit_code == 0, done.output


def _sign_away(remote: Remote, plugin_id: str, version: str) -> None:
    """The server, with its own index keys, signs a newer index that lists one version fewer."""
    from tuf.api.metadata import Targets

    index = remote.storage.index
    with index._lock:
        md = index._load(Targets.type)
        del md.signed.targets[f"{plugin_id}/{version}.zip"]
        index._bump(md, index.lifetimes.targets)
        index._write_snapshot_and_timestamp(md.signed.version)


def test_an_index_whose_latest_goes_backwards_is_refused(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path, version="1.0.0"))
    remote.publish(_package(tmp_path, version="1.1.0"))
    remote.publish(_package(tmp_path, plugin_id="other", version="2.0.0"))
    installer = _installer(tmp_path, remote)
    assert installer.source.catalog().plugins["notes"].latest == "1.1.0"  # the host saw 1.1.0

    _sign_away(remote, "notes", "1.1.0")  # validly signed, newer, and 1.0.0 is "latest" now
    before = snapshot(installer.settings, installer.engine)
    for attempt in (installer.source.catalog, lambda: installer.install("notes")):
        with pytest.raises(UntrustedIndexError, match="downgrade") as caught:
            attempt()
        assert "notes 1.0.0 (this host has seen 1.1.0)" in str(caught.value)
    assert snapshot(installer.settings, installer.engine) == before

    # A fresh host that never saw 1.1.0 has nothing to compare with; an admin who accepts
    # the withdrawal re-pins the server, which forgets what was seen.
    from plugdock.trust.store import pin_server_root

    pin_server_root(installer.settings, remote.url, remote.storage.index.root_bytes(), how="file")
    assert installer.install("notes").version == "1.0.0"


def test_versions_only_growing_is_not_a_downgrade(tmp_path: Path, remote: Remote) -> None:
    remote.publish(_package(tmp_path, version="1.0.0"))
    installer = _installer(tmp_path, remote)
    assert installer.source.catalog().plugins["notes"].latest == "1.0.0"
    remote.publish(_package(tmp_path, version="1.0.1-rc.1"))
    remote.publish(_package(tmp_path, plugin_id="other", version="0.1.0"))
    assert installer.source.catalog().plugins["notes"].latest == "1.0.1-rc.1"
    _sign_away(remote, "other", "0.1.0")  # a plugin that vanishes offers nothing older
    assert "other" not in installer.source.catalog().plugins
    assert installer.install("notes@1.0.0").version == "1.0.0"  # older on request: fine


def test_a_package_signed_by_another_key_than_the_index_records_is_refused(
    tmp_path: Path, remote: Remote
) -> None:
    """The index says alice signed notes; the bytes behind it are mallory's (also trusted)."""
    from plugdock.package.checksums import sha256_file
    from plugdock.trust.signing import key_id, load_public_key
    from plugdock.trust.store import TrustStore

    remote.publish(_package(tmp_path))
    alice = key_id(load_public_key(remote.public_key_path))
    mallory_key, mallory_pub = generate_keypair(tmp_path / "keys", "mallory")
    swapped = sign_package(
        _package(tmp_path / "swap"),
        load_private_key(mallory_key),
        "alice",
        output=tmp_path / "s.zip",
    )
    stored = remote.storage.package_path("notes", "1.0.0")
    stored.chmod(0o644)
    stored.write_bytes(swapped.read_bytes())
    catalog = json.loads(remote.storage.catalog_path.read_text())
    catalog["notes"]["versions"]["1.0.0"] |= {
        "sha256": sha256_file(swapped),
        "size": swapped.stat().st_size,
    }
    remote.storage.catalog_path.write_text(json.dumps(catalog))
    remote.storage.index.add_target(  # the server's own keys vouch for the swapped bytes
        "notes",
        "1.0.0",
        length=swapped.stat().st_size,
        sha256=sha256_file(swapped),
        custom={"signer_key_id": alice},
    )

    installer = _installer(tmp_path, remote)
    TrustStore(installer.settings.trust_dir).add(load_public_key(mallory_pub), "mallory")
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(IntegrityError, match=r"signed index says notes 1\.0\.0 is signed by") as e:
        installer.install("notes")
    assert alice in str(e.value) and key_id(load_public_key(mallory_pub)) in str(e.value)
    assert snapshot(installer.settings, installer.engine) == before


def _manifest_without(remote: Remote, plugin_id: str, version: str) -> None:
    """Someone between host and server (a proxy, a CDN) serves manifest.json without a
    version: the rest of it as the server wrote it, ``latest`` and the summary moved back."""
    manifest = remote.storage.catalog.manifest()
    entry = manifest["plugins"][plugin_id]
    del entry["versions"][version]
    entry["latest"] = max(entry["versions"], key=lambda v: tuple(map(int, v.split("."))))
    entry |= entry["versions"][entry["latest"]]["summary"]
    remote.chaos.replace["/manifest.json"] = json.dumps(manifest).encode()


def test_a_manifest_hiding_the_newest_version_changes_no_version_choice(
    tmp_path: Path, remote: Remote
) -> None:
    """install-latest, the catalog, the update offer and upgrade all follow the signed index."""
    from plugdock.host.marketplace import _offers
    from plugdock.operations.updates import newest_update

    remote.publish(_package(tmp_path, version="1.0.0"))
    remote.publish(_package(tmp_path / "b", version="2.0.0"))
    _manifest_without(remote, "notes", "2.0.0")
    installer = _installer(tmp_path, remote)

    catalog = installer.source.catalog()
    assert catalog.plugins["notes"].versions == ("2.0.0", "1.0.0")
    assert [(b.location, "manifest.json does not" in b.error) for b in catalog.broken] == [
        ("notes 2.0.0", True)
    ]
    assert installer.install("notes").version == "2.0.0"  # not the 1.0.0 the manifest names
    installer.uninstall("notes")

    assert installer.install("notes@1.0.0").version == "1.0.0"
    row = installer.get("notes")
    assert row is not None
    assert newest_update(installer.source.catalog(), row) == "2.0.0"
    offer = _offers(installer, installer.source.catalog(), [row])["notes"]
    assert offer.update_available == "2.0.0" and offer.update_compatible
    assert installer.upgrade_plan("notes").version == "2.0.0"
    assert installer.upgrade("notes").version == "2.0.0"


def test_a_manifest_record_that_disagrees_with_the_index_is_ignored_and_reported(
    tmp_path: Path, remote: Remote
) -> None:
    remote.publish(_package(tmp_path, version="1.0.0"))
    manifest = remote.storage.catalog.manifest()
    record = manifest["plugins"]["notes"]["versions"]["1.0.0"]
    record |= {"sha256": "0" * 64, "size": record["size"] + 1}
    remote.chaos.replace["/manifest.json"] = json.dumps(manifest).encode()
    warnings: list[str] = []
    settings = host_settings(tmp_path, remote.url)
    trust_alice(settings, remote)
    source = RemoteSource(settings, warn=warnings.append)
    installer = Installer(settings, source=source)

    catalog = source.catalog()
    assert catalog.plugins["notes"].versions == ("1.0.0",)
    assert [b.location for b in catalog.broken] == ["notes 1.0.0"]
    assert "another sha256 and size than the signed index" in catalog.broken[0].error
    source.catalog()  # reported once per source, not on every look
    assert [w for w in warnings if "notes 1.0.0" in w] == [
        f"plugin server {remote.url}: notes 1.0.0: {catalog.broken[0].error}"
    ]
    assert installer.install("notes").version == "1.0.0"  # the index's sha256 is checked


def test_remote_mode_without_a_signed_index_is_refused(tmp_path: Path, remote: Remote) -> None:
    """A server (or a proxy) that serves manifest.json and packages but no index."""
    remote.publish(_package(tmp_path))
    pinned = _installer(tmp_path / "pinned", remote)
    assert pinned.source.catalog().plugins["notes"].versions == ("1.0.0",)
    remote.chaos.missing = ("/tuf/",)
    fresh = _installer(tmp_path, remote)
    for installer in (fresh, pinned):
        before = snapshot(installer.settings, installer.engine)
        for attempt in (installer.source.catalog, partial(installer.install, "notes")):
            with pytest.raises((UntrustedIndexError, SourceUnavailableError)) as caught:
                attempt()
            assert "signed index" in str(caught.value)
        assert snapshot(installer.settings, installer.engine) == before
    with pytest.raises(UntrustedIndexError, match="serves no signed index"):
        fresh.source.catalog()


def test_signature_policy_off_in_remote_mode_warns_on_every_command(
    tmp_path: Path, remote: Remote
) -> None:
    remote.publish(_package(tmp_path), sign=False)
    env = {
        **os.environ,
        "PLUGIN_SOURCE": "remote",
        "PLUGIN_SERVER_URL": remote.url,
        "PLUGDOCK_HOME": str(tmp_path / "cli-instance"),
        "PLUGDOCK_SIGNATURE_POLICY": "off",
    }
    for command in (["available"], ["install", "notes"], ["list"]):
        done = subprocess.run(
            [sys.executable, "-m", "plugdock", *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        said = " ".join(done.stderr.split())  # the console wraps long lines
        assert said.count("warning: PLUGDOCK_SIGNATURE_POLICY=off in remote mode") == 1, said
        assert "versions come from its unsigned manifest.json" in said
    quiet = subprocess.run(
        [sys.executable, "-m", "plugdock", "list"],
        capture_output=True,
        text=True,
        env=env | {"PLUGDOCK_SIGNATURE_POLICY": "require"},
        timeout=60,
    )
    assert "SIGNATURE_POLICY" not in quiet.stderr
