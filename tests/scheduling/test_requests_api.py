"""Telework requests over the API: book, preview, decide, withdraw, cancel, report; bad input; audit."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.audit import AuditEvent
from scheduling.models import TeleworkDay, TeleworkRequest

MEMBER = "100019"  # 山口 翼, 行政改革課 (GYOKAKU), whose head is 100006
HEAD = "100006"


async def test_book_next_monday_head_approves_member_reports(make_client, clock, db):
    member = await make_client(login=MEMBER)
    head = await make_client(login=HEAD)
    body = {"first_day": "2027-03-08", "place": "home", "plan": "資料作成", "contact": "携帯"}
    preview = (await member.post("/api/telework/requests/preview", json=body)).json()
    assert preview["refused"] is False and preview["approver"] == "伊藤 直子"
    r = await member.post("/api/telework/requests", json=body)
    assert r.status_code == 201, r.text
    req = r.json()
    day_id = req["days"][0]["id"]
    assert req["days"][0]["state"] == "submitted"

    inbox = (await head.get("/api/telework/inbox")).json()
    assert [i["day"]["id"] for i in inbox["items"]] == [day_id]
    r = await head.post(
        f"/api/telework/days/{day_id}/decision", json={"decision": "approve", "comment": "了解"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    again = await head.post(f"/api/telework/days/{day_id}/decision", json={"decision": "reject"})
    assert again.status_code == 409
    assert "処理済み" in again.json()["detail"]

    clock.set("2027-03-08 08:55")
    today = (await member.get("/api/telework/today")).json()
    assert [d["id"] for d in today] == [day_id]
    r = await member.post(f"/api/telework/days/{day_id}/end", json={})
    assert r.status_code == 422  # no start yet
    assert (await member.post(f"/api/telework/days/{day_id}/start", json={})).status_code == 200
    clock.set("2027-03-08 17:20")
    r = await member.post(f"/api/telework/days/{day_id}/end", json={"summary": "資料を作成した"})
    assert r.status_code == 200
    assert r.json()["ended_at"] and r.json()["summary"] == "資料を作成した"

    told = (await member.get("/api/telework/notifications")).json()
    assert told["unread"] == 1 and "承認されました" in told["items"][0]["message"]
    assert (await member.post("/api/telework/notifications/read")).status_code == 204
    assert (await member.get("/api/telework/notifications?unread=true")).json() == {"items": [], "unread": 0}

    actions = set((await db.execute(select(AuditEvent.action))).scalars())
    assert {
        "telework.request.submitted",
        "telework.day.approved",
        "telework.report.start",
        "telework.report.end",
    } <= actions


async def test_holiday_is_refused_with_its_name(make_client, clock):
    member = await make_client(login=MEMBER)
    r = await member.post("/api/telework/requests", json={"first_day": "2027-03-22"})  # 春分の日 (observed)
    assert r.status_code == 422
    assert "春分の日" in r.json()["detail"] or "振替休日" in r.json()["detail"]
    r = await member.post("/api/telework/requests", json={"first_day": "2027-03-06"})
    assert r.status_code == 422 and "土曜日" in r.json()["detail"]


async def test_pattern_expands_skips_holidays_and_is_decided_whole(make_client, clock, db):
    member = await make_client(login=MEMBER)
    head = await make_client(login=HEAD)
    body = {"kind": "pattern", "first_day": "2027-04-26", "last_day": "2027-05-07", "weekdays": [1, 4]}
    r = await member.post("/api/telework/requests", json=body)
    assert r.status_code == 201, r.text
    days = [d["day"] for d in r.json()["days"]]
    # Mondays and Thursdays; 4/29 (Thu) and 5/3 (Mon) are national holidays.
    assert days == ["2027-04-26", "2027-05-06"]
    rid = r.json()["id"]
    r = await head.post(f"/api/telework/requests/{rid}/decision", json={"decision": "approve"})
    assert r.json()["decided"] == 2
    # Each day is cancelled on its own.
    first = (await member.get(f"/api/telework/requests/{rid}")).json()["days"][0]["id"]
    r = await member.post(f"/api/telework/days/{first}/withdraw")
    assert r.json()["state"] == "cancelled"
    states = sorted(
        (await db.execute(select(TeleworkDay.state).where(TeleworkDay.request_id == rid))).scalars()
    )
    assert states == ["approved", "cancelled"]


async def test_bad_input_is_refused_and_nothing_is_written(make_client, clock, db):
    member = await make_client(login=MEMBER)
    before = (await db.execute(select(func.count()).select_from(TeleworkRequest))).scalar_one()
    cases = [
        {"first_day": "2027-02-30"},
        {"kind": "range", "first_day": "2027-03-10", "last_day": "2027-03-09"},
        {"kind": "range", "first_day": "2027-03-10", "last_day": "2028-04-01"},
        {"kind": "pattern", "first_day": "2027-03-10", "last_day": "2027-03-20", "weekdays": []},
        {"kind": "pattern", "first_day": "2027-03-13", "last_day": "2027-03-14", "weekdays": [6, 7]},
        {"first_day": "2027-03-10", "plan": "x" * 2001},
        {"first_day": "2027-03-10", "place": "other"},
        {"first_day": "2027-03-10", "part": "evening"},
        {"first_day": "2027-02-26"},
    ]
    for body in cases:
        r = await member.post("/api/telework/requests", json=body)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert r.json().get("detail"), body
    await db.rollback()
    assert (await db.execute(select(func.count()).select_from(TeleworkRequest))).scalar_one() == before


async def test_already_booked_and_half_days(make_client, clock):
    member = await make_client(login=MEMBER)
    assert (
        await member.post("/api/telework/requests", json={"first_day": "2027-03-10", "part": "am"})
    ).status_code == 201
    assert (
        await member.post("/api/telework/requests", json={"first_day": "2027-03-10", "part": "pm"})
    ).status_code == 201
    r = await member.post("/api/telework/requests", json={"first_day": "2027-03-10"})
    assert r.status_code == 422 and "申請済み" in r.json()["detail"]


async def test_no_self_approval_and_strangers_cannot_decide(make_client, clock):
    head = await make_client(login=HEAD)
    other_head = await make_client(login="100007")
    r = await head.post("/api/telework/requests", json={"first_day": "2027-03-10"})
    assert r.status_code == 201
    day = r.json()["days"][0]
    assert day["approver_name"] == "鈴木 一郎"  # the head of the unit above
    r = await head.post(f"/api/telework/days/{day['id']}/decision", json={"decision": "approve"})
    assert r.status_code == 403
    r = await other_head.post(f"/api/telework/days/{day['id']}/decision", json={"decision": "approve"})
    assert r.status_code == 403


async def test_two_approvers_at_once_one_wins(make_client, clock, app):
    member = await make_client(login=MEMBER)
    head = await make_client(login=HEAD)
    delegate = await make_client(login="100021")
    r = await head.post(
        "/api/telework/delegations",
        json={"to_user_id": await _uid(app, "100021"), "starts": "2027-03-01", "ends": "2027-03-31"},
    )
    assert r.status_code == 201, r.text
    day_id = (await member.post("/api/telework/requests", json={"first_day": "2027-03-11"})).json()["days"][
        0
    ]["id"]
    results = await asyncio.gather(
        head.post(f"/api/telework/days/{day_id}/decision", json={"decision": "approve"}),
        delegate.post(f"/api/telework/days/{day_id}/decision", json={"decision": "reject"}),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409], [r.text for r in results]


async def test_delegate_decides_acting_for_the_head(make_client, clock, app):
    member = await make_client(login=MEMBER)
    head = await make_client(login=HEAD)
    delegate = await make_client(login="100021")
    await head.post(
        "/api/telework/delegations",
        json={"to_user_id": await _uid(app, "100021"), "starts": "2027-03-01", "ends": "2027-03-05"},
    )
    day_id = (await member.post("/api/telework/requests", json={"first_day": "2027-03-12"})).json()["days"][
        0
    ]["id"]
    inbox = (await delegate.get("/api/telework/inbox")).json()
    assert inbox["items"][0]["acting_for_name"] == "伊藤 直子"
    r = await delegate.post(f"/api/telework/days/{day_id}/decision", json={"decision": "approve"})
    assert r.status_code == 200
    read = (
        await member.get(f"/api/telework/requests/{r.json()['day_ids'][0] and (await _req(member, day_id))}")
    ).json()
    day = read["days"][0]
    assert day["decided_by_name"] == "池田 浩二" and day["acting_for_name"] == "伊藤 直子"
    clock.set("2027-03-06 09:00")  # the delegation has ended
    day2 = (await member.post("/api/telework/requests", json={"first_day": "2027-03-15"})).json()["days"][0][
        "id"
    ]
    r = await delegate.post(f"/api/telework/days/{day2}/decision", json={"decision": "approve"})
    assert r.status_code == 403


async def _uid(app, employee_number: str) -> int:
    from auth.models import User

    async with app.state.db_sessions() as s:
        return (await s.execute(select(User.id).where(User.employee_number == employee_number))).scalar_one()


async def _req(client, day_id: int) -> int:
    for req in (await client.get("/api/telework/requests")).json()["items"]:
        if any(d["id"] == day_id for d in req["days"]):
            return req["id"]
    raise AssertionError("request not found")
