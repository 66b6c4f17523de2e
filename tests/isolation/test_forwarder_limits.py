"""A hostile plugin's answers against the forwarder's limits (issue 22, item 5).

Each failed before: the panel counted answer headers, not their bytes, so one header of
70,000 bytes passed the 64 KiB limit; and it timed each read of an answer body, not the
whole answer, so a body dripping a byte a second ran on past the plugin timeout.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_isolation import assert_panel_serves, install, isolated_panel, route_plugin, sqlite_url

from panel import Panel

DRIP_BYTES = 30  # at one a second, far past the 2 s plugin timeout below

LIMIT_ROUTES = f"""
import asyncio

from fastapi.responses import Response, StreamingResponse


@router.get('/long-header')
def long_header() -> Response:
    return Response('x', headers={{'x-long': 'v' * 70_000}})


@router.get('/drip')
async def drip() -> StreamingResponse:
    async def one_a_second():
        for _ in range({DRIP_BYTES}):
            yield b'.'
            await asyncio.sleep(1)

    return StreamingResponse(one_a_second(), media_type='text/plain')
"""


@pytest.fixture
def limits(tmp_path: Path, panels: list[Panel]) -> Panel:
    plugin = route_plugin(tmp_path / "src", "limits", LIMIT_ROUTES)
    panel = isolated_panel(
        tmp_path, sqlite_url(tmp_path), [plugin], extra_env={"PLUGDOCK_PLUGIN_TIMEOUT": "2"}
    )
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "limits")
    return panel


def test_one_long_answer_header_is_refused(limits: Panel) -> None:
    admin = limits.client(limits.login())
    answer = admin.get("/api/v1/limits/long-header")
    assert answer.status_code == 503, answer.headers.get("x-long", "")[:20]
    assert "oversized headers" in answer.json()["detail"]
    assert_panel_serves(admin)
    assert admin.get("/api/v1/limits/ping").json() == {"pong": True}


def test_a_dripping_answer_body_is_cut_at_the_plugin_timeout(limits: Panel) -> None:
    admin = limits.client(limits.login())
    received = bytearray()
    # The connection closes mid-body: the client sees an incomplete answer.
    with pytest.raises(httpx.RemoteProtocolError), admin.stream("GET", "/api/v1/limits/drip") as a:
        assert a.status_code == 200
        for chunk in a.iter_bytes():
            received += chunk
    assert len(received) < DRIP_BYTES, "the whole dripping body came through"
    assert_panel_serves(limits.client(limits.login()))
    assert admin.get("/api/v1/limits/ping").json() == {"pong": True}
