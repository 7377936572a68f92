"""Meetings end to end in Chromium: the organizer finds a colleague by reading (kana) while typing, adds
her, schedules a weekly meeting; the colleague answers from her list; the organizer cancels one
occurrence. Each page on the way is checked with axe.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from playwright.async_api import expect

from scheduling.config import TOKYO
from tests.e2e.test_pages import PageWatch, axe, describe_violations, report, sign_in, t
from tests.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ORGANIZER = "100019"  # 山口 翼
MEMBER = "100012"  # 山本 さくら


async def axe_clean(page, label: str) -> list[str]:
    results = await axe.run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    return [f"{label}: axe:\n{describe_violations(blocking)}"] if blocking else []


async def test_schedule_answer_and_cancel_one(new_context, server: LiveServer) -> None:
    problems: list[str] = []
    day = (datetime.now(TOKYO) + timedelta(days=8)).date().isoformat()
    organizer = await (await new_context()).new_page()
    watch = PageWatch(organizer)
    await sign_in(organizer, ORGANIZER)
    await organizer.goto("/meetings")
    async with organizer.expect_navigation():
        await organizer.get_by_role("link", name=t("mt.list.new")).first.click()
    await organizer.locator("#title").fill("ブラウザ定例")
    await organizer.locator("#day").fill(day)
    await organizer.locator("#start_time").fill("15:00")
    await organizer.locator("#end_time").fill("15:30")

    # Typing shows matches without a reload; "add" is a real form button.
    await organizer.get_by_label(t("mt.form.search")).press_sequentially("やまもと", delay=30)
    add = organizer.get_by_role("button", name=re.compile(f"^{t('mt.form.add')}.*山本 さくら$"))
    await expect(add).to_be_visible()
    async with organizer.expect_navigation():
        await add.click()
    remove = organizer.get_by_role("button", name=re.compile(f"^{t('mt.form.remove')}.*山本 さくら$"))
    await expect(remove).to_be_visible()
    await expect(organizer.locator("#title")).to_have_value("ブラウザ定例")
    problems += await axe_clean(organizer, "/meetings/new (one person chosen)")

    await organizer.locator("#freq-weekly").check()
    await organizer.locator("#count").fill("3")
    async with organizer.expect_navigation():
        await organizer.get_by_role("button", name=t("mt.form.create")).click()
    await expect(organizer.get_by_role("status").first).to_contain_text(t("mt.done.created"))
    problems += await axe_clean(organizer, "/meetings/{id}")
    meeting_url = organizer.url.split("?")[0]

    member = await (await new_context()).new_page()
    member_watch = PageWatch(member)
    await sign_in(member, MEMBER)
    await member.goto("/meetings")
    problems += await axe_clean(member, "/meetings")
    async with member.expect_navigation():
        await member.get_by_role("link", name="ブラウザ定例").first.click()
    async with member.expect_navigation():
        await member.get_by_role("button", name=t("mt.answer.button_ACCEPTED")).click()
    await expect(member.get_by_role("status").first).to_contain_text(t("mt.done.answered"))

    await organizer.goto(meeting_url)
    await expect(organizer.get_by_text(t("mt.answer.ACCEPTED"), exact=True)).to_be_visible()
    async with organizer.expect_navigation():
        await organizer.get_by_role("button", name=t("mt.occ.cancel")).last.click()
    await expect(organizer.get_by_role("status").first).to_contain_text(t("mt.done.occurrence_cancelled"))

    problems += watch.take() + member_watch.take()
    assert "Traceback" not in server.log_tail(20000), server.log_tail()
    assert not problems, report("meetings flow", problems)
