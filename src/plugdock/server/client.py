"""Publishing a package to a plugin server (what ``plugdock publish`` does).

>>> publish(Path("ai_chatbot_v1.0.0.zip"), "https://plugins.example.com", token)  # doctest: +SKIP
{'id': 'ai_chatbot', 'version': '1.0.0', 'sha256': '...', ...}
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from plugdock.core.contract import detail_text
from plugdock.errors import PlugdockError, SourceUnavailableError
from plugdock.trust.store import normalize_server_url

Progress = Callable[[int, int | None], None]
_CHUNK = 256 * 1024


class PublishError(PlugdockError):
    """The server refused the package; ``status`` is its HTTP status, ``problems`` its findings."""

    def __init__(self, message: str, status: int, problems: list[str] | None = None) -> None:
        self.status = status
        self.problems = problems or []
        super().__init__(message)


def publish(
    zip_path: Path,
    server_url: str,
    token: str,
    *,
    progress: Progress | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Upload ``zip_path`` as multipart ``file``; returns the server's record of the version.

    ``progress(sent, total)`` is called as the body goes out. Raises PublishError with
    the server's ``detail`` (401/403/409/413/422), or SourceUnavailableError.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise PlugdockError(f"no such package file: {zip_path}")
    url = normalize_server_url(server_url) + "/api/v1/plugins"
    boundary = secrets.token_hex(16)
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_safe(zip_path.name)}"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = zip_path.stat().st_size
    total = len(head) + size + len(tail)

    def body() -> Iterator[bytes]:
        sent = 0
        yield head
        with open(zip_path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                sent += len(chunk)
                if progress:
                    progress(sent, size)
                yield chunk
        yield tail

    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(total),
    }
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0)) as client:
            response = client.post(url, content=body(), headers=headers)
    except httpx.HTTPError as exc:
        raise SourceUnavailableError(f"cannot reach the plugin server at {url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = {"detail": response.text[:200]}
    if response.status_code != 201:
        detail = detail_text(data.get("detail")) if isinstance(data, dict) else None
        raise PublishError(
            f"the server refused the package (HTTP {response.status_code}): {detail}",
            response.status_code,
            data.get("problems") if isinstance(data, dict) else None,
        )
    return dict(data)


def call(
    server_url: str,
    token: str,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    json: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """One JSON call of the server's API with a bearer token (review and status commands).

    Raises PublishError with the server's ``detail`` for any non-2xx answer.
    """
    url = normalize_server_url(server_url) + path
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0)) as client:
            response = client.request(
                method, url, params=params, json=json, headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as exc:
        raise SourceUnavailableError(f"cannot reach the plugin server at {url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = {"detail": response.text[:200]}
    if not response.is_success:
        detail = detail_text(data.get("detail")) if isinstance(data, dict) else None
        raise PublishError(
            f"the server refused (HTTP {response.status_code}): {detail}", response.status_code
        )
    return dict(data)


def _safe(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and c not in '"\\\r\n') or "package.zip"
