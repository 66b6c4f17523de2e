"""The plugin server's HTTP API: publishing rules, downloads, manifest, signed index."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from plugdock.package.checksums import render, sha256_bytes
from plugdock.server import Storage, create_app
from plugdock.trust.signing import generate_keypair, load_private_key, sign_package
from support import detail, make_plugin, pack_into


@pytest.fixture
def client(storage: Storage) -> Iterator[TestClient]:
    # Review off: these tests are about publishing itself (tests/server/test_review.py: the queue).
    with TestClient(create_app(storage, review="off")) as test_client:
        yield test_client


def _package(tmp_path: Path, plugin_id: str = "notes", version: str = "1.0.0", **kw) -> Path:
    return pack_into(make_plugin(tmp_path / "src", plugin_id, version, **kw), tmp_path / "dist")


def _post(client: TestClient, data: bytes, token: str | None, name: str = "p.zip"):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(
        "/api/v1/plugins", files={"file": (name, data, "application/zip")}, headers=headers
    )


def _raw_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_publish_download_and_manifest(tmp_path: Path, storage: Storage, client) -> None:
    token = storage.create_token("alice")
    package = _package(tmp_path, metadata={"description": "Keeps notes", "author": "Alice"})
    key, _ = generate_keypair(tmp_path, "alice")
    sign_package(package, load_private_key(key), "alice")

    answer = _post(client, package.read_bytes(), token)
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["sha256"] == sha256_bytes(package.read_bytes())
    assert record["signed"] is True and record["signer"] == "alice"
    assert record["tables"] == ["notes_notes"]

    manifest = client.get("/manifest.json").json()
    entry = manifest["plugins"]["notes"]
    assert entry["latest"] == "1.0.0"
    assert entry["description"] == "Keeps notes" and entry["author"] == "Alice"
    version = entry["versions"]["1.0.0"]
    assert version["size"] == package.stat().st_size
    assert len(version["signer_key_id"]) == 64
    assert version["published"]

    download = client.get("/download/notes/1.0.0")
    assert download.status_code == 200
    assert download.content == package.read_bytes()
    assert download.headers["content-length"] == str(package.stat().st_size)
    etag = download.headers["etag"]
    assert etag == f'"{record["sha256"]}"'
    assert client.get("/download/notes/1.0.0", headers={"If-None-Match": etag}).status_code == 304

    page = client.get("/")
    assert page.status_code == 200 and "notes" in page.text and "Keeps notes" in page.text


def test_latest_is_semver_max(tmp_path: Path, storage: Storage, client) -> None:
    token = storage.create_token("alice")
    for version in ("1.9.0", "1.10.0", "1.10.0-rc.1"):
        assert (
            _post(client, _package(tmp_path, version=version).read_bytes(), token).status_code
            == 201
        )
    latest = client.get("/download/notes/latest")
    assert latest.headers["x-plugdock-version"] == "1.10.0"
    assert list(client.get("/manifest.json").json()["plugins"]["notes"]["versions"]) == [
        "1.10.0",
        "1.10.0-rc.1",
        "1.9.0",
    ]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/download/unknown/1.0.0", 404),
        ("/download/notes/2.0.0", 404),
        ("/download/unknown/latest", 404),
        ("/download/Not-An-Id/1.0.0", 422),
        ("/download/notes/1.0", 422),
        ("/download/notes/..%2F..%2Fetc", 404),
        ("/download/notes/%00", 422),
        ("/tuf/../keys/root.key", 404),
        ("/tuf/keys.json", 404),
        ("/tuf/2.root.json", 404),
    ],
)
def test_bad_paths_are_404_or_422_json(
    tmp_path: Path, storage: Storage, client, path: str, status: int
) -> None:
    token = storage.create_token("alice")
    _post(client, _package(tmp_path).read_bytes(), token)
    answer = client.get(path)
    assert answer.status_code == status
    assert "detail" in answer.json()


def test_republishing_a_version_is_409(tmp_path: Path, storage: Storage, client) -> None:
    token = storage.create_token("alice")
    package = _package(tmp_path)
    assert _post(client, package.read_bytes(), token).status_code == 201
    again = _post(client, package.read_bytes(), token)
    assert again.status_code == 409
    assert "immutable" in detail(again)
    # Even with different bytes (a rebuilt package of the same version).
    rebuilt = _package(tmp_path / "other", extra_files={"README.md": "changed\n"})
    assert _post(client, rebuilt.read_bytes(), token).status_code == 409
    assert client.get("/download/notes/1.0.0").content == package.read_bytes()


def test_tokens_are_required_valid_and_scoped_to_owned_plugins(
    tmp_path: Path, storage: Storage, client
) -> None:
    alice = storage.create_token("alice")
    bob = storage.create_token("bob")
    package = _package(tmp_path).read_bytes()

    missing = _post(client, package, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert _post(client, package, "pdt_wrong").status_code == 403
    assert _post(client, package, alice).status_code == 201
    newer = _package(tmp_path, version="1.1.0").read_bytes()
    stolen = _post(client, newer, bob)
    assert stolen.status_code == 403
    assert "another publisher" in detail(stolen)
    # Only hashes are stored.
    stored = storage.publishers_path.read_text()
    assert alice not in stored and bob not in stored


def test_replacing_a_token_revokes_the_old_one(tmp_path: Path, storage: Storage, client) -> None:
    old = storage.create_token("alice")
    new = storage.create_token("alice")
    package = _package(tmp_path).read_bytes()
    assert _post(client, package, old).status_code == 403
    assert _post(client, package, new).status_code == 201


def test_malicious_packages_are_refused_with_422(tmp_path: Path, storage: Storage, client) -> None:
    token = storage.create_token("alice")
    metadata = json.dumps({"id": "evil", "name": "Evil", "version": "1.0.0"}).encode()
    slip = {"metadata.json": metadata, "../../evil.py": b"import os\n"}
    slip["CHECKSUMS.sha256"] = render({k: sha256_bytes(v) for k, v in slip.items()}).encode()
    answer = _post(client, _raw_zip(slip), token)
    assert answer.status_code == 422
    assert any("'..'" in p for p in answer.json()["problems"])

    bad_sql = _package(tmp_path, "evil", up_sql="DROP TABLE users;\n")
    answer = _post(client, bad_sql.read_bytes(), token)
    assert answer.status_code == 422
    assert "DROP TABLE users" in detail(answer)

    assert _post(client, b"not a zip at all", token).status_code == 422
    assert client.get("/manifest.json").json()["plugins"] == {}
    assert list(storage.incoming_dir.iterdir()) == []


def test_a_tampered_signature_is_refused(tmp_path: Path, storage: Storage, client) -> None:
    token = storage.create_token("alice")
    package = _package(tmp_path)
    key, _ = generate_keypair(tmp_path, "alice")
    sign_package(package, load_private_key(key), "alice")
    with zipfile.ZipFile(package) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    signature = json.loads(entries["SIGNATURE.json"])
    signature["signed"]["signer"] = "somebody trusted"
    entries["SIGNATURE.json"] = json.dumps(signature).encode()
    answer = _post(client, _raw_zip(entries), token)
    assert answer.status_code == 422
    assert "signature" in detail(answer)


def test_raw_body_upload_and_size_limits(tmp_path: Path, storage: Storage) -> None:
    from plugdock.package.archive import Limits

    token = storage.create_token("alice")
    package = _package(tmp_path).read_bytes()
    small = Limits(max_total_bytes=1024, max_files=4)
    with TestClient(create_app(storage, limits=small, review="off")) as c:
        too_big = c.post(
            "/api/v1/plugins",
            content=b"x" * 100_000,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
        )
        assert too_big.status_code == 413
    with TestClient(create_app(storage, review="off")) as c:
        raw = c.post(
            "/api/v1/plugins",
            content=package,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
        )
        assert raw.status_code == 201
        odd = c.post(
            "/api/v1/plugins",
            content=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert odd.status_code == 415


def test_the_signed_index_vouches_for_every_published_package(
    tmp_path: Path, storage: Storage, client
) -> None:
    token = storage.create_token("alice")
    package = _package(tmp_path)
    _post(client, package.read_bytes(), token)
    targets = storage.index.targets()
    assert set(targets) == {"notes/1.0.0.zip"}
    assert targets["notes/1.0.0.zip"].length == package.stat().st_size
    assert targets["notes/1.0.0.zip"].hashes["sha256"] == sha256_bytes(package.read_bytes())
    timestamp = client.get("/tuf/timestamp.json").json()
    snapshot_version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
    snapshot = client.get(f"/tuf/{snapshot_version}.snapshot.json").json()
    assert snapshot["signed"]["meta"]["targets.json"]["version"] == 2
    assert client.get("/tuf/1.root.json").status_code == 200
    # Keys never leave the data folder, and are private.
    assert oct(storage.index.keys_dir.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in storage.index.keys_dir.iterdir())


def test_stale_online_metadata_is_resigned_when_a_client_asks(
    tmp_path: Path, storage: Storage, client
) -> None:
    from datetime import UTC, datetime, timedelta

    before = json.loads((storage.index.metadata_dir / "timestamp.json").read_bytes())
    storage.index.resign_timestamp(expires=datetime.now(UTC) + timedelta(minutes=5))
    served = client.get("/tuf/timestamp.json").json()
    assert served["signed"]["version"] == before["signed"]["version"] + 2
    expires = datetime.fromisoformat(served["signed"]["expires"].replace("Z", "+00:00"))
    assert expires > datetime.now(UTC) + timedelta(hours=23)


def test_signing_keys_are_never_silently_replaced(tmp_path: Path) -> None:
    """A key made after the root was published would not be in it: hosts would refuse all."""
    from datetime import timedelta

    from tuf.api.metadata import Metadata, Root

    from plugdock.server.index import Lifetimes, SignedIndex

    data = tmp_path / "server"
    SignedIndex(data, Lifetimes(root=timedelta(hours=1))).ensure()
    root_v1 = (data / "tuf" / "1.root.json").read_bytes()

    # The root key kept offline (as the docs advise): the server runs, the root is not touched
    # even when due for renewal, and no new root key appears.
    (data / "keys" / "root.key").unlink()
    SignedIndex(data, Lifetimes(root=timedelta(hours=4))).ensure()  # 1 h left of 4: due
    assert not (data / "keys" / "root.key").exists()
    assert not (data / "tuf" / "2.root.json").exists()
    Metadata[Root].from_bytes(root_v1)  # still the published root

    # A lost online key is an error, not a quiet new key.
    (data / "keys" / "targets.key").unlink()
    with pytest.raises(RuntimeError, match="targets"):
        SignedIndex(data).ensure()
    assert not (data / "keys" / "targets.key").exists()


def test_refusals_never_show_the_server_data_path(tmp_path: Path, storage: Storage, client) -> None:
    """422 answers go to any publisher: they must not reveal where the server keeps its data."""
    token = storage.create_token("alice")
    no_checksums = _raw_zip({"metadata.json": b'{"id": "notes"}'})
    for body in (b"not a zip at all", no_checksums):
        answer = _post(client, body, token)
        assert answer.status_code == 422
        assert answer.json()["problems"]
        assert str(storage.data_dir) not in answer.text
        assert "incoming" not in answer.text and str(tmp_path) not in answer.text
    assert list(storage.incoming_dir.iterdir()) == []


@contextlib.contextmanager
def _live_server(data: Path, log: Path) -> Iterator[int]:
    """``plugdock server`` for real (stderr to ``log``), once it answers: its port."""
    from panel import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "plugdock", "server", "--data", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env={**os.environ, "COLUMNS": "400"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/tuf/timestamp.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _run_server(data: Path) -> str:
    """Start ``plugdock server`` for real, wait until it answers, stop it; its stderr."""
    log = data.parent / "server.log"
    with _live_server(data, log):
        pass
    return " ".join(log.read_text().split())


@pytest.mark.server  # plugdock server
def test_the_server_warns_while_its_root_key_is_online(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Storage(data).ensure()
    assert "root key is online" in _run_server(data)

    # Kept offline as docs/publishing.md says: no warning, and the server still serves.
    from plugdock.server import startup_warnings

    offline = tmp_path / "offline"
    offline.mkdir()
    (data / "keys" / "root.key").rename(offline / "root.key")
    storage = Storage(data).ensure()
    assert startup_warnings(storage) == []
    with TestClient(create_app(storage)) as client:
        assert client.get("/tuf/timestamp.json").status_code == 200


def test_every_page_and_answer_carries_the_security_headers(
    tmp_path: Path, storage: Storage, client
) -> None:
    """Issue 24.8. Before: ``/``, ``/docs`` and every other answer had none of them."""
    token = storage.create_token("alice")
    assert _post(client, _package(tmp_path).read_bytes(), token).status_code == 201
    answers = {
        "index": client.get("/"),
        "docs": client.get("/docs"),
        "redoc": client.get("/redoc"),
        "openapi": client.get("/openapi.json"),
        "manifest": client.get("/manifest.json"),
        "download": client.get("/download/notes/1.0.0"),
        "404": client.get("/download/nothing/1.0.0"),
        "401": _post(client, b"PK", None),
        "review": client.get("/review"),
    }
    for name, answer in answers.items():
        assert answer.status_code in (200, 401, 404), (name, answer.status_code)
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        assert "frame-ancestors 'none'" in headers["content-security-policy"], name
        assert "'unsafe-eval'" not in headers["content-security-policy"], name
    # The index page's one inline style is allowed by its hash, and no inline script at all.
    index_csp = answers["index"].headers["content-security-policy"]
    assert "script-src 'self';" in index_csp and "'unsafe-inline'" not in index_csp
    style = re.search(r"<style>(.*?)</style>", answers["index"].text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in index_csp
    # Swagger UI loads (its CDN allowed there only); the token-bearing API is never cached.
    assert "cdn.jsdelivr.net" in answers["docs"].headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in index_csp
    assert answers["401"].headers["cache-control"] == "no-store"


def test_a_crash_is_a_json_500_with_the_security_headers(storage: Storage) -> None:
    """Issue 24.4 (defence in depth). Before: a plain-text 500 without any security header."""
    app = create_app(storage, review="off")

    @app.get("/api/v1/crash")
    def crash() -> None:
        raise RuntimeError(f"a bug that names {storage.data_dir}")

    with TestClient(app, raise_server_exceptions=False) as crashing:
        answer = crashing.get("/api/v1/crash")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error"}
    assert str(storage.data_dir) not in answer.text
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.server  # plugdock server
def test_the_server_drops_a_client_that_never_finishes_its_headers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Storage(data).ensure()
    with (
        _live_server(data, tmp_path / "server.log") as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.settimeout(40)  # the server's header deadline is 10 s
        sock.sendall(b"GET /manifest.json HTTP/1.1\r\nHost: server\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
