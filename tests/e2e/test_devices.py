"""A bundle loan end to end in the browser: IT lends a laptop, a router and a line to an employee with the
loan wizard, the employee accepts the whole bundle once on "my equipment", IT records the return with a
condition note, and the laptop's page shows every step. Device pages are checked with axe on the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import LOGIN_BY_ROLE
from tests.e2e.test_pages import (
    PHONE,
    ContextFactory,
    PageWatch,
    check_page,
    horizontal_overflow,
    report,
    sign_in,
    t,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def api(context: BrowserContext, page: Page, path: str, body: dict) -> dict:
    """Arrange through the JSON API with the signed-in session (and its CSRF cookie)."""
    token = next(c["value"] for c in await context.cookies() if c["name"] == "csrftoken")
    response = await page.request.post(path, data=body, headers={"x-csrftoken": token})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_bundle_checkout_accept_return(new_context: ContextFactory, results_dir: Path) -> None:
    it_ctx = await new_context()
    it = await it_ctx.new_page()
    watch = PageWatch(it)
    await sign_in(it, LOGIN_BY_ROLE["it_admin"])
    laptop = await api(
        it_ctx,
        it,
        "/api/devices/items",
        {"asset_tag": "E2E-PC-1", "kind": "laptop", "maker": "Dynabook", "model": "G83"},
    )
    await api(
        it_ctx,
        it,
        "/api/devices/items",
        {"asset_tag": "E2E-WR-1", "kind": "router", "maker": "NEC", "model": "Aterm"},
    )
    await api(it_ctx, it, "/api/devices/lines", {"number": "090-5555-0001"})
    problems: list[str] = []

    # IT: the loan wizard. Find the person, tick the three items, set a return date, lend.
    await it.goto("/devices/loans/new")
    await it.get_by_label(t("devices.wizard.find_person"), exact=True).fill("山本")
    await it.get_by_role("button", name=t("common.search"), exact=True).click()
    await it.get_by_role("link", name="山本 さくら (100012)").click()
    await it.get_by_label("E2E-PC-1", exact=False).check()
    await it.get_by_label("E2E-WR-1", exact=False).check()
    await it.get_by_label("+819055550001", exact=False).check()
    await it.get_by_label(t("devices.expected_return"), exact=True).fill("2027-03-31")
    problems += [p for p in await check_page(it, watch, it.url.replace(it.url.split("/devices")[0], ""))]
    await it.get_by_label("E2E-PC-1", exact=False).check()
    await it.get_by_label("E2E-WR-1", exact=False).check()
    await it.get_by_label("+819055550001", exact=False).check()
    await it.get_by_label(t("devices.expected_return"), exact=True).fill("2027-03-31")
    async with it.expect_navigation():
        await it.get_by_role("button", name=t("devices.wizard.submit"), exact=True).click()
    loan_path = "/devices" + it.url.split("/devices", 1)[1]
    await expect(it.get_by_role("heading", level=1)).to_contain_text(
        t("devices.loan_status.awaiting_acceptance")
    )
    problems += await check_page(it, watch, loan_path)

    # The employee: one acceptance for the whole bundle, on a phone.
    emp_ctx = await new_context(viewport=PHONE, has_touch=True)
    emp = await emp_ctx.new_page()
    emp_watch = PageWatch(emp)
    await sign_in(emp, LOGIN_BY_ROLE["employee"])
    await expect(emp.get_by_role("link", name=t("devices.home_accept").format(n=1))).to_be_visible()
    await emp.get_by_role("link", name=t("devices.home_accept").format(n=1)).click()
    card = emp.locator("li.card", has_text="E2E-PC-1")
    for label in ("E2E-PC-1", "E2E-WR-1", "+819055550001"):
        await expect(card).to_contain_text(label)
    if await horizontal_overflow(emp) > 0:
        problems.append(f"/devices/mine scrolls sideways at {PHONE['width']}px")
    await card.get_by_label(t("devices.agree"), exact=True).check()
    async with emp.expect_navigation():
        await card.get_by_role("button", name=t("devices.accept_button"), exact=True).click()
    await expect(emp.get_by_role("status")).to_contain_text(t("devices.done.accepted"))
    problems += await check_page(emp, emp_watch, "/devices/mine")
    await emp.screenshot(path=str(results_dir / "devices-mine-phone.png"), full_page=True)

    # IT: the return, with a condition note for the laptop.
    await it.goto(loan_path)
    await expect(it.get_by_role("heading", level=1)).to_contain_text(t("devices.loan_status.active"))
    laptop_set = it.get_by_role("group", name="E2E-PC-1", exact=False)
    await laptop_set.get_by_label(t("field.condition"), exact=True).select_option("worn")
    await laptop_set.get_by_label(t("field.condition_note"), exact=True).fill("天板に小さな傷")
    async with it.expect_navigation():
        await it.get_by_role("button", name=t("devices.return_button"), exact=True).click()
    await expect(it.get_by_role("heading", level=1)).to_contain_text(t("devices.loan_status.returned"))

    # The laptop's page: in stock again, and its history shows every step.
    await it.goto(f"/devices/items/{laptop['id']}")
    history = it.get_by_role("region", name=t("devices.history")).first
    for action in (
        "devices.device.create",
        "devices.loan.checkout",
        "devices.loan.accept",
        "devices.loan.return",
    ):
        await expect(history).to_contain_text(t(f"devices.action.{action}"))
    await expect(history).to_contain_text("天板に小さな傷")
    await expect(it.locator("dl.details")).to_contain_text(t("devices.status.in_stock"))
    problems += await check_page(it, watch, f"/devices/items/{laptop['id']}")
    for path in (
        "/devices/inventory",
        "/devices/lines",
        "/devices/loans",
        "/devices/reports",
        "/devices/stocktakes",
        "/devices/import",
        "/devices/requests",
    ):
        problems += await check_page(it, watch, path)
    await it.screenshot(path=str(results_dir / "devices-item.png"), full_page=True)
    assert not problems, report("devices bundle loan", problems)
