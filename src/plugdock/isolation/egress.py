"""Egress that matches the words: a plugin reaches its granted ``host:port`` and nothing else.

A plugin process with ``network:<host>[:<port>]`` grants runs in a network namespace of its
own that holds only loopback. In it:

- its ``/etc/hosts`` (written by the panel, :func:`hosts_file`) maps each granted host name
  to an address of its own in ``127.77.0.0/16``, and ``/etc/nsswitch.conf`` says ``hosts:
  files``; its ``/etc/resolv.conf`` names 127.0.0.1, where the panel answers DNS with the
  same addresses (:func:`dns_answer`): the panel is its only resolver, and any other name
  does not resolve;
- on each granted address and port a listening socket waits: the panel's own. The process
  that starts the sandbox makes the namespace, binds these sockets there before it gives
  up its rights (:func:`plugdock.isolation.sandbox.launch`) and hands them to the panel,
  so no code of the plugin's ever holds them;
- the panel (:class:`EgressBroker`, one per plugin process) accepts each connection, and
  connects to the granted host and port from its own network: it resolves the name
  itself, and refuses any address that is not public (loopback, link-local and so cloud
  metadata at 169.254.169.254, private ranges, shared, reserved, multicast) unless the
  grant names that address itself (``network:127.0.0.1:5432``).

Every client works the same (HTTP, SMTP, database drivers, raw sockets): it is the socket
that is carried, not a protocol. A connection to anything else finds no route, or loopback
with nothing listening.

A grant naming an IPv4 address (``network:10.0.0.5:5432``) is reached by that address:
the namespace's loopback gets it too (only it, /32), with the panel's socket on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Any, cast

from plugdock.isolation.dbrelay import pipe

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
MAX_CONNECTIONS = 64  # one plugin process's connections out at once (each holds panel fds)
# Addresses given to granted host names inside a plugin's namespace.
_POOL = ipaddress.ip_network("127.77.0.0/16")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Route:
    """Connections to ``address:port`` inside the sandbox go to ``host:port`` outside."""

    address: str  # where the plugin connects, in its own namespace (always in 127.0.0.0/8)
    port: int
    host: str  # the granted host: a name, or the address it names


def _literal(host: str) -> IPAddress | None:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    return None


def plan(grants: list[tuple[str, int]]) -> list[Route]:
    """Where each granted ``(host, port)`` is reached inside the sandbox.

    >>> [(r.address, r.port, r.host) for r in plan([("a.example", 443), ("127.0.0.1", 5432)])]
    [('127.0.0.1', 5432, '127.0.0.1'), ('127.77.0.1', 443, 'a.example')]

    A literal address is reached by that address (outside 127.0.0.0/8, the process that
    makes the namespace gives the loopback that address too).
    """
    names = sorted({host for host, _ in grants if _literal(host) is None})
    taken = {str(a) for host, _ in grants if (a := _literal(host)) is not None}
    free = (str(a) for a in _POOL.hosts() if str(a) not in taken)
    addresses = dict(zip(names, free, strict=False))
    routes = []
    for host, port in grants:
        if _literal(host) is None:
            routes.append(Route(addresses[host], port, host))
        elif isinstance(_literal(host), ipaddress.IPv4Address):
            routes.append(Route(host, port, host))
    return sorted(routes, key=lambda r: (r.address, r.port))


def hosts_file(routes: list[Route]) -> str:
    """The sandbox's ``/etc/hosts``: localhost and each granted name, nothing else."""
    named = {r.host for r in routes}
    lines = [] if "localhost" in named else ["127.0.0.1 localhost", "::1 localhost"]
    lines += sorted({f"{r.address} {r.host}" for r in routes if _literal(r.host) is None})
    return "\n".join(lines) + "\n"


NSSWITCH = "hosts: files\n"  # the system's resolver: the panel's hosts file only
RESOLV_CONF = "nameserver 127.0.0.1\n"  # other resolvers: the panel's DNS answers (below)


