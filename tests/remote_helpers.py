"""Helpers for remote-mode tests: a real plugin server on loopback, with an attacker in front.

``LiveServer`` runs uvicorn in a thread on a free port of 127.0.0.1 (over TLS with a
certificate from ``self_signed_cert``). ``Chaos`` is a pure-ASGI wrapper that can play a
broken network or a malicious mirror: cut a download off halfway, answer 500, serve other
bytes for a path, answer 404 for some paths, or redirect every request elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from plugdock.config import Settings, load_settings
from plugdock.server import Storage, create_app
from plugdock.server.client import publish
from plugdock.trust.signing import generate_keypair, load_private_key, load_public_key, sign_package
from plugdock.trust.store import TrustStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Cut(Exception):
    """Raised mid-response: uvicorn then drops the connection, like a killed server."""


@dataclass
class Chaos:
    app: Any
    truncate_downloads: int = 0  # how many download responses to cut off halfway
    fail_downloads: int = 0  # how many download requests answer 500
    replace: dict[str, bytes] = field(default_factory=dict)  # path -> bytes to serve instead
    redirect_to: str | None = None  # a base URL: every request answers 302 to it + its path
    missing: tuple[str, ...] = ()  # path prefixes answered 404 (a server without them)
    hits: Counter[str] = field(default_factory=Counter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        kind = "download" if path.startswith("/download/") else path
        self.hits[kind] += 1
        if self.redirect_to is not None:
            location = (self.redirect_to + path).encode()
            await send(
                {"type": "http.response.start", "status": 302, "headers": [(b"location", location)]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if path.startswith(self.missing) and self.missing:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        if path in self.replace:
            body = self.replace[path]
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if kind == "download" and self.fail_downloads > 0:
            self.fail_downloads -= 1
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        if kind == "download" and self.truncate_downloads > 0:
            self.truncate_downloads -= 1
            await self.app(scope, receive, _truncating(send))
            return
        await self.app(scope, receive, send)


def _truncating(send: Send) -> Send:
    state = {"total": 0, "sent": 0}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", []):
                if name.lower() == b"content-length":
                    state["total"] = int(value)
            await send(message)
            return
        if message["type"] == "http.response.body":
            half = state["total"] // 2
            body = message.get("body", b"")
            room = half - state["sent"]
            if room > 0:
                part = body[:room]
                state["sent"] += len(part)
                await send({"type": "http.response.body", "body": part, "more_body": True})
            if state["sent"] >= half:
                raise _Cut("connection dropped halfway")
            return
        await send(message)

    return wrapped


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, *, tls: tuple[Path, Path] | None = None) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="critical",
            lifespan="off",
            access_log=False,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        self.scheme = "https" if tls else "http"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"{self.scheme}://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (clients trust it via ``SSL_CERT_FILE``)."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Remote:
    """A running plugin server with one publisher (``alice``) and her signing key."""

    url: str
    storage: Storage
    token: str
    chaos: Chaos
    key_path: Path
    public_key_path: Path

    def publish(self, zip_path: Path, *, sign: bool = True, token: str | None = None) -> Any:
        if sign:
            sign_package(zip_path, load_private_key(self.key_path), "alice")
        return publish(zip_path, self.url, token or self.token)


def host_settings(tmp_path: Path, url: str, **overrides: Any) -> Settings:
    """Settings of a host instance in remote mode (SQLite), with fast retries.

    The test servers speak plain http on loopback, so first-use pinning is opted into
    explicitly (``allow_http_pin``); tests of the refusal pass ``allow_http_pin=False``.
    """
    values: dict[str, Any] = {
        "plugin_source": "remote",
        "plugin_server_url": url,
        "allow_http_pin": True,
        "home": tmp_path / "instance",
        "database_url": f"sqlite:///{tmp_path / 'host.db'}",
        "lock_timeout": 30,
        "download_timeout": 10,
    }
    return load_settings(**(values | overrides))


def trust_alice(settings: Settings, remote: Remote) -> None:
    TrustStore(settings.trust_dir).add(load_public_key(remote.public_key_path), "alice")


def start_remote(tmp_path: Path, *, review: str = "off") -> tuple[LiveServer, Remote]:
    """A live server; review off unless asked (tests/server/test_review.py covers the queue)."""
    storage = Storage(tmp_path / "server-data").ensure()
    token = storage.create_token("alice")
    chaos = Chaos(create_app(storage, review=review))
    key, public = generate_keypair(tmp_path / "keys", "alice")
    live = LiveServer(chaos).__enter__()
    return live, Remote(live.url, storage, token, chaos, key, public)
