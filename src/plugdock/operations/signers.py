"""The publisher key a plugin id is bound to: checked before any of the package's code runs,
recorded in the operation's transaction (see :mod:`plugdock.signer_binding`)."""

from __future__ import annotations

from plugdock.signer_binding import bind_signer, check_signer

__all__ = ["bind_signer", "check_signer"]
