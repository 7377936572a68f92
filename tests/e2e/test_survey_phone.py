"""A pulse survey end to end in the browser: HR sets it up on the admin page, a member of staff answers it
on a phone by tapping, and the results page keeps the single answer hidden (k = 5).

Every survey page is checked with axe (no serious or critical findings) and for sideways scrolling at
390 px. Uses the live server and Chromium of tests/e2e/conftest.py; runs after test_pages.py (file order).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Locator, Page, expect

from surveys.services import BUILTIN_TEMPLATE, LIKERT_LABELS
from tests.conftest import LOGIN_BY_ROLE
from tests.e2e.test_pages import (
    BLOCKING_IMPACTS,
    PHONE,
    ContextFactory,
    PageWatch,
    axe,
    check_page,
    describe_violations,
    horizontal_overflow,
    report,
    sign_in,
    t,
)
from tests.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TOKYO = ZoneInfo("Asia/Tokyo")
ROUND_TITLE = "ブラウザ試験 第1回"
TOUCH_TARGET = 44  # px, WCAG 2.5.5 / Apple HIG


def local_input(value: datetime) -> str:
    """What a person types into a datetime-local field: Japan time, minutes only."""
    return value.astimezone(TOKYO).strftime("%Y-%m-%dT%H:%M")


async def no_sideways_scroll(page: Page, path: str) -> list[str]:
    overflow = await horizontal_overflow(page)
    return [f"{path}: scrolls sideways by {overflow}px at {PHONE['width']}px wide"] if overflow > 0 else []


async def axe_problems(page: Page, label: str) -> list[str]:
    """axe on the page as it is now (check_page reloads; this keeps opened <details>)."""
    results = await axe.run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    return [f"{label}: axe:\n" + describe_violations(blocking)] if blocking else []


async def small_targets(group: Locator) -> list[str]:
    """Labels of the choices in a question group whose tap area is under 44 px high or wide."""
    problems = []
    for label in await group.locator("label").all():
        box = await label.bounding_box()
        if box is None or box["height"] < TOUCH_TARGET or box["width"] < TOUCH_TARGET:
            problems.append(f"tap target {await label.inner_text()!r} is {box}")
    return problems


async def answer_question(group: Locator, question: dict) -> None:
    """Answer one question of the built-in survey the way a person does on a phone: tap the words."""
    kind = question["kind"]
    if kind == "likert":
        await group.get_by_text(LIKERT_LABELS[3], exact=True).tap()
        await expect(group.get_by_role("radio", name=LIKERT_LABELS[3], exact=True)).to_be_checked()
        await expect(group.get_by_role("radio", checked=True)).to_have_count(1)
    elif kind == "enps":
        await group.get_by_text("9", exact=True).tap()
        await expect(group.get_by_role("radio", name="9", exact=True)).to_be_checked()
    elif kind == "multi":
        for option in question["options"][1:3]:
            await group.get_by_text(option, exact=True).tap()
            await expect(group.get_by_role("checkbox", name=option, exact=True)).to_be_checked()
    elif kind == "text":
        box = group.get_by_role("textbox")
        assert await box.get_attribute("maxlength") == str(question.get("max_length", 1000))
        await box.tap()
        await box.fill("ポケットWi-Fiの電波が弱い日があります。")
    else:  # pragma: no cover - the built-in survey has no other kinds
        raise AssertionError(f"unexpected kind {kind}")


async def test_hr_schedules_staff_answers_on_a_phone_results_stay_hidden(
    new_context: ContextFactory, server: LiveServer, results_dir: Path
) -> None:
    problems: list[str] = []

    # --- HR: the built-in survey and a round open now for everyone, through the admin page.
    hr_ctx = await new_context()
    hr = await hr_ctx.new_page()
    hr_watch = PageWatch(hr)
    await sign_in(hr, LOGIN_BY_ROLE["hr_admin"])
    problems += await check_page(hr, hr_watch, "/admin/surveys")
    await expect(hr.get_by_role("heading", level=1)).to_have_text(t("nav.survey_admin"))
    async with hr.expect_navigation():
        await hr.get_by_role("button", name=t("survey.template_button"), exact=True).click()
    survey = hr.locator("article.survey-admin").filter(
        has=hr.get_by_role("heading", name=BUILTIN_TEMPLATE["title"], exact=True)
    )
    await expect(survey).to_have_count(1)
    await expect(survey).to_contain_text(
        t("survey.questions_count").format(n=len(BUILTIN_TEMPLATE["questions"]))
    )
    await survey.locator("summary").click()
    now = datetime.now(TOKYO)
    await survey.get_by_label(t("field.title")).fill(ROUND_TITLE)
    await survey.get_by_label(t("field.opens_at")).fill(local_input(now - timedelta(minutes=10)))
    await survey.get_by_label(t("field.closes_at")).fill(local_input(now + timedelta(days=7)))
    await survey.get_by_label(t("field.recurrence")).select_option("none")
    await expect(survey.get_by_label(t("survey.unit_codes"))).to_have_value("")  # empty: everyone
    async with hr.expect_navigation():
        await survey.get_by_role("button", name=t("survey.schedule_button"), exact=True).click()
    assert urlsplit(hr.url).path == "/admin/surveys", await hr.locator("#form-errors").all_inner_texts()
    row = hr.get_by_role("row").filter(has_text=ROUND_TITLE)
    await expect(row).to_contain_text(t("survey.status.open"))
    results_href = await row.locator('a[href^="/admin/surveys/rounds/"]').get_attribute("href")
    assert results_href and re.fullmatch(r"/admin/surveys/rounds/\d+/results", results_href), results_href
    await hr.locator("details.schedule").evaluate_all("ds => ds.forEach(d => d.open = true)")
    problems += hr_watch.take() + await axe_problems(hr, "/admin/surveys (forms open)")
    await hr.screenshot(path=str(results_dir / "survey-admin.png"), full_page=True)

    # --- Staff, on a phone: my surveys, answer by tapping, thank-you, answered.
    phone_ctx = await new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    phone = await phone_ctx.new_page()
    watch = PageWatch(phone)
    await sign_in(phone, LOGIN_BY_ROLE["employee"])
    problems += await check_page(phone, watch, "/surveys")
    problems += await no_sideways_scroll(phone, "/surveys")
    await expect(phone.get_by_text(t("survey.anonymity_unlinkable"))).to_be_visible()
    card = phone.locator(".card").filter(has=phone.get_by_role("heading", name=ROUND_TITLE, exact=True))
    await expect(card).to_contain_text(t("survey.status_not_answered"))
    async with phone.expect_navigation():
        await card.get_by_role("link", name=t("survey.answer_now"), exact=True).tap()
    answer_path = urlsplit(phone.url).path
    assert re.fullmatch(r"/surveys/rounds/\d+", answer_path), phone.url
    problems += await check_page(phone, watch, answer_path)
    problems += await no_sideways_scroll(phone, answer_path)
    await expect(phone.get_by_role("heading", level=1)).to_have_text(ROUND_TITLE)

    questions = BUILTIN_TEMPLATE["questions"]
    await expect(phone.locator("fieldset.question")).to_have_count(len(questions))

    # Sending too early (the server's check, past the browser's): the form comes back with the reason
    # in an alert and the answer already given still ticked.
    first = phone.get_by_role("group", name=questions[0]["text"])
    await answer_question(first, questions[0])
    await phone.locator("form.survey-form").evaluate("f => { f.noValidate = true; }")
    async with phone.expect_navigation():
        await phone.get_by_role("button", name=t("survey.submit"), exact=True).tap()
    alert = phone.get_by_role("alert")
    await expect(alert).to_contain_text(t("survey.answer_required").format(text=questions[1]["text"]))
    await expect(first.get_by_role("radio", name=LIKERT_LABELS[3], exact=True)).to_be_checked()
    unexpected = [e for e in watch.take() if "status of 422" not in e]  # the 422 itself is logged
    problems += unexpected + await axe_problems(phone, f"{answer_path} (error)")
    problems += await no_sideways_scroll(phone, f"{answer_path} (error)")

    for q in questions:
        group = phone.get_by_role("group", name=q["text"])
        await expect(group).to_have_count(1)
        required = q.get("required", True)
        await expect(group.locator("legend .req")).to_have_count(1 if required else 0)
        if q["kind"] != "text":
            problems += [f"{answer_path} {q['text']}: {p}" for p in await small_targets(group)]
        await answer_question(group, q)
    problems += await no_sideways_scroll(phone, f"{answer_path} (answered)")
    await phone.screenshot(path=str(results_dir / "survey-answer-phone.png"), full_page=True)
    async with phone.expect_navigation():
        await phone.get_by_role("button", name=t("survey.submit"), exact=True).tap()
    assert urlsplit(phone.url).path == "/surveys" and "thanks=true" in phone.url, phone.url
    await expect(phone.get_by_role("status")).to_have_text(t("survey.thanks"))
    card = phone.locator(".card").filter(has=phone.get_by_role("heading", name=ROUND_TITLE, exact=True))
    await expect(card).to_contain_text(t("survey.status_answered"))
    await expect(card.get_by_role("link", name=t("survey.answer_now"))).to_have_count(0)
    problems += await check_page(phone, watch, "/surveys?thanks=true")
    problems += await no_sideways_scroll(phone, "/surveys?thanks=true")

    # Coming back to the form: it says so instead of offering it again.
    problems += await check_page(phone, watch, answer_path)
    await expect(phone.get_by_text(t("survey.already_answered"))).to_be_visible()
    await expect(phone.locator("form.survey-form")).to_have_count(0)

    # --- HR: results keep the single answer hidden; the CSV export is offered.
    problems += await check_page(hr, hr_watch, results_href)
    responses = hr.locator("dl.details dt", has_text=t("survey.responses")).locator(
        "xpath=following-sibling::dd[1]"
    )
    await expect(responses).to_have_text(t("survey.hidden_fewer").format(k=5))
    await expect(hr.get_by_text(t("survey.all_hidden").format(k=5))).to_be_visible()
    await expect(hr.locator("svg.chart")).to_have_count(0)  # nothing to draw below k
    await hr.screenshot(path=str(results_dir / "survey-results-hidden.png"), full_page=True)
    round_id = results_href.split("/")[4]
    csv_link = hr.get_by_role("link", name=t("survey.export_csv"), exact=True)
    await expect(csv_link).to_have_attribute("href", f"/api/surveys/rounds/{round_id}/results.csv")

    # HR's pages on a phone too.
    hr_phone_ctx = await new_context(
        viewport=PHONE, has_touch=True, storage_state=await hr_ctx.storage_state()
    )
    hr_phone = await hr_phone_ctx.new_page()
    for path in ("/admin/surveys", results_href):
        await hr_phone.goto(path)
        await hr_phone.locator("details.schedule").evaluate_all("ds => ds.forEach(d => d.open = true)")
        problems += await no_sideways_scroll(hr_phone, path)

    assert "Traceback" not in server.log.read_text(encoding="utf-8", errors="replace"), server.log_tail()
    assert not problems, report("survey on a phone", problems)


async def test_builtin_scale_labels_match_the_catalog() -> None:
    """answer.html shows English labels for the built-in scale; they are keyed by the Japanese ones."""
    assert [t(f"survey.likert.{i}") for i in range(1, 6)] == LIKERT_LABELS
    assert all(t(f"survey.likert.{i}", "en") != LIKERT_LABELS[i - 1] for i in range(1, 6))
