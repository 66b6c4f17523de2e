"""The network namespace of a plugin process with egress grants (plugdock.isolation.egress).

Made in the child that is about to execute bubblewrap, while it still may (root, or a
user namespace of its own): loopback, the granted addresses on it, and the panel's
listening sockets there, handed to the panel.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from pathlib import Path

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_IFF_UP = 0x1
DNS_ADDRESS = "127.0.0.1"  # the sandbox's resolv.conf names it; the panel answers there


def own_network(
    libc: ctypes.CDLL, listen: tuple[tuple[str, int], ...], channel: socket.socket, *, as_root: bool
) -> None:
    """A network namespace holding loopback and the panel's sockets on ``listen``.

    Runs in the child that is about to execute bubblewrap, before it gives up its rights:
    as root (a root panel), or in a user namespace of its own mapping only the panel's
    user, which owns the new network namespace. It brings loopback up, binds and listens on
    each address (ports below 1024 too: it may, here), binds a UDP socket on
    ``DNS_ADDRESS:53`` (the last one sent), and sends the sockets to the panel on
    ``channel``; it keeps none. bubblewrap then runs in this namespace, and the plugin, in
    namespaces of its own below it, holds no right over it: it cannot add an address or a
    route, only connect to what listens.
    """

    def check(result: int, what: str) -> None:
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"{what}: {os.strerror(error)}")

    if as_root:
        check(libc.unshare(_CLONE_NEWNET), "unshare(net)")
    else:
        uid, gid = os.getuid(), os.getgid()
        check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET), "unshare(user, net)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH", b"lo", 0).ljust(40, b"\0")
        (flags,) = struct.unpack_from("H", fcntl.ioctl(control, _SIOCGIFFLAGS, request), 16)
        up = struct.pack("16sH", b"lo", flags | _IFF_UP).ljust(40, b"\0")
        fcntl.ioctl(control, _SIOCSIFFLAGS, up)
        # A granted address outside 127.0.0.0/8 (network:10.0.0.5:5432): an address of the
        # loopback here, /32, so the plugin's connection to it meets the panel's socket.
        outside = sorted({a for a, _ in listen if not a.startswith("127.")})
        for number, address in enumerate(outside, start=1):
            alias = f"lo:{number}".encode().ljust(16, b"\0")
            for code, value in ((_SIOCSIFADDR, address), (_SIOCSIFNETMASK, "255.255.255.255")):
                inet = struct.pack("=H", socket.AF_INET) + bytes(2) + socket.inet_aton(value)
                fcntl.ioctl(control, code, (alias + inet).ljust(40, b"\0"))
    sockets = []
    for address, port in listen:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(128)
        sockets.append(listener)
    # Last: the namespace's DNS server address, for resolvers that do not read /etc/hosts.
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((DNS_ADDRESS, 53))
    sockets.append(dns)
    socket.send_fds(channel, [b"listeners"], [s.fileno() for s in sockets])
    for listener in sockets:
        listener.close()
    channel.close()
