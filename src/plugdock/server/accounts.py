"""Who may publish to the plugin server and who may review: names with a token each.

``DATA/publishers.json`` and ``DATA/reviewers.json`` (mode 0600) map a name to the SHA-256
of its token::

    {"alice": {"token_sha256": "9f…", "created": "2026-11-26T13:40:02+00:00"}}

Tokens are 256-bit random strings shown once at creation; only their SHA-256 is kept
(a fast hash is enough for secrets that cannot be guessed), and they are compared in
constant time. Publishers and reviewers are kept in separate files with differently
prefixed tokens (``pdt_``, ``pdr_``): a publisher's token never authenticates a reviewer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plugdock.core.fsutil import write_json_atomic
from plugdock.errors import PlugdockError
from plugdock.instance.locking import ThreadAndFileLock

TOKEN_PREFIX = "pdt_"
REVIEWER_TOKEN_PREFIX = "pdr_"
ROLES = ("publisher", "reviewer")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Publisher:
    name: str


@dataclass(frozen=True)
class Reviewer:
    name: str


class Accounts:
    """The publishers' and reviewers' tokens; changed under ``lock`` (the storage's)."""

    def __init__(
        self, publishers_path: Path, reviewers_path: Path, lock: ThreadAndFileLock
    ) -> None:
        self.publishers_path = publishers_path
        self.reviewers_path = reviewers_path
        self._lock = lock

    def _tokens_path(self, role: str) -> Path:
        if role not in ROLES:
            raise PlugdockError(f"unknown role {role!r} (publisher or reviewer)")
        return self.publishers_path if role == "publisher" else self.reviewers_path

    def _holders(self, role: str) -> dict[str, Any]:
        path = self._tokens_path(role)
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def create_token(self, name: str, role: str = "publisher") -> str:
        """Create (or replace) the token of ``name`` in ``role``; returns the token, shown once.

        Publishers and reviewers are kept in separate files with differently prefixed
        tokens: a publisher's token never authenticates a reviewer, whatever the names.
        """
        path = self._tokens_path(role)
        if not _NAME.fullmatch(name):
            raise PlugdockError(f"{name!r} is not a usable {role} name (letters, digits, _ . -)")
        prefix = TOKEN_PREFIX if role == "publisher" else REVIEWER_TOKEN_PREFIX
        token = prefix + secrets.token_urlsafe(32)
        with self._lock:
            holders = self._holders(role)
            holders[name] = {"token_sha256": _token_hash(token), "created": _now()}
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, holders)
            path.chmod(0o600)
        return token

    def _match(self, token: str, role: str) -> str | None:
        presented = _token_hash(token)
        found = None
        for name, entry in self._holders(role).items():
            if hmac.compare_digest(presented, str(entry.get("token_sha256", ""))):
                found = name
        return found

    def authenticate(self, token: str) -> Publisher | None:
        """The publisher whose token this is, or None."""
        name = self._match(token, "publisher")
        return Publisher(name) if name is not None else None

    def authenticate_reviewer(self, token: str) -> Reviewer | None:
        """The reviewer whose token this is, or None (publisher tokens never match)."""
        name = self._match(token, "reviewer")
        return Reviewer(name) if name is not None else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
