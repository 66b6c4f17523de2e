"""Benchmark: upgrading ai_chatbot 1.0.0 → 1.1.0 with 10,000 chat messages, under traffic.

A real 2-worker panel (uvicorn on loopback) on SQLite (or --database-url). Prints:
- how long the upgrade request takes (steps: back-fill of message_count over 10,000 rows)
- failed requests to the plugin's routes while it runs (target 0)
- time from the upgrade response until fresh connections only see 1.1.0 (both workers)

Run: make bench   (or .venv/bin/python bench/upgrade.py [--messages N] [--database-url URL])
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from plugdock.config import load_settings
from plugdock.installer import Installer
from plugdock.package.pack import pack

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(work: Path, messages: int, database_url: str | None) -> dict[str, str]:
    modules = work / "modules"
    modules.mkdir()
    pack(REPO / "examples" / "releases" / "ai_chatbot-1.0.0", modules)
    env = os.environ | {
        "PLUGDOCK_HOME": str(work / "instance"),
        "PLUGIN_LOCAL_DIR": str(modules),
        "PLUGDOCK_ADMIN_PASSWORD": PASSWORD,
    }
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    os.environ.update(env)
    installer = Installer(load_settings())
    installer.install("ai_chatbot@1.0.0")
    sessions = max(1, messages // 20)
    with installer.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO chat_sessions (guest_name, guest_email, token, status, created_at, "
                "updated_at) VALUES (:n, :e, :t, 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            [{"n": f"g{i}", "e": f"g{i}@example.com", "t": f"t{i}"} for i in range(sessions)],
        )
        ids = [r[0] for r in conn.execute(text("SELECT id FROM chat_sessions"))]
        conn.execute(
            text(
                "INSERT INTO chat_messages (session_id, sender, content, created_at) "
                "VALUES (:s, 'guest', :c, CURRENT_TIMESTAMP)"
            ),
            [{"s": ids[i % len(ids)], "c": f"message {i}"} for i in range(messages)],
        )
    installer.engine.dispose()
    pack(REPO / "examples" / "plugins" / "ai_chatbot", modules)
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = prepare(work, args.messages, args.database_url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        panel = subprocess.Popen(
            [sys.executable, "-m", "plugdock", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            run(url)
        finally:
            panel.terminate()
            panel.wait()


def run(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    token = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    route = f"{url}/api/v1/chat/sessions?limit=5"

    def version() -> str:  # 1.1.0 lists each session's rating
        with httpx.Client(timeout=30) as client:  # a new connection: any worker
            response = client.get(route, headers=headers)
        response.raise_for_status()
        items = response.json()
        items = items.get("items", items) if isinstance(items, dict) else items
        return "1.1.0" if items and "rating" in items[0] else "1.0.0"

    failures: list[str] = []
    requests = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal requests
        end = time.monotonic() + 120  # bounded
        while not stop.is_set() and time.monotonic() < end:
            try:
                version()
            except (httpx.HTTPError, ValueError) as exc:
                failures.append(repr(exc))
            requests += 1

    streams = [threading.Thread(target=traffic) for _ in range(2)]
    for stream in streams:
        stream.start()
    time.sleep(1.0)
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
        response = admin.post(
            "/api/v1/marketplace/upgrade", json={"plugin_id": "ai_chatbot"}, timeout=300
        )
    upgrade_seconds = time.perf_counter() - started
    answered = time.perf_counter()
    response.raise_for_status()
    # From the response until the first of 20 fresh requests in a row that all see 1.1.0
    # was *sent* (0 when the very first request after the response saw it).
    consecutive, first_new, stale = 0, None, 0
    while consecutive < 20:
        sent = time.perf_counter()
        if version() == "1.1.0":
            first_new = first_new or sent
            consecutive += 1
        else:
            consecutive, first_new, stale = 0, None, stale + 1
    propagation = (first_new or answered) - answered
    time.sleep(1.0)
    stop.set()
    for stream in streams:
        stream.join()
    steps = ", ".join(response.json()["steps"])
    print(f"upgrade 1.0.0 → 1.1.0 (steps {steps}): {upgrade_seconds * 1000:.0f} ms")
    print(f"requests to the plugin during the run: {requests}, failed: {len(failures)} (target 0)")
    for failure in failures[:5]:
        print(f"  {failure}")
    print(
        f"response → only 1.1.0 on fresh connections (2 workers): {propagation * 1000:.1f} ms "
        f"({stale} requests after the response saw 1.0.0)"
    )


if __name__ == "__main__":
    main()
