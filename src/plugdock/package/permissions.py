"""What a plugin may do beyond its own tables: the ``permissions`` of ``metadata.json``.

A plugin lists what it asks for; the admin sees each in plain words before installing,
and an upgrade asking for more than was granted waits for the admin to confirm. The
vocabulary, and what process isolation enforces for each (:mod:`plugdock.isolation.egress`)::

    network:<host>:<port>        connections to that host and port only; nothing else
    network:<host>               the same, on ports 80 and 443 (HTTP and HTTPS)
    network                      the host's whole network, its own services (127.0.0.1)
                                 and private ranges included: nothing can be refused
    core:users:read              the panel's user list, through an SDK call (a plugin UI:
                                 GET /api/v1/users through the frame's bridge)
    ui:same-origin               the plugin's pages and widgets run inside the panel's own
                                 page, with the signed-in user's rights (else: a sandboxed frame)

A named host is resolved by the panel, which refuses loopback, link-local (cloud
metadata), private and other non-public addresses unless the grant names the address
itself (``network:127.0.0.1:5432``). ``network:setting:<name>`` is reserved for a host an
admin saves in a plugin setting; it is refused until plugins have settings.

Pure Python on purpose: ``package.metadata`` validates with it, and the plugin server
and the sandbox read it too.

>>> validate_permission("Network:API.OpenAI.com:443")
'network:api.openai.com:443'
>>> describe("network:api.openai.com:443")
'Open network connections to api.openai.com on port 443 (nothing else)'
>>> added(["network:a.example"], ["network:a.example", "core:users:read"])
['core:users:read']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NETWORK = "network"
USERS_READ = "core:users:read"
UI_SAME_ORIGIN = "ui:same-origin"
KNOWN = f"{NETWORK}, {NETWORK}:<host>[:<port>], {USERS_READ}, {UI_SAME_ORIGIN}"

# A DNS name or an IPv4 address: labels of letters, digits and '-', dot-separated.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_MAX_PORT = 65535
#: What ``network:<host>`` without a port opens: HTTP and HTTPS.
DEFAULT_PORTS = (80, 443)
_SETTING = "setting"  # network:setting:<name>, reserved
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
#: A permission in its normal form, for API schemas (with ``MAX_PERMISSION_LENGTH``, so the
#: host stays under 253 characters); :func:`validate_permission` still refuses the reserved
#: ``network:setting``.
PERMISSION_PATTERN = (
    rf"^(?:{NETWORK}|{USERS_READ}|{UI_SAME_ORIGIN}|{NETWORK}:{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?)$"
)
MAX_PERMISSION_LENGTH = 200


def validate_permission(permission: str) -> str:
    """The permission in its normal form (lower case, no spaces); ValueError when unknown."""
    if not isinstance(permission, str):
        raise ValueError(f"permission {permission!r} must be a string; known: {KNOWN}")
    value = permission.strip().lower()
    if value in (NETWORK, USERS_READ, UI_SAME_ORIGIN):
        return value
    if value.startswith(NETWORK + ":"):
        host, _, port = value[len(NETWORK) + 1 :].partition(":")
        if host == _SETTING:
            raise ValueError(
                f"permission {permission!r}: network:setting:<name> is reserved for a host "
                "saved in a plugin setting, which plugdock does not support yet; name the "
                "host instead (network:<host>:<port>)"
            )
        if not _HOST.fullmatch(host):
            raise ValueError(f"permission {permission!r}: {host!r} is not a host name")
        if port or value.endswith(":"):
            if not port.isdigit() or not 0 < int(port) <= _MAX_PORT:
                raise ValueError(f"permission {permission!r}: {port!r} is not a port (1-65535)")
            port = str(int(port))  # "0443" and "443" are one grant
        return f"{NETWORK}:{host}:{port}" if port else f"{NETWORK}:{host}"
    raise ValueError(f"unknown permission {permission!r}; known: {KNOWN}")


def normalize(permissions: Iterable[str]) -> list[str]:
    """Validate each; the normal forms, de-duplicated and sorted (how they are stored)."""
    return sorted({validate_permission(p) for p in permissions})


def describe(permission: str) -> str:
    """One sentence for the admin: exactly what a plugin process is then allowed."""
    value = validate_permission(permission)
    if value == NETWORK:
        return (
            "Open network connections to any host, including services on this machine "
            "(127.0.0.1: its databases too) and on its private network and cloud metadata"
        )
    if value == USERS_READ:
        return "Read the panel's users (names and roles)"
    if value == UI_SAME_ORIGIN:
        # The one grant that is not a sandbox: say what it means, not what it is called.
        return "Its pages run inside the panel with your rights: it can do anything you can"
    host, port = _host_and_port(value)
    ports = f"on port {port}" if port else "on ports 80 and 443 (HTTP and HTTPS)"
    return f"Open network connections to {host} {ports} (nothing else)"


def _host_and_port(value: str) -> tuple[str, str]:
    host, _, port = value[len(NETWORK) + 1 :].partition(":")
    return host, port


def wants_network(permissions: Iterable[str]) -> bool:
    """Whether any of them needs network access of some kind."""
    return any(p == NETWORK or p.startswith(NETWORK + ":") for p in normalize(permissions))


def wants_host_network(permissions: Iterable[str]) -> bool:
    """Whether plain ``network`` is among them: the host's whole network, shared."""
    return NETWORK in normalize(permissions)


def egress_grants(permissions: Iterable[str]) -> list[tuple[str, int]]:
    """Each ``(host, port)`` the named network grants open, sorted.

    >>> egress_grants(["network:a.example", "network:10.0.0.5:5432", "core:users:read"])
    [('10.0.0.5', 5432), ('a.example', 80), ('a.example', 443)]
    """
    grants: set[tuple[str, int]] = set()
    for value in normalize(permissions):
        if value.startswith(NETWORK + ":"):
            host, port = _host_and_port(value)
            grants |= {(host, int(port))} if port else {(host, p) for p in DEFAULT_PORTS}
    return sorted(grants)


def added(old: list[str], new: list[str]) -> list[str]:
    """What ``new`` asks for that ``old`` did not grant (sorted, normal forms).

    A plugin granted ``network`` that now names a host asks for nothing new: ``network``
    already covers every host. Otherwise each host and port is its own grant
    (``network:<host>`` covers ports 80 and 443 of that host).
    """
    granted = set(normalize(old))
    if NETWORK in granted:
        granted |= {p for p in normalize(new) if p.startswith(NETWORK + ":")}
    reachable = set(egress_grants(granted))
    return [
        p
        for p in normalize(new)
        if p not in granted
        and not (p.startswith(NETWORK + ":") and set(egress_grants([p])) <= reachable)
    ]
