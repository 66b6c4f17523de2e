"""Slow clients are dropped: a real ``plugdock serve`` with 1-second header and body deadlines.

Each attack holds a raw socket open the way a slowloris client does; the panel must answer
408 (or close) on its own, while a well-behaved client on a kept-alive connection that sits
idle longer than the header deadline is still served.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panel import Panel, start_panel

pytestmark = pytest.mark.server

DEADLINE = "1"  # seconds, PLUGDOCK_HEADER_TIMEOUT and PLUGDOCK_BODY_TIMEOUT
WAIT = 20.0  # how long a test waits for the panel to act: far above the deadline


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp: Path = tmp_path_factory.mktemp("slow")
    running = start_panel(
        tmp,
        f"sqlite:///{tmp / 'panel.db'}",
        extra_env={"PLUGDOCK_HEADER_TIMEOUT": DEADLINE, "PLUGDOCK_BODY_TIMEOUT": DEADLINE},
    )
    yield running
    running.stop()


def _connect(panel: Panel) -> socket.socket:
    host, port = panel.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(WAIT)
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the panel sends until it closes the connection (timeout: the test fails)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def _one_response(sock: socket.socket) -> bytes:
    """One whole answer (status line, headers, Content-Length body) from a kept-alive socket."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "closed in the body"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed(panel: Panel) -> None:
    with _connect(panel) as sock:
        assert _until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_half_sent_headers_get_408_and_the_connection_closed(panel: Panel) -> None:
    with _connect(panel) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: panel\r\nX-Padding: ")
        answer = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request not received in time" in answer


def test_trickled_headers_are_cut_at_the_deadline_not_kept_alive_by_each_byte(
    panel: Panel,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: panel\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with _connect(panel) as sock:
        for byte in request:  # one byte every 0.1 s: 25 s for the whole request
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:  # the panel answered: stop sending before it resets the connection
                break
        else:
            pytest.fail("the panel read a request trickled over 25 s to its end")
        assert _until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stops_halfway_gets_408(panel: Panel) -> None:
    body = b'{"username": "admin", "password": "x"}'
    with _connect(panel) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: panel\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body) + 100, body)
        )
        answer = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_idle_kept_alive_connection_still_serves_its_next_request(panel: Panel) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: panel\r\n\r\n"
    with _connect(panel) as sock:
        sock.sendall(request)
        assert _one_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(2.5)  # idle past the header deadline, within the 15 s keep-alive
        sock.sendall(request)
        assert _one_response(sock).startswith(b"HTTP/1.1 200 ")


def test_whole_requests_are_served_while_slow_clients_wait(panel: Panel) -> None:
    stalled = [_connect(panel) for _ in range(50)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        with _connect(panel) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: panel\r\n\r\n")
            assert _one_response(sock).startswith(b"HTTP/1.1 200 ")
        for sock in stalled:
            assert _until_closed(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in stalled:
            sock.close()