def dns_answer(query: bytes, names: dict[str, str]) -> bytes | None:
    """The panel's DNS answer, inside a plugin's namespace, to one UDP query: the address of
    a granted name (A), nothing else (NXDOMAIN for any other name); None to stay silent.

    >>> import struct
    >>> q = struct.pack("!6H", 7, 0x0100, 1, 0, 0, 0) + b"\\x01a\\x07example\\x00"
    >>> q += struct.pack("!HH", 1, 1)  # A, IN
    >>> dns_answer(q, {"a.example": "127.77.0.1"})[-4:] == socket.inet_aton("127.77.0.1")
    True
    >>> dns_answer(q, {})[3] & 0x0F  # NXDOMAIN
    3
    """
    try:
        ident, flags, questions = struct.unpack("!3H", query[:6])
        if flags & 0x8000 or questions != 1:
            return None  # an answer, or several questions: not a query this serves
        position, labels = 12, []
        while (length := query[position]) != 0:
            if length > 63:
                return None  # compression or garbage: a query's name has neither
            labels.append(query[position + 1 : position + 1 + length])
            position += 1 + length
        qtype, qclass = struct.unpack("!HH", query[position + 1 : position + 5])
        question = query[12 : position + 5]
        name = b".".join(labels).decode("ascii").lower()
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    address = names.get(name)
    answers = b""
    if address is not None and qtype in (1, 255) and qclass == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    code = 3 if address is None else 0  # NXDOMAIN, or the name with (maybe) no such record
    reply_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | code  # QR AA RD RA
    header = struct.pack("!6H", ident, reply_flags, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


class _DnsServer(asyncio.DatagramProtocol):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport (not a DatagramTransport subclass on every Python).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = dns_answer(data, self.names)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def allowed(address: IPAddress, *, named: bool) -> bool:
    """Whether the broker may connect to ``address``: a public one, or the grant names it.

    >>> allowed(ipaddress.ip_address("169.254.169.254"), named=False)
    False
    >>> allowed(ipaddress.ip_address("::ffff:127.0.0.1"), named=False)
    False
    >>> allowed(ipaddress.ip_address("127.0.0.1"), named=True)
    True
    """
    if named:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class EgressBroker:
    """The panel's end of one plugin process's grants: accepts on the sockets bound in its
    namespace, connects to the granted host and port only."""

    def __init__(self, plugin_id: str, routes: list[Route], listeners: list[socket.socket]) -> None:
        """``listeners``: one listening socket per route, then the namespace's DNS socket."""
        if len(listeners) != len(routes) + 1:
            raise ValueError("one listening socket per route, and the DNS socket")
        self.plugin_id = plugin_id
        self._pairs = list(zip(routes, listeners, strict=False))
        self._dns_socket = listeners[-1]
        self._dns: asyncio.DatagramTransport | None = None
        self._names = {r.host: r.address for r in routes if _literal(r.host) is None}
        self._servers: list[asyncio.AbstractServer] = []
        self._pipes: set[asyncio.Task[None]] = set()
        self._open = 0

    async def start(self) -> None:
        for route, listener in self._pairs:
            listener.setblocking(False)

            async def accept(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route = route
            ) -> None:
                await self._relay(route, reader, writer)

            self._servers.append(await asyncio.start_server(accept, sock=listener))
        self._dns_socket.setblocking(False)
        loop = asyncio.get_running_loop()
        self._dns, _ = await loop.create_datagram_endpoint(
            lambda: _DnsServer(self._names), sock=self._dns_socket
        )

    async def _relay(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream: asyncio.StreamWriter | None = None
        if self._open >= MAX_CONNECTIONS:
            writer.close()
            return
        self._open += 1
        try:
            upstream_reader, upstream = await self._connect(route)
            pipes = [
                asyncio.create_task(pipe(reader, upstream)),
                asyncio.create_task(pipe(upstream_reader, writer)),
            ]
            self._pipes.update(pipes)
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pipes:
                    task.cancel()
                    self._pipes.discard(task)
        except (OSError, TimeoutError) as exc:
            log.info("%s: no connection to %s:%s: %s", self.plugin_id, route.host, route.port, exc)
        finally:
            self._open -= 1
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def _connect(self, route: Route) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve the granted host here, keep the addresses it may reach, connect to one."""
        named = _literal(route.host) is not None
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(route.host, route.port, type=socket.SOCK_STREAM)
        addresses = [
            str(sockaddr[0])
            for *_, sockaddr in found
            if allowed(ipaddress.ip_address(sockaddr[0]), named=named)
        ]
        if not addresses:
            raise OSError(f"{route.host} resolves to no public address")
        last: OSError | None = None
        for address in dict.fromkeys(addresses):
            try:
                # The checked address itself, never the name again: no second lookup to race.
                return await asyncio.wait_for(
                    asyncio.open_connection(address, route.port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                last = OSError(str(exc))
        raise last or OSError("no address")

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        for task in list(self._pipes):
            task.cancel()
        for _, listener in self._pairs:
            listener.close()
        if self._dns is not None:
            self._dns.close()
        self._dns_socket.close()
