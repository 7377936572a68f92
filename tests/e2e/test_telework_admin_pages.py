"""HR's telework rules page and the delegation page in a real browser: forms, mistakes, axe, phone width.

The menu walk (test_pages.py) sees these pages empty; here they are filled through their forms and
checked again with content, with a mistake on screen, and at phone width. Everything is placed far in
the future or on a unit no other browser test uses (契約監理課), and undone at the end, so the shared
server stays as the other tests expect.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from app.i18n import translate
from tests.e2e.test_pages import (
    BLOCKING_IMPACTS,
    PHONE,
    ContextFactory,
    describe_violations,
    horizontal_overflow,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
axe = Axe()


def t(key: str, **params: object) -> str:
    return translate("ja", key, **params)


async def axe_problems(page: Page, what: str) -> list[str]:
    results = await axe.run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    return [f"{what}: axe\n{describe_violations(blocking)}"] if blocking else []


async def submit(page: Page, button: str) -> None:
    async with page.expect_navigation():
        await page.get_by_role("button", name=button, exact=True).click()


async def test_hr_sets_rules_closures_and_emergency_mode(new_context: ContextFactory) -> None:
    context = await new_context()
    page = await context.new_page()
    await sign_in(page, "100008")  # hr_admin
    await page.goto("/admin/telework")
    today = date.fromisoformat(
        await page.locator("#pf-from").get_attribute("min") or date.today().isoformat()
    )
    problems: list[str] = []

    # Inputs are found by id: several labels share words (開始日 ⊂ 適用開始日, 名称 ⊂ 英語の名称); axe checks
    # that every input has its label.
    # A new version for 契約監理課 from next year, first with a mistake (150 %), then corrected.
    keiyaku = await page.locator("#pf-unit option", has_text="契約監理課").get_attribute("value")
    assert keiyaku
    starts = today + timedelta(days=365)
    await page.locator("#pf-unit").select_option(keiyaku)
    await page.locator("#pf-from").fill(starts.isoformat())
    await page.locator("#pf-weekly").fill("2")
    await page.locator("#pf-ratio").fill("150")
    await page.get_by_label(t("employment.regular")).check()
    await submit(page, t("twa.add_version"))
    alert = page.get_by_role("alert")
    assert t("twa.err.range", low="0", high="100") in await alert.inner_text()
    ratio = page.locator("#pf-ratio")
    assert await ratio.input_value() == "150" and await ratio.get_attribute("aria-invalid") == "true"
    assert await page.get_by_label(t("employment.regular")).is_checked()
    problems += await axe_problems(page, "policy form with a mistake")

    await ratio.fill("30")
    await submit(page, t("twa.add_version"))
    assert urlsplit(page.url).query.startswith("done=policy_added")
    assert t("twa.done.policy_added") in await page.get_by_role("status").first.inner_text()
    history = page.locator("details.tw-history", has_text="契約監理課")
    assert t("twa.status.planned") in await history.inner_text()

    # A custom closure two years ahead, shown in its year, then removed.
    closed = today + timedelta(days=730)
    await page.locator("#cf-day").fill(closed.isoformat())
    await page.locator("#cf-name").fill("ブラウザ試験の閉庁日")
    await submit(page, t("twa.add_closure"))
    assert f"year={closed.year}" in page.url
    row = page.get_by_role("row", name=closed.isoformat())
    assert "ブラウザ試験の閉庁日" in await row.inner_text()

    # Emergency mode for 契約監理課, planned far ahead, then called off.
    await page.locator("#ef-from").fill((today + timedelta(days=200)).isoformat())
    await page.locator("#ef-to").fill((today + timedelta(days=201)).isoformat())
    await page.locator("#ef-reason").fill("ブラウザ試験の緊急モード")
    await page.locator("#ef-unit").select_option(keiyaku)
    await submit(page, t("twa.start_emergency"))
    assert t("twa.emergency_status.planned") in await page.locator("#emergency").inner_text()
    problems += await axe_problems(page, "admin page with content")

    phone = await new_context(viewport=PHONE, storage_state=await context.storage_state(), has_touch=True)
    phone_page = await phone.new_page()
    await phone_page.goto(page.url)
    overflow = await horizontal_overflow(phone_page)
    if overflow > 0:
        problems.append(f"admin page scrolls sideways by {overflow}px at {PHONE['width']}px")

    async with page.expect_navigation():
        await page.locator("#emergency").get_by_role("button", name=t("twa.call_off_emergency")).click()
    assert t("twa.done.emergency_ended") in await page.get_by_role("status").first.inner_text()
    await page.goto(f"/admin/telework?year={closed.year}#closures")
    async with page.expect_navigation():
        await (
            page.get_by_role("row", name=closed.isoformat())
            .get_by_role("button", name=t("twa.remove_closure"))
            .click()
        )
    assert "ブラウザ試験の閉庁日" not in await page.locator("#closures").inner_text()
    assert not problems, "\n".join(problems)


async def test_unit_head_names_and_revokes_a_delegate(new_context: ContextFactory) -> None:
    context = await new_context()
    page = await context.new_page()
    await sign_in(page, "100006")  # 伊藤 直子, head of 行政改革課
    await page.goto("/telework/delegations")
    problems = await axe_problems(page, "delegation page")

    await page.get_by_role("searchbox", name=t("twd.search_label")).fill("やまぐち")
    async with page.expect_navigation():
        await page.get_by_role("button", name=t("common.search"), exact=True).click()
    delegate = page.locator("#df-to")
    value = await delegate.locator("option", has_text="山口 翼").get_attribute("value")
    assert value
    await delegate.select_option(value)
    first = date.fromisoformat(await page.locator("#df-from").input_value())
    # A mistake first: the end before the start.
    await page.locator("#df-until").fill((first - timedelta(days=1)).isoformat())
    await submit(page, t("twd.submit"))
    assert t("telework.range_backwards") in await page.get_by_role("alert").inner_text()
    problems += await axe_problems(page, "delegation form with a mistake")
    await page.locator("#df-until").fill((first + timedelta(days=3)).isoformat())
    await submit(page, t("twd.submit"))

    given = page.locator("#given")
    acting = t("twd.acting_for", delegate="山口 翼", head="伊藤 直子")
    assert acting in await given.inner_text()
    problems += await axe_problems(page, "delegation page with a delegate")
    async with page.expect_navigation():
        await given.get_by_role("button", name=t("twd.revoke")).first.click()
    assert t("twd.status.revoked") in await page.locator("#given").inner_text()
    assert not problems, "\n".join(problems)
