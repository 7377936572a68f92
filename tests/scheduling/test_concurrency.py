"""Concurrent requests and decisions are checked against committed state (real concurrency on PostgreSQL).

Each case fires requests at the same instant through separate connections; on PostgreSQL the unit's
advisory lock orders them, on SQLite BEGIN IMMEDIATE does. Either way the rules see each other's work.
"""

from __future__ import annotations

import asyncio
from datetime import date

from sqlalchemy import select

from scheduling.models import TeleworkDay

HEAD = "100006"


async def _policy(hr, app, **rules) -> None:
    from auth.models import OrgUnit

    async with app.state.db_sessions() as s:
        unit_id = (await s.execute(select(OrgUnit.id).where(OrgUnit.code == "GYOKAKU"))).scalar_one()
    r = await hr.post(
        "/api/telework/policies", json={"unit_id": unit_id, "valid_from": "2027-03-01", **rules}
    )
    assert r.status_code == 201, r.text


async def test_concurrent_approvals_cannot_together_break_the_on_site_minimum(make_client, clock, hr, app):
    await _policy(hr, app, min_onsite_count=4)  # 5 members: only one may be away
    head = await make_client(login=HEAD)
    a = await make_client(login="100019")
    b = await make_client(login="100021")
    day_a = (await a.post("/api/telework/requests", json={"first_day": "2027-03-10"})).json()["days"][0]["id"]
    day_b = (await b.post("/api/telework/requests", json={"first_day": "2027-03-10"})).json()["days"][0]["id"]
    head2 = await make_client(login=HEAD)
    results = await asyncio.gather(
        head.post(f"/api/telework/days/{day_a}/decision", json={"decision": "approve"}),
        head2.post(f"/api/telework/days/{day_b}/decision", json={"decision": "approve"}),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 422], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 422).json()
    assert "理由" in refused["detail"] and "最低人数" in refused["errors"][0]["message"]


async def test_concurrent_bookings_see_each_other_for_the_weekly_cap(make_client, clock, hr, app, db):
    await _policy(hr, app, weekly_cap=1)
    member = await make_client(login="100019")
    results = await asyncio.gather(
        member.post("/api/telework/requests", json={"first_day": "2027-03-09"}),
        member.post("/api/telework/requests", json={"first_day": "2027-03-10"}),
    )
    assert [r.status_code for r in results] == [201, 201], [r.text for r in results]
    warnings = sorted(r.json()["days"][0]["warnings"] for r in results)
    assert warnings == [[], ["weekly_cap"]]


async def test_the_same_day_booked_twice_at_once_is_one_booking(make_client, clock, db):
    member = await make_client(login="100019")
    results = await asyncio.gather(
        *(member.post("/api/telework/requests", json={"first_day": "2027-03-11"}) for _ in range(4))
    )
    assert sorted(r.status_code for r in results)[0] == 201
    assert sum(r.status_code == 201 for r in results) == 1, [r.text for r in results]
    assert all(r.status_code in (201, 409, 422) for r in results)
    await db.rollback()
    live = (
        await db.execute(
            select(TeleworkDay.id).where(
                TeleworkDay.state == "submitted", TeleworkDay.day == date(2027, 3, 11)
            )
        )
    ).all()
    assert len(live) == 1


async def test_bulk_decision_is_all_or_nothing(make_client, clock, db):
    member = await make_client(login="100019")
    head = await make_client(login=HEAD)
    r = await member.post(
        "/api/telework/requests", json={"kind": "range", "first_day": "2027-03-15", "last_day": "2027-03-17"}
    )
    ids = [d["id"] for d in r.json()["days"]]
    assert (await member.post(f"/api/telework/days/{ids[1]}/withdraw")).status_code == 200
    r = await head.post("/api/telework/decisions", json={"day_ids": ids, "decision": "approve"})
    assert r.status_code == 409 and "取り下げ" not in r.json()["detail"]
    await db.rollback()
    states = (
        await db.execute(select(TeleworkDay.state).where(TeleworkDay.id.in_(ids)).order_by(TeleworkDay.day))
    ).scalars()
    assert list(states) == ["submitted", "withdrawn", "submitted"]
