"""Meeting pages without JavaScript: pick people with the search button, see free/busy, schedule,
answer, change, move and cancel an occurrence; errors are explained and keep what was typed."""

from __future__ import annotations

import re
from datetime import date

from auth.models import User
from scheduling.models import TeleworkDay, TeleworkRequest

ORGANIZER = "100019"  # 山口 翼
MEMBER = "100012"  # 山本 さくら


def form(client, **fields) -> dict:
    return {**fields, "_csrf_token": client.headers["x-csrftoken"]}


async def test_empty_list_and_menu(make_client, clock):
    member = await make_client(login=MEMBER)
    page = await member.get("/meetings")
    assert page.status_code == 200
    assert "これからの会議はありません" in page.text and 'href="/meetings/new"' in page.text
    assert 'href="/meetings"' in (await member.get("/")).text  # the menu entry


async def test_schedule_through_the_form_without_javascript(make_client, clock, db):
    organizer = await make_client(login=ORGANIZER)
    member = await make_client(login=MEMBER)
    new = await organizer.get("/meetings/new?day=2027-03-08")
    assert new.status_code == 200 and 'value="2027-03-08"' in new.text

    typed = dict(title="課内会議", day="2027-03-08", start_time="10:00", end_time="11:00", agenda="予算")
    found = await organizer.post(
        "/meetings/new", data=form(organizer, action="search", q="やまもと", **typed)
    )
    assert found.status_code == 200 and "山本 さくら" in found.text and 'value="課内会議"' in found.text
    member_id = re.search(r'name="add" value="(\d+)"', found.text).group(1)

    # the member teleworks that afternoon: the form shows it as a hint once she is chosen
    who = await db.get(User, int(member_id))
    req = TeleworkRequest(
        user_id=who.id,
        unit_id=who.unit_id,
        kind="single",
        first_day=date(2027, 3, 8),
        last_day=date(2027, 3, 8),
    )
    db.add(req)
    await db.flush()
    db.add(
        TeleworkDay(
            request_id=req.id,
            user_id=who.id,
            unit_id=who.unit_id,
            day=date(2027, 3, 8),
            part="pm",
            state="approved",
        )
    )
    await db.commit()
    added = await organizer.post("/meetings/new", data=form(organizer, add=member_id, q="やまもと", **typed))
    assert added.status_code == 200
    assert f'name="attendee_ids" value="{member_id}"' in added.text
    assert "在宅勤務（午後）" in added.text and "13:00〜17:15" in added.text

    # an error keeps what was typed and the people chosen
    bad = await organizer.post(
        "/meetings/new",
        data=form(organizer, action="save", attendee_ids=member_id, **{**typed, "end_time": "09:00"}),
    )
    assert bad.status_code == 422
    assert "終了は開始より後" in bad.text and 'value="課内会議"' in bad.text
    assert f'name="attendee_ids" value="{member_id}"' in bad.text
    bad_mail = await organizer.post(
        "/meetings/new", data=form(organizer, action="save", emails="someone at example", **typed)
    )
    assert (
        bad_mail.status_code == 422
        and "メールアドレスの形" in bad_mail.text
        and "someone at example" in bad_mail.text
    )

    done = await organizer.post(
        "/meetings/new",
        data=form(
            organizer,
            action="save",
            attendee_ids=member_id,
            freq="weekly",
            ends="count",
            count="3",
            emails="guest@example.com",
            **typed,
        ),
    )
    assert done.status_code == 303, done.text
    url = done.headers["location"]
    detail = await organizer.get(url)
    assert "会議を設定し、参加者に招待を送りました" in detail.text
    assert "毎週" in detail.text and "全3回" in detail.text and "guest@example.com" in detail.text
    assert "この回だけ中止" in detail.text and "/rooms/" in detail.text

    # the member sees it in her list and answers
    listed = await member.get("/meetings")
    assert "課内会議" in listed.text and "未回答" in listed.text and "/rooms/" in listed.text
    meeting_id = url.split("/")[2].split("?")[0]
    answered = await member.post(f"/meetings/{meeting_id}/respond", data=form(member, answer="TENTATIVE"))
    assert answered.status_code == 303
    page = await member.get(answered.headers["location"])
    assert "出欠を回答しました" in page.text and 'aria-pressed="true">未定' in page.text
    assert "主催者の操作" not in page.text
    assert (await member.get(f"/meetings/{meeting_id}/edit")).status_code == 403

    # move the second meeting, cancel the third
    detail = await organizer.get(f"/meetings/{meeting_id}")
    rids = re.findall(r"/occurrences/(\d{8}T\d{6}Z)/move", detail.text)
    assert rids == ["20270308T010000Z", "20270315T010000Z", "20270322T010000Z"]
    seq = re.search(r'name="sequence" value="(\d+)"', detail.text).group(1)
    moved = await organizer.post(
        f"/meetings/{meeting_id}/occurrences/{rids[1]}/move",
        data=form(organizer, day="2027-03-16", start_time="15:00", end_time="16:00", sequence=seq),
    )
    assert moved.status_code == 303
    stale = await organizer.post(
        f"/meetings/{meeting_id}/occurrences/{rids[2]}/cancel", data=form(organizer, sequence=seq)
    )
    assert stale.status_code == 409 and "ほかの人が変更しました" in stale.text
    cancelled = await organizer.post(
        f"/meetings/{meeting_id}/occurrences/{rids[2]}/cancel", data=form(organizer)
    )
    assert cancelled.status_code == 303
    page = await organizer.get(cancelled.headers["location"])
    assert "この回を中止し" in page.text and "日時変更" in page.text and "中止した回" in page.text
    bad_move = await organizer.post(
        f"/meetings/{meeting_id}/occurrences/{rids[0]}/move",
        data=form(organizer, day="2027-03-08", start_time="12:00", end_time="11:00"),
    )
    assert bad_move.status_code == 422 and "終了は開始より後" in bad_move.text


