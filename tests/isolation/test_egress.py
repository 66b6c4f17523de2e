"""Egress that matches the words: a hostile plugin granted ``network:<host>:<port>`` reaches
that and nothing else (docs/isolation.md, plugdock.isolation.egress).

Before this, any ``network:*`` grant shared the host's whole network: a plugin that asked
for ``network:api.example.com:443`` logged in to PostgreSQL on 127.0.0.1 as the superuser.
Each attack here succeeded then (the shared network reached loopback, the host's resolver
answered every name, 169.254.169.254 had a route); each must fail now, at the socket level.
"""

from __future__ import annotations

import errno
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_isolation import assert_panel_serves, install, isolated_panel, route_plugin, sqlite_url

from panel import Panel

pytestmark = pytest.mark.processes

# Each route reports what happened instead of raising: the test reads the exact error.
PROBE_ROUTES = """
import socket


def _report(action):
    try:
        return {'ok': True, 'result': action()}
    except OSError as exc:
        return {'ok': False, 'error': type(exc).__name__, 'errno': exc.errno,
                'message': str(exc)}


def _talk(host, port):
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(b'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')
        answer = b''
        while chunk := conn.recv(4096):  # HTTP/1.0: the server closes after its answer
            answer += chunk
        return answer.decode('latin-1')


def _raw(address, port):
    # No resolver, no library: a bare socket to an address.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect((address, port))
        return 'connected'


@router.get('/talk')
def talk(host: str, port: int) -> dict:
    return _report(lambda: _talk(host, port))


@router.get('/raw')
def raw(address: str, port: int) -> dict:
    return _report(lambda: _raw(address, port))


@router.get('/dns')
def dns(name: str) -> dict:
    # A resolver of its own (not the system's): a raw DNS query to resolv.conf's server.
    import struct

    def ask():
        server = open('/etc/resolv.conf').read().split()[1]
        labels = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.'))
        query = struct.pack('!6H', 99, 0x0100, 1, 0, 0, 0) + labels + b'\\0' + b'\\0\\1\\0\\1'
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(query, (server, 53))
            reply = udp.recv(512)
        code, answers = reply[3] & 0x0F, struct.unpack('!H', reply[6:8])[0]
        return {'rcode': code, 'address': socket.inet_ntoa(reply[-4:]) if answers else None}

    return _report(ask)


@router.get('/resolve')
def resolve(name: str) -> dict:
    return _report(lambda: sorted({a[4][0] for a in socket.getaddrinfo(name, 443)}))
"""


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"granted service"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _host_address() -> str | None:
    """This machine's own IPv4 address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only the route is chosen
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


HOST_ADDRESS = _host_address()


@pytest.fixture
def service() -> Iterator[int]:
    """A fake service on 127.0.0.1 and this machine's own address (what a test grants
    explicitly, by address): its port."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def egress(tmp_path: Path, panels: list[Panel], service: int) -> tuple[Panel, httpx.Client, int]:
    """A process-mode panel serving ``prober``, granted exactly: api.example.com:443, the
    fake service on 127.0.0.1 by its address, and ``localhost`` on the service's port (a
    name: the panel resolves it, to loopback, which a name may not reach)."""
    grants = [
        "network:api.example.com:443",
        f"network:127.0.0.1:{service}",
        f"network:localhost:{service}",
        *([f"network:{HOST_ADDRESS}:{service}"] if HOST_ADDRESS else []),
    ]
    prober = route_plugin(
        tmp_path / "src", "prober", PROBE_ROUTES, metadata={"permissions": grants}
    )
    panel = isolated_panel(tmp_path, sqlite_url(tmp_path), [prober])
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "prober")
    return panel, admin, service


