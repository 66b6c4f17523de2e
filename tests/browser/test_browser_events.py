"""The event deliveries page, in Debian's Chromium against a real panel: a plugin whose
handler of user.created fails shows its error there, and a dead delivery is retried with
the page's button (the handler then succeeds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text, update

from browser_support import admin_api, nav, sign_in
from panel import ADMIN_PASSWORD, Panel, start_panel
from plugdock.core.db import event_deliveries
from support import make_plugin, pack_into

OPERATION_MS = 60_000
# Fails while its flag table says so: the test turns the failure off before retrying.
HANDLER = (
    "from sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def on_user(event: sdk.Event) -> None:\n"
    "    with sdk.session() as db:\n"
    "        if db.execute(text('SELECT COUNT(*) FROM greeter_broken')).scalar():\n"
    "            raise RuntimeError('the mail server is down')\n"
    "        db.execute(text('INSERT INTO greeter_sent (username) VALUES (:u)'),"
    " {'u': event.payload['username']})\n"
)


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("events")
    greeter = make_plugin(
        tmp / "src",
        "greeter",
        up_sql="CREATE TABLE greeter_sent (username TEXT);\n"
        "CREATE TABLE greeter_broken (flag INTEGER);\nINSERT INTO greeter_broken VALUES (1);\n",
        down_sql="DROP TABLE greeter_sent;\nDROP TABLE greeter_broken;\n",
        extra_files={"backend/handlers.py": HANDLER},
        metadata={"events": {"user.created": "handlers:on_user"}},
    )
    pack_into(greeter, tmp / "modules")
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    yield running
    running.stop()


def test_a_failing_delivery_is_shown_and_a_dead_one_retried(page: Page, panel: Panel) -> None:
    url = panel.env["DATABASE_URL"]
    with admin_api(panel) as admin:
        done = admin.post("/api/v1/marketplace/install", json={"plugin_id": "greeter"})
        assert done.status_code == 200, done.text
        made = admin.post(
            "/api/v1/users",
            json={"username": "dora", "password": "dora-password-1", "role": "user"},
        )
        assert made.status_code in (200, 201), made.text

    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Event deliveries", exact=True).click()
    row = page.get_by_role("row").filter(has_text="user.created")
    expect(row).to_contain_text("the mail server is down", timeout=OPERATION_MS)
    expect(row).to_contain_text("greeter")
    expect(row.get_by_role("button", name="Retry")).to_have_count(0)  # not dead yet

    engine = create_engine(url)
    with engine.begin() as conn:  # its retries used up, and the mail server back
        conn.execute(update(event_deliveries).values(status="dead", claimed_until=None))
        conn.execute(text("DELETE FROM greeter_broken"))
    page.get_by_role("button", name="Dead", exact=True).click()
    row = page.get_by_role("row").filter(has_text="user.created")
    expect(row).to_contain_text("dead")
    row.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status").or_(page.get_by_role("alert")).first).to_contain_text(
        "will be delivered again"
    )

    def sent() -> list[str]:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT username FROM greeter_sent"))]

    page.wait_for_timeout(100)
    for _ in range(200):
        if sent():
            break
        page.wait_for_timeout(100)
    assert sent() == ["dora"]
    page.get_by_role("button", name="Done", exact=True).click()
    expect(page.get_by_role("row").filter(has_text="user.created")).to_contain_text("done")
