"""Telework end to end in Chromium, with the server's clock moved by a file (TELEWORK_CLOCK_FILE):

an employee books next Monday → the unit head approves it from the inbox → the employee sees it
approved and in their calendar feed → on that Monday the employee reports start and end of work.
Each telework page on the way is checked with axe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from icalendar import Calendar
from playwright.async_api import Browser, expect

from tests.e2e.conftest import CHROMIUM_ARGS  # noqa: F401  (same browser settings)
from tests.e2e.test_pages import PageWatch, axe, check_page, describe_violations, report, sign_in, t
from tests.live_server import LiveServer, live_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

MEMBER = "100019"  # 山口 翼, 行政改革課
HEAD = "100006"  # 伊藤 直子, head of 行政改革課
FRIDAY = "2027-03-05T10:00:00+09:00"
MONDAY = "2027-03-08"


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "now.txt"
    path.write_text(FRIDAY)
    return path


@pytest.fixture(scope="module")
def tw_server(tmp_path_factory: pytest.TempPathFactory, clock_file: Path) -> Iterator[LiveServer]:
    with live_server(
        tmp_path_factory.mktemp("e2e-telework"),
        extra_env={"TELEWORK_CLOCK_FILE": str(clock_file), "TELEWORK_DEMO_DATA": "0"},
    ) as srv:
        yield srv


@pytest_asyncio.fixture(loop_scope="session")
async def contexts(browser: Browser, tw_server: LiveServer) -> AsyncIterator:
    made = []

    async def _make():
        ctx = await browser.new_context(base_url=tw_server.url, locale="ja-JP")
        ctx.set_default_timeout(15_000)
        made.append(ctx)
        return ctx

    yield _make
    for ctx in made:
        await ctx.close()


async def axe_clean(page, label: str) -> list[str]:
    results = await axe.run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    return [f"{label}: axe:\n{describe_violations(blocking)}"] if blocking else []


async def test_book_approve_see_in_feed_and_report(contexts, tw_server: LiveServer, clock_file: Path) -> None:
    problems: list[str] = []
    member = await (await contexts()).new_page()
    member_watch = PageWatch(member)
    await sign_in(member, MEMBER)

    # 1. The employee books next Monday from the month calendar's "+" on that day.
    await member.goto("/telework?month=2027-03")
    problems += await axe_clean(member, "/telework")
    async with member.expect_navigation():
        await member.get_by_role("link", name=t("tw.mine.book_day").format(day="3/8")).click()
    await member.get_by_label(t("tw.new.plan")).fill("議会答弁資料の作成")
    async with member.expect_navigation():
        await member.get_by_role("button", name=t("tw.new.preview")).click()
    await expect(member.get_by_role("heading", name=t("tw.new.preview_heading"))).to_be_visible()
    await expect(member.get_by_text("伊藤 直子")).to_be_visible()
    problems += await axe_clean(member, "/telework/new (preview)")
    async with member.expect_navigation():
        await member.get_by_role("button", name=t("tw.new.submit")).click()
    await expect(member.get_by_role("status")).to_contain_text(t("tw.done.submitted"))

    # 2. The unit head approves it from the inbox.
    head = await (await contexts()).new_page()
    head_watch = PageWatch(head)
    await sign_in(head, HEAD)
    await head.goto("/telework/inbox")
    problems += await axe_clean(head, "/telework/inbox")
    async with head.expect_navigation():
        await head.get_by_role(
            "button", name=t("tw.inbox.approve_one").format(name="山口 翼", day=MONDAY)
        ).click()
    await expect(head.get_by_role("status")).to_contain_text("1")
    await expect(head.get_by_text(t("tw.inbox.empty"))).to_be_visible()

    # 3. The employee sees it approved, and makes a calendar address that carries it.
    await member.goto("/telework?month=2027-03")
    await expect(member.locator("a.cal-item.state-approved")).to_have_count(1)
    async with member.expect_navigation():
        await member.get_by_role("button", name=t("tw.feeds.create")).click()
    url = await member.get_by_label(t("tw.feeds.url")).input_value()
    assert url.endswith(".ics")
    path = url.split("/ical/", 1)[1]
    feed = await member.request.get(f"/ical/{path}", fail_on_status_code=True)  # what a calendar app fetches
    calendar = Calendar.from_ical(await feed.body())
    events = [e for e in calendar.walk("VEVENT")]
    assert [e.decoded("DTSTART").isoformat() for e in events] == [MONDAY]

    # 4. On Monday, the home page offers start, then end of work.
    await asyncio.to_thread(clock_file.write_text, f"{MONDAY}T08:40:00+09:00")
    await member.goto("/")
    problems += await axe_clean(member, "/ (telework today)")
    async with member.expect_navigation():
        await member.get_by_role("button", name=t("tw.report.start_button")).click()
    await expect(member.get_by_role("status")).to_contain_text(t("tw.home.reported_start"))
    await asyncio.to_thread(clock_file.write_text, f"{MONDAY}T17:20:00+09:00")
    await member.goto("/")
    await member.get_by_label(t("tw.report.summary")).fill("答弁資料を作成し、課内で確認した。")
    async with member.expect_navigation():
        await member.get_by_role("button", name=t("tw.report.end_button")).click()
    await expect(member.get_by_text(t("tw.report.done"))).to_be_visible()

    for path in ("/telework/coverage", "/telework/notifications"):
        problems += await check_page(head, head_watch, path)
    problems += member_watch.take() + head_watch.take()
    assert "Traceback" not in tw_server.log_tail(20000), tw_server.log_tail()
    assert not problems, report("telework flow", problems)
