"""Telework pages: book with a preview, decide in the inbox, coverage grid, home-page reports, feeds."""

from __future__ import annotations

import re

MEMBER = "100019"
HEAD = "100006"


def form(client, **fields) -> dict:
    return {**fields, "_csrf_token": client.headers["x-csrftoken"]}


async def test_book_preview_submit_decide_and_report_through_pages(make_client, clock):
    member = await make_client(login=MEMBER)
    head = await make_client(login=HEAD)

    page = await member.get("/telework/new?day=2027-03-08")
    assert page.status_code == 200 and 'value="2027-03-08"' in page.text

    preview = await member.post(
        "/telework/new",
        data=form(
            member,
            action="preview",
            kind="single",
            first_day="2027-03-08",
            part="full",
            place="home",
            plan="資料作成",
        ),
    )
    assert preview.status_code == 200
    assert "申請前の確認" in preview.text and "伊藤 直子" in preview.text and 'value="submit"' in preview.text

    done = await member.post(
        "/telework/new",
        data=form(
            member,
            action="submit",
            kind="single",
            first_day="2027-03-08",
            part="full",
            place="home",
            plan="資料作成",
        ),
    )
    assert done.status_code == 303
    detail = await member.get(done.headers["location"])
    assert "申請しました" in detail.text and "決裁待ち" in detail.text

    inbox = await head.get("/telework/inbox")
    assert inbox.status_code == 200 and "山口 翼" in inbox.text
    day_id = re.search(r'name="day_ids" value="(\d+)"', inbox.text).group(1)
    decided = await head.post("/telework/inbox/decide", data=form(head, only=f"{day_id}:approve"))
    assert decided.status_code == 303
    assert "1 件を承認しました" in (await head.get(decided.headers["location"])).text

    month = await member.get("/telework?month=2027-03")
    assert "承認" in month.text and "cal-item state-approved" in month.text

    clock.set("2027-03-08 08:50")
    home = await member.get("/")
    assert "今日は在宅勤務です" in home.text and "業務開始を報告" in home.text
    r = await member.post(f"/telework/days/{day_id}/report", data=form(member, which="start"))
    assert r.status_code == 303
    clock.set("2027-03-08 17:30")
    home = await member.get("/")
    assert "業務終了を報告" in home.text
    r = await member.post(
        f"/telework/days/{day_id}/report", data=form(member, which="end", summary="資料を作成")
    )
    assert r.status_code == 303
    assert "報告済み" in (await member.get("/")).text


async def test_form_errors_are_explained_and_keep_what_was_typed(make_client, clock):
    member = await make_client(login=MEMBER)
    r = await member.post(
        "/telework/new",
        data=form(member, action="submit", kind="single", first_day="2027-03-20", plan="予定の業務"),
    )
    assert r.status_code == 422
    assert "土曜日" in r.text and "予定の業務" in r.text
    r = await member.post("/telework/new", data=form(member, action="preview", kind="range", first_day="bad"))
    assert r.status_code == 422 and "YYYY-MM-DD" in r.text
    r = await member.post(
        "/telework/new",
        data=form(member, action="submit", kind="pattern", first_day="2027-03-08", last_day="2027-03-31"),
    )
    assert r.status_code == 422 and "曜日を1つ以上" in r.text


async def test_inbox_needs_a_reason_for_a_rule_break(make_client, clock, hr, app):
    from sqlalchemy import select

    from auth.models import OrgUnit

    async with app.state.db_sessions() as s:
        unit_id = (await s.execute(select(OrgUnit.id).where(OrgUnit.code == "GYOKAKU"))).scalar_one()
    await hr.post(
        "/api/telework/policies", json={"unit_id": unit_id, "valid_from": "2027-03-01", "weekly_cap": 1}
    )
    member = await make_client(login=MEMBER)
    head = await make_client(login=HEAD)
    await member.post(
        "/api/telework/requests", json={"kind": "range", "first_day": "2027-03-09", "last_day": "2027-03-10"}
    )
    inbox = await head.get("/telework/inbox")
    ids = re.findall(r'name="day_ids" value="(\d+)"', inbox.text)
    assert len(ids) == 2 and "週の上限超え" in inbox.text
    later = await head.get("/telework/inbox?from=2027-03-10&to=2027-03-31")
    assert re.findall(r'name="day_ids" value="(\d+)"', later.text) == ids[1:]
    r = await head.post("/telework/inbox/decide", data=form(head, day_ids=ids, decision="approve"))
    assert r.status_code == 422 and "理由" in r.text
    r = await head.post(
        "/telework/inbox/decide", data=form(head, day_ids=ids, decision="approve", override_reason="締切対応")
    )
    assert r.status_code == 303

    assert 'name="day_ids"' not in (await head.get("/telework/inbox?from=2027-03-10")).text  # all decided
    grid = await head.get(f"/telework/coverage?unit_id={unit_id}&month=2027-03")
    assert grid.status_code == 200 and "山口 翼" in grid.text and "終日" in grid.text


async def test_empty_inbox_and_empty_month_say_what_to_do(make_client, clock):
    employee = await make_client("employee")
    inbox = await employee.get("/telework/inbox")  # open to all: a delegate may be anyone
    assert inbox.status_code == 200 and "決裁を待っている申請はありません" in inbox.text
    page = await employee.get("/telework")
    assert page.status_code == 200 and "まだ申請はありません" in page.text


async def test_calendar_address_from_the_page(make_client, clock):
    member = await make_client(login=MEMBER)
    r = await member.post("/telework/feeds", data=form(member))
    assert r.status_code == 200
    url = re.search(r'value="(http[^"]+\.ics)"', r.text).group(1)
    feed = await member.get(url.replace("http://127.0.0.1:8000", ""))
    assert feed.status_code == 200 and feed.text.startswith("BEGIN:VCALENDAR")
    head = await make_client(login=HEAD)
    page = await head.get("/telework")
    unit_id = re.search(r'<option value="(\d+)">行政改革課</option>', page.text).group(1)
    r = await head.post("/telework/feeds", data=form(head, kind="unit", unit_id=unit_id))
    assert r.status_code == 200 and ".ics" in r.text
    r = await member.post("/telework/feeds", data=form(member, kind="unit", unit_id=unit_id))
    assert r.status_code == 403  # only unit heads get a unit's feed