async def test_edit_form_prefills_and_refuses_a_stale_save(make_client, clock):
    organizer = await make_client(login=ORGANIZER)
    created = await organizer.post(
        "/meetings/new",
        data=form(
            organizer, action="save", title="振り返り", day="2027-03-09", start_time="14:00", end_time="15:00"
        ),
    )
    meeting_id = created.headers["location"].split("/")[2].split("?")[0]
    edit = await organizer.get(f"/meetings/{meeting_id}/edit")
    assert edit.status_code == 200
    assert (
        'value="振り返り"' in edit.text and 'value="2027-03-09"' in edit.text and 'value="14:00"' in edit.text
    )
    fields = dict(title="振り返り（延長）", day="2027-03-09", start_time="14:00", end_time="16:00")
    saved = await organizer.post(f"/meetings/{meeting_id}/edit", data=form(organizer, sequence="0", **fields))
    assert saved.status_code == 303
    assert "振り返り（延長）" in (await organizer.get(saved.headers["location"])).text
    stale = await organizer.post(f"/meetings/{meeting_id}/edit", data=form(organizer, sequence="0", **fields))
    assert (
        stale.status_code == 409
        and "ほかの人が変更しました" in stale.text
        and "振り返り（延長）" in stale.text
    )
    unsure = await organizer.post(f"/meetings/{meeting_id}/cancel", data=form(organizer, sequence="1"))
    assert unsure.status_code == 422 and "確認のチェックを入れてください" in unsure.text
    gone = await organizer.post(
        f"/meetings/{meeting_id}/cancel", data=form(organizer, sequence="1", confirm="yes")
    )
    assert gone.status_code == 303
    page = await organizer.get(gone.headers["location"])
    assert "会議を中止し" in page.text and "中止" in page.text and "主催者の操作" not in page.text


async def test_pages_and_messages_in_english(make_client, clock):
    member = await make_client(login=MEMBER)
    assert (await member.patch("/api/me", json={"locale": "en"})).status_code == 200
    page = await member.get("/meetings")
    assert "No upcoming meetings" in page.text and "Schedule a meeting" in page.text
    bad = await member.post(
        "/meetings/new",
        data=form(
            member, action="save", title="Review", day="2027-03-09", start_time="14:00", end_time="13:00"
        ),
    )
    assert bad.status_code == 422 and "The end must be after the start." in bad.text
    api = await member.post(
        "/api/meetings", json={"title": "x", "start": "2027-03-09T14:00:00", "end": "2027-03-10T14:00:00"}
    )
    assert api.status_code == 422 and api.json()["detail"] == "A meeting can last at most 12 hours."


async def test_home_page_shows_todays_meetings_with_a_join_link(make_client, clock):
    organizer = await make_client(login=ORGANIZER)
    member = await make_client(login=MEMBER)
    assert "今日の会議" not in (await member.get("/")).text
    found = (await organizer.get("/api/meetings/directory", params={"q": MEMBER})).json()
    r = await organizer.post(
        "/api/meetings",
        json={
            "title": "朝会",
            "start": "2027-03-01T13:00:00",
            "end": "2027-03-01T13:15:00",
            "attendee_ids": [found[0]["id"]],
        },
    )
    home = (await member.get("/")).text
    assert "今日の会議" in home and "朝会" in home and f"/rooms/{r.json()['room_id']}" in home
    clock.set("2027-03-01 13:20")
    assert "今日の会議" not in (await member.get("/")).text
