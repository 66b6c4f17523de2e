"""The sms_notifications example plugin against a fake SMS gateway (a real HTTP server on
loopback): its settings set over the API, the key sent as a bearer token, the log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from panel import INPROCESS, Panel, start_panel
from support import REPO, pack_into

pytestmark = pytest.mark.server

SMS = REPO / "examples" / "plugins" / "sms_notifications"
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
KEY = "gw-key-0123456789abcdef"


class FakeGateway:
    """Takes POSTs with the right bearer key (201 and an id), refuses others (401)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.received: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                authorized = self.headers.get("Authorization") == f"Bearer {gateway.key}"
                gateway.received.append({"body": body, "authorized": authorized})
                answer = json.dumps({"id": f"msg-{len(gateway.received)}"}).encode()
                self.send_response(201 if authorized else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/messages"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway(KEY)
    yield fake
    fake.close()


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    pack_into(SMS, tmp_path / "modules")
    # In-process: the fake gateway's loopback port is not the host the example's grant
    # names (network:sms-gateway.example:443), which a plugin process would be held to.
    running = start_panel(tmp_path, database_url, extra_env=INPROCESS)
    yield running
    running.stop()


@SQLITE
def test_sms_is_sent_through_the_configured_gateway_and_logged(
    panel: Panel, gateway: FakeGateway
) -> None:
    admin = panel.client(panel.login())
    installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "sms_notifications"})
    assert installed.status_code == 200, installed.text
    message = {"to": "+4915112345678", "text": "Your invoice is ready"}

    waiting = admin.post("/api/v1/sms/messages", json=message)
    assert waiting.status_code == 503 and "needs configuration" in waiting.json()["detail"]
    assert gateway.received == []

    short = admin.put(
        "/api/v1/plugins/sms_notifications/settings", json={"values": {"api_key": "abc1234"}}
    )
    assert short.status_code == 422 and "abc1234" not in short.text
    saved = admin.put(
        "/api/v1/plugins/sms_notifications/settings",
        json={"values": {"gateway_url": gateway.url, "api_key": KEY, "sender": "ACME"}},
    )
    assert saved.status_code == 200, saved.text
    assert KEY not in saved.text

    sent = admin.post("/api/v1/sms/messages", json=message)
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "sent" and sent.json()["gateway_id"] == "msg-1"
    assert gateway.received == [
        {
            "body": {"to": "+4915112345678", "from": "ACME", "text": "Your invoice is ready"},
            "authorized": True,
        }
    ]

    # A replaced key is used from the next message on; the gateway refusing it is logged.
    admin.put(
        "/api/v1/plugins/sms_notifications/settings",
        json={"values": {"api_key": "a-revoked-key-000"}},
    ).raise_for_status()
    refused = admin.post("/api/v1/sms/messages", json=message)
    assert refused.status_code == 502, refused.text
    assert gateway.received[-1]["authorized"] is False

    log = admin.get("/api/v1/sms/messages")
    assert log.status_code == 200
    assert [(m["status"], m["gateway_status"]) for m in log.json()["items"]] == [
        ("failed", 401),
        ("sent", 201),
    ]
    assert KEY not in log.text
    user = panel.cli("user", "create", "bob", "--password-stdin", stdin="bob-password\n")
    assert user.returncode == 0, user.stderr
    bob = panel.client(panel.login("bob", "bob-password"))
    assert bob.post("/api/v1/sms/messages", json=message).status_code == 403
