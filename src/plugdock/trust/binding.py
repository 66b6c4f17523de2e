"""Which publisher key each plugin id is bound to (the core ``plugin_signers`` table).

Trusting a publisher key must not mean trusting it for *every* plugin id: otherwise any
trusted publisher (or whoever stole any one trusted key) could replace any plugin. So the
first signed install of an id binds the id to the key that signed it, and from then on a
package of that id signed by another key is refused, on install, reinstall and upgrade,
until an administrator rotates the binding explicitly (``plugdock trust bind``).
Bindings outlive uninstalls: a reinstall signed by another key is refused too.

Keys are named by their fingerprint, the SHA-256 of the raw Ed25519 public key
(:func:`plugdock.trust.signing.key_id`), never by the signer name a package claims.

The installer calls these inside its transaction, so a binding exists exactly when the
install that made it does::

    check_signer(conn, meta.id, verdict.key_id)       # before changing anything
    ...
    bind_signer(conn, meta.id, verdict.key_id, installed_by)

A ``key_id`` of ``None`` (an unsigned package the policy ``warn`` lets through, or
signature checks ``off``) is neither checked nor bound: those policies already accept
packages nobody vouches for, for any id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select, update

from plugdock.core.db import plugin_signers, utcnow
from plugdock.errors import PlugdockError, SignerMismatchError
from plugdock.instance import audit
from plugdock.package.metadata import PLUGIN_ID_PATTERN

_ID = re.compile(PLUGIN_ID_PATTERN)
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")

#: Audit actions written by the explicit admin operations.
SIGNER_REBIND = "signer_rebind"
SIGNER_UNBIND = "signer_unbind"


@dataclass(frozen=True)
class SignerBinding:
    plugin_id: str
    key_id: str  # fingerprint: sha256 (hex) of the raw public key
    bound_at: datetime  # aware, UTC
    bound_by: str | None


def _checked(plugin_id: str, key_id: str | None) -> None:
    if not isinstance(plugin_id, str) or not _ID.fullmatch(plugin_id):
        raise PlugdockError(f"{str(plugin_id)[:80]!r} is not a valid plugin id")
    if key_id is not None and (not isinstance(key_id, str) or not _FINGERPRINT.fullmatch(key_id)):
        raise PlugdockError(
            f"{str(key_id)[:80]!r} is not a key fingerprint (64 lower-case hex characters)"
        )


def get_binding(conn: Connection, plugin_id: str) -> SignerBinding | None:
    """The key ``plugin_id`` is bound to, or None."""
    _checked(plugin_id, None)
    row = conn.execute(
        select(plugin_signers).where(plugin_signers.c.plugin_id == plugin_id)
    ).first()
    return _binding(row) if row is not None else None


def list_bindings(conn: Connection) -> list[SignerBinding]:
    rows = conn.execute(select(plugin_signers).order_by(plugin_signers.c.plugin_id))
    return [_binding(row) for row in rows]


def check_signer(conn: Connection, plugin_id: str, key_id: str | None) -> None:
    """Refuse (:class:`SignerMismatchError`) a package of ``plugin_id`` signed by another key.

    ``key_id`` is the fingerprint of the key that signed the package (the verdict's
    ``key_id`` once :func:`plugdock.trust.store.enforce` found it trusted); ``None`` is skipped.
    """
    _checked(plugin_id, key_id)
    if key_id is None:
        return
    bound = get_binding(conn, plugin_id)
    if bound is not None and bound.key_id != key_id:
        raise SignerMismatchError(
            f"{plugin_id} is bound to the publisher key with fingerprint {bound.key_id}, but "
            f"this package is signed by the key with fingerprint {key_id}; refusing it. If "
            "the publisher really changed keys, an administrator rebinds the id: "
            f"plugdock trust bind {plugin_id} {key_id}"
        )


def bind_signer(conn: Connection, plugin_id: str, key_id: str | None, actor: str | None) -> None:
    """Bind ``plugin_id`` to ``key_id`` if it is not bound yet (its first signed install).

    A no-op when it is already bound to this key, or when ``key_id`` is None. Bound to
    another key: :class:`SignerMismatchError` (call :func:`check_signer` first).
    """
    _checked(plugin_id, key_id)
    if key_id is None:
        return
    check_signer(conn, plugin_id, key_id)
    if get_binding(conn, plugin_id) is None:
        conn.execute(
            insert(plugin_signers).values(
                plugin_id=plugin_id, key_id=key_id, bound_at=utcnow(), bound_by=_actor(actor)
            )
        )


def rebind_signer(conn: Connection, plugin_id: str, key_id: str, actor: str | None) -> None:
    """An administrator's explicit rotation: bind ``plugin_id`` to ``key_id`` from now on.

    Works whether or not the id was bound; the change is written to the audit log.
    """
    _checked(plugin_id, key_id)
    if key_id is None:
        raise PlugdockError("rebinding needs the new key's fingerprint")
    bound = get_binding(conn, plugin_id)
    values = {"key_id": key_id, "bound_at": utcnow(), "bound_by": _actor(actor)}
    if bound is None:
        conn.execute(insert(plugin_signers).values(plugin_id=plugin_id, **values))
    elif bound.key_id != key_id:
        conn.execute(
            update(plugin_signers).where(plugin_signers.c.plugin_id == plugin_id).values(**values)
        )
    else:
        return
    audit.record(
        conn,
        actor=actor,
        action=SIGNER_REBIND,
        plugin_id=plugin_id,
        detail={"from": bound.key_id if bound else None, "to": key_id},
    )


def unbind_signer(conn: Connection, plugin_id: str, actor: str | None) -> bool:
    """Forget the binding of ``plugin_id`` (its next signed install binds it again)."""
    bound = get_binding(conn, plugin_id)
    if bound is None:
        return False
    conn.execute(delete(plugin_signers).where(plugin_signers.c.plugin_id == plugin_id))
    audit.record(
        conn, actor=actor, action=SIGNER_UNBIND, plugin_id=plugin_id, detail={"was": bound.key_id}
    )
    return True


def _actor(actor: str | None) -> str | None:
    return actor[:64] if actor is not None else None


def _binding(row: object) -> SignerBinding:
    bound_at = row.bound_at  # type: ignore[attr-defined]
    return SignerBinding(
        plugin_id=row.plugin_id,  # type: ignore[attr-defined]
        key_id=row.key_id,  # type: ignore[attr-defined]
        bound_at=bound_at.replace(tzinfo=UTC) if bound_at.tzinfo is None else bound_at,
        bound_by=row.bound_by,  # type: ignore[attr-defined]
    )


__all__ = [
    "SIGNER_REBIND",
    "SIGNER_UNBIND",
    "SignerBinding",
    "SignerMismatchError",
    "bind_signer",
    "check_signer",
    "get_binding",
    "list_bindings",
    "rebind_signer",
    "unbind_signer",
]