def _ask(admin: httpx.Client, route: str, **params: object) -> dict:
    answer = admin.get(f"/api/v1/prober/{route}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_granted_loopback_service_is_reached(egress: tuple[Panel, httpx.Client, int]) -> None:
    _panel, admin, service = egress
    reached = _ask(admin, "talk", host="127.0.0.1", port=service)
    assert reached["ok"] is True and "granted service" in reached["result"], reached
    assert_panel_serves(admin)


@pytest.mark.skipif(HOST_ADDRESS is None, reason="this machine has no address of its own")
def test_a_granted_address_outside_loopback_is_reached_by_that_address(
    egress: tuple[Panel, httpx.Client, int],
) -> None:
    """``network:<this machine's address>:<port>``: a private address, named by the grant
    itself, so the panel connects to it; another port there is not reached."""
    _panel, admin, service = egress
    reached = _ask(admin, "talk", host=HOST_ADDRESS, port=service)
    assert reached["ok"] is True and "granted service" in reached["result"], reached
    other = _ask(admin, "raw", address=HOST_ADDRESS, port=5432)
    assert other["ok"] is False and other["errno"] == errno.ECONNREFUSED, other


@pytest.mark.parametrize("port", [5432, 3306])
def test_database_servers_on_loopback_are_not_reached(
    egress: tuple[Panel, httpx.Client, int], port: int
) -> None:
    _panel, admin, _ = egress
    blocked = _ask(admin, "raw", address="127.0.0.1", port=port)
    # Nothing listens there in the plugin's namespace: refused at once, never the server.
    assert blocked["ok"] is False and blocked["errno"] == errno.ECONNREFUSED, blocked


def test_the_panel_itself_is_not_reached(egress: tuple[Panel, httpx.Client, int]) -> None:
    panel, admin, _ = egress
    port = int(panel.url.rpartition(":")[2])
    blocked = _ask(admin, "talk", host="127.0.0.1", port=port)
    assert blocked["ok"] is False and blocked["errno"] == errno.ECONNREFUSED, blocked


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud metadata
        "10.0.0.1",  # a private range
        "1.1.1.1",  # a public address nobody granted
    ],
)
def test_raw_sockets_to_addresses_not_granted_have_no_route(
    egress: tuple[Panel, httpx.Client, int], address: str
) -> None:
    _panel, admin, _ = egress
    blocked = _ask(admin, "raw", address=address, port=80)
    assert blocked["ok"] is False and blocked["errno"] == errno.ENETUNREACH, blocked


def test_names_resolve_only_as_the_panel_answers(egress: tuple[Panel, httpx.Client, int]) -> None:
    _panel, admin, _ = egress
    granted = _ask(admin, "resolve", name="api.example.com")
    assert granted == {"ok": True, "result": ["127.77.0.1"]}, granted
    for name in ("example.org", "metadata.google.internal", "pypi.org"):
        refused = _ask(admin, "resolve", name=name)
        assert refused["ok"] is False and refused["error"] == "gaierror", (name, refused)


def test_the_panel_answers_dns_for_granted_names_only(
    egress: tuple[Panel, httpx.Client, int],
) -> None:
    """A client with a resolver of its own asks the server in /etc/resolv.conf: the panel,
    which knows the granted names and no other (NXDOMAIN, never the real DNS)."""
    _panel, admin, _ = egress
    granted = _ask(admin, "dns", name="api.example.com")
    assert granted == {"ok": True, "result": {"rcode": 0, "address": "127.77.0.1"}}, granted
    for name in ("example.org", "metadata.google.internal"):
        refused = _ask(admin, "dns", name=name)
        assert refused == {"ok": True, "result": {"rcode": 3, "address": None}}, refused


def test_a_granted_name_that_resolves_to_loopback_is_refused_by_the_panel(
    egress: tuple[Panel, httpx.Client, int],
) -> None:
    """``network:localhost:<port>`` names a host, not an address: the panel resolves it to
    127.0.0.1, not a public address, and closes the connection instead of relaying it; the
    same service, granted by its address, is reached (above)."""
    _panel, admin, service = egress
    assert _ask(admin, "resolve", name="localhost")["result"] == ["127.77.0.2"]
    refused = _ask(admin, "talk", host="localhost", port=service)
    assert not (refused["ok"] and "granted service" in refused["result"]), refused


