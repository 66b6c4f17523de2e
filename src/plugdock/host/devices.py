"""Device cookies: a client that signed in to an account before is not locked out by guessers.

Counting failed sign-ins per account lets anyone lock an admin out by guessing wrong on
purpose. OWASP's answer ("Slow Down Online Guessing Attacks with Device Cookies"), which
this module implements:

- every successful sign-in hands the client a *device token* for that account: a random
  device id, the account's id and the time, signed with the panel's key (browsers get it as
  the HttpOnly cookie :data:`DEVICE_COOKIE`, scoped to the sign-in routes; API clients in
  the answer, to send back as ``device_token``);
- a sign-in presenting a valid device token for the account it names counts its attempt in
  that device's own bucket (``device:<id>``) instead of the account's, so guesses from
  elsewhere, which lock the account for unknown clients, do not lock this device out;
- the per-client limit applies to everyone, and a device that guesses wrong itself is
  locked like any account (its bucket has a limit of its own).

A device token proves nothing but an earlier sign-in: it never signs anyone in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from plugdock.host.throttle import DEVICE_PREFIX

DEVICE_COOKIE = "plugdock_device"
#: How long a device stays known after its last sign-in (each sign-in renews it).
DEVICE_SECONDS = 180 * 24 * 3600
MAX_TOKEN_LENGTH = 200


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"device:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: str, user_id: int, *, device: str | None = None, now: float | None = None) -> str:
    """A device token for ``user_id``: a new device, or ``device`` renewed."""
    device = device or secrets.token_urlsafe(16)
    payload = f"{user_id}.{device}.{int(now if now is not None else time.time())}"
    return f"{payload}.{_signature(secret, payload)}"


def recognise(
    secret: str, token: str | None, user_id: int, *, now: float | None = None
) -> str | None:
    """The device id of ``token`` when it is valid, unexpired and for ``user_id``; else None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _signature(secret, payload).encode()):
        return None
    owner, device, issued = payload.split(".")  # signed by us: exactly three parts
    moment = now if now is not None else time.time()
    if owner != str(user_id) or not 0 <= moment - int(issued) <= DEVICE_SECONDS:
        return None
    return device


def bucket(device: str) -> str:
    """The throttle bucket of a device."""
    return f"{DEVICE_PREFIX}{device}"
