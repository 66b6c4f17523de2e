"""The billing example host's own UI in Chromium: its sign-in, customers, invoices, payments,
and the Plugins page that lists what plugdock installed (examples/hosts/billing/web).

The UI is the Vite build ``make billing-web`` makes (``make test`` does it first).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from billing_host import ADMIN, BILLING, CLERK, start_billing
from panel import Panel
from support import CHATBOT, pack_into

DIST = BILLING / "web" / "dist" / "index.html"


@pytest.fixture(scope="module")
def billing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    assert DIST.is_file(), "the billing UI is not built: make billing-web"
    tmp = tmp_path_factory.mktemp("browser-billing")
    pack_into(CHATBOT, tmp / "modules")
    running = start_billing(tmp, f"sqlite:///{tmp / 'billing.db'}", workers=2)
    yield running
    running.stop()


def sign_in(page: Page, billing: Panel, who: tuple[str, str]) -> None:
    page.goto(f"{billing.url}/customers")
    page.get_by_label("Email").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("me")).to_have_text(who[0])


def test_an_admin_signs_in_reads_customers_and_marks_an_invoice_paid(
    page: Page, billing: Panel
) -> None:
    page.goto(f"{billing.url}/customers")
    page.get_by_label("Email").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("wrong email or password")).to_be_visible()

    sign_in(page, billing, ADMIN)
    customers = page.get_by_test_id("customers")
    expect(customers).to_contain_text("Acme Tools")
    expect(customers.locator("tbody tr")).to_have_count(3)

    page.get_by_role("link", name="Invoices").click()
    invoices = page.get_by_test_id("invoices")
    expect(invoices.locator("tbody tr")).to_have_count(3)
    open_row = invoices.locator("tbody tr", has_text="Blue Harbor Café")
    expect(open_row).to_contain_text("open")
    open_row.get_by_role("link").click()
    expect(page.get_by_test_id("total")).to_have_text("€180.00")
    page.get_by_role("button", name="Mark paid").click()
    expect(page.get_by_test_id("status")).to_have_text("paid")

    page.get_by_role("link", name="Payments").click()
    expect(page.get_by_test_id("payments").locator("tbody tr")).to_have_count(2)
    page.reload()  # a deep link: the billing app serves its UI for it
    expect(page.get_by_test_id("payments").locator("tbody tr")).to_have_count(2)


def test_plugins_installed_with_the_billing_session_are_listed_on_its_plugins_page(
    page: Page, billing: Panel
) -> None:
    sign_in(page, billing, ADMIN)
    page.get_by_role("link", name="Plugins").click()
    expect(page.get_by_test_id("no-plugins")).to_be_visible()

    # The page's own session drives plugdock's marketplace: with the header, not without.
    install = """async (csrf) => (await fetch('/api/v1/marketplace/install', {method: 'POST',
        headers: {'Content-Type': 'application/json', ...(csrf ? {'X-Plugdock-CSRF': '1'} : {})},
        body: JSON.stringify({plugin_id: 'ai_chatbot'})})).status"""
    assert page.evaluate(install, False) == 403
    assert page.evaluate(install, True) == 200
    page.reload()
    expect(page.get_by_test_id("plugins")).to_contain_text("AI Chatbot")


def test_a_clerk_sees_invoices_but_no_admin_actions(page: Page, billing: Panel) -> None:
    sign_in(page, billing, CLERK)
    expect(page.get_by_test_id("customers")).to_contain_text("Northwind Traders")
    expect(page.get_by_role("button", name="Add customer")).to_have_count(0)
    page.get_by_role("link", name="Invoices").click()
    page.get_by_test_id("invoices").get_by_role("link", name="Draft #3").click()
    expect(page.get_by_test_id("status")).to_have_text("draft")
    expect(page.get_by_role("button", name="Issue invoice")).to_have_count(0)