def test_broker_refuses_private_addresses_unless_named() -> None:
    import ipaddress

    from plugdock.isolation.egress import allowed, plan

    refused = ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "100.64.0.1"]
    refused += ["::1", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254", "224.0.0.1"]
    for text in refused:
        assert not allowed(ipaddress.ip_address(text), named=False), text
        assert allowed(ipaddress.ip_address(text), named=True), text
    assert allowed(ipaddress.ip_address("93.184.216.34"), named=False)
    routes = plan([("a.example", 443), ("a.example", 80), ("127.0.0.1", 5432), ("10.0.0.5", 5432)])
    assert [(r.address, r.port, r.host) for r in routes] == [
        ("10.0.0.5", 5432, "10.0.0.5"),
        ("127.0.0.1", 5432, "127.0.0.1"),
        ("127.77.0.1", 80, "a.example"),
        ("127.77.0.1", 443, "a.example"),
    ]


NOBODY = 65534
INSIDE = """
import errno, socket, sys
conn = socket.create_connection(('api.example.com', 443), timeout=10)
assert conn.recv(16) == b'from the panel', 'the granted name did not lead to the panel'
try:
    socket.create_connection(('127.0.0.1', 5432), timeout=10)
    sys.exit('reached 127.0.0.1:5432')
except ConnectionRefusedError:
    pass
try:
    socket.create_connection(('169.254.169.254', 80), timeout=10)
    sys.exit('reached 169.254.169.254')
except OSError as exc:
    assert exc.errno == errno.ENETUNREACH, exc
print('confined')
"""

LAUNCHER = """
import json, subprocess, sys
from pathlib import Path
from plugdock.isolation.sandbox import Sandbox, launch

root = Path(sys.argv[1])
sandbox = Sandbox(
    "prober", root / "backend", root / "data", root / "run", root / "hidden",
    listen=(("127.77.0.1", 443),),
    resolver_files=((root / "run" / "hosts", "/etc/hosts"),
                    (root / "run" / "nsswitch.conf", "/etc/nsswitch.conf")),
)
start = launch(sandbox, [sys.executable, "-c", sys.argv[2]])
process = subprocess.Popen(
    start.args, preexec_fn=start.preexec, stdout=subprocess.PIPE, pass_fds=(start.seccomp_fd,)
)
listener, _dns = start.listeners()
conn, _ = listener.accept()
conn.sendall(b"from the panel")
out, _ = process.communicate(timeout=60)
print(json.dumps({"code": process.returncode, "out": out.decode()}))
"""


def test_an_ordinary_users_panel_gets_the_same_confinement() -> None:
    """A panel that is not root makes the plugin's network namespace in a user namespace of
    its own (sandbox._own_network); run here as ``nobody`` with the system's Python (the
    test's own lives where nobody may not read)."""
    import json
    import os
    import shutil
    import subprocess
    import tempfile

    import plugdock
    from plugdock.isolation.egress import NSSWITCH, hosts_file, plan

    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None or os.geteuid() != 0:
        pytest.skip("needs root (to become nobody) and a system python3")
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
    )
    if version.stdout.strip() != "True":
        pytest.skip("the system's python3 is older than 3.11")
    root = Path(tempfile.mkdtemp(prefix="pd-egress-", dir="/tmp"))
    try:
        shutil.copytree(Path(plugdock.__file__).parent, root / "lib" / "plugdock")
        import pyseccomp  # the sandbox's seccomp filter is built with it (a single module)

        shutil.copy(pyseccomp.__file__, root / "lib")
        for name in ("backend", "data", "run", "hidden"):
            (root / name).mkdir()
        routes = plan([("api.example.com", 443)])
        (root / "run" / "hosts").write_text(hosts_file(routes))
        (root / "run" / "nsswitch.conf").write_text(NSSWITCH)
        for folder, _, files in os.walk(root):
            os.chown(folder, NOBODY, NOBODY)
            for name in files:
                os.chown(os.path.join(folder, name), NOBODY, NOBODY)
        result = subprocess.run(
            [python, "-c", LAUNCHER, str(root), INSIDE],
            env={"PYTHONPATH": str(root / "lib"), "PATH": "/usr/bin:/bin"},
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report == {"code": 0, "out": "confined\n"}, (report, result.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_sandbox_with_grants_is_never_started_without_its_own_network(tmp_path: Path) -> None:
    """Its bubblewrap command makes no network namespace (launch() made one before): the
    bare command line, without launch()'s preexec, would share the host's network."""
    from plugdock.isolation.sandbox import Sandbox, command

    granted = Sandbox(
        "x",
        tmp_path / "b",
        tmp_path / "d",
        tmp_path / "r",
        tmp_path / "i",
        listen=(("127.77.0.1", 443),),
    )
    with pytest.raises(ValueError, match="only through launch"):
        command(granted, ["true"])
