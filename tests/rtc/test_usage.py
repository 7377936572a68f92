"""Meeting usage figures: meetings held, participants and participant-minutes per Tokyo month and unit.

Stays are written straight into the table (and once through a real socket), then read back through
`rtc.usage`, the API, the CSV, the page and the indicator dashboard.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import col

from app.db import utcnow
from auth.models import User
from rtc import usage
from rtc.access import Identity
from rtc.models import RoomAttendance
from tests.rtc.test_rooms import next_of, ws_join

JST = ZoneInfo("Asia/Tokyo")


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST).astimezone(UTC)


async def people(db: Any) -> dict[str, tuple[int, int]]:
    """A, C: 行政改革課 (the demo unit head's unit); B, D: 人事課."""
    rows = (
        await db.execute(
            select(col(User.employee_number), col(User.id), col(User.unit_id)).where(
                col(User.employee_number).in_(["100019", "100020", "100012", "100013"])
            )
        )
    ).all()
    by_number = {n: (uid, unit) for n, uid, unit in rows}
    return {k: by_number[n] for k, n in (("A", "100019"), ("C", "100020"), ("B", "100012"), ("D", "100013"))}


async def march(db: Any) -> dict[str, tuple[int, int]]:
    """Stays around March 2026 (times in Tokyo); the tests work out the expected figures in comments."""
    p = await people(db)

    def stay(room: str, who: str | None, start: str, end: str | None) -> RoomAttendance:
        uid, unit = p[who] if who else (None, None)
        joined = jst(start)
        return RoomAttendance(
            room_id=room,
            user_id=uid,
            unit_id=unit,
            guest=who is None,
            joined_at=joined,
            left_at=jst(end) if end else None,
            seen_at=jst(end) if end else joined,
        )

    db.add_all(
        [
            # 3/10: A (twice: a reconnect), B and a guest; one meeting of 3 participants.
            stay("Room1", "A", "2026-03-10 10:00", "2026-03-10 11:00"),
            stay("Room1", "B", "2026-03-10 10:05", "2026-03-10 10:35"),
            stay("Room1", "A", "2026-03-10 11:00", "2026-03-10 11:10"),
            stay("Room1", None, "2026-03-10 10:10", "2026-03-10 10:40"),
            # 3/11: A alone for 30 minutes; no meeting, but the minutes count.
            stay("Room1", "A", "2026-03-11 09:00", "2026-03-11 09:30"),
            # 3/31 late: A and B across midnight into April (30 minutes in March, 20 in April each).
            stay("Room3", "A", "2026-03-31 23:30", "2026-04-01 00:20"),
            stay("Room3", "B", "2026-03-31 23:30", "2026-04-01 00:20"),
            # 3/1 early morning in Tokyo is still 2/28 in UTC: a March meeting.
            stay("Room5", "B", "2026-03-01 08:00", "2026-03-01 08:30"),
            stay("Room5", "D", "2026-03-01 08:00", "2026-03-01 08:30"),
            # Began 2/28 (a February meeting); 10 minutes each fall in March.
            stay("Room6", "A", "2026-02-28 23:50", "2026-03-01 00:10"),
            stay("Room6", "C", "2026-02-28 23:50", "2026-03-01 00:10"),
            # D alone, never closed: counts to the end of March, then to now.
            stay("Room7", "D", "2026-03-31 23:50", None),
        ]
    )
    await db.commit()
    return p


def rows(figures: usage.Usage) -> dict[Any, tuple[int, int, int]]:
    return {
        ("guest" if u.guest else u.unit_id): (u.meetings, u.participants, u.minutes) for u in figures.units
    }


async def test_figures_per_tokyo_month_and_unit(app, db):
    p = await march(db)
    gyokaku, jinji = p["A"][1], p["B"][1]
    now = jst("2026-04-01 01:00")
    async with app.state.db_sessions() as s:
        m = await usage.usage(s, date(2026, 3, 1), date(2026, 3, 31), now=now)
        feb = await usage.usage(s, date(2026, 2, 1), date(2026, 2, 28), now=now)
        apr = await usage.usage(s, date(2026, 4, 1), date(2026, 4, 30), now=now)
        mine = await usage.usage(s, date(2026, 3, 1), date(2026, 3, 31), units={gyokaku}, now=now)
    # Meetings: Room1 on 3/10 (A, B, guest), Room3 on 3/31 (A, B), Room5 on 3/1 (B, D).
    assert (m.meetings, m.participants, m.scheduled) == (3, 7, 0)
    # Minutes: A 70 + 30 + 30 + 10, C 10; B 30 + 30 + 30, D 30 + 10 (open); the guest 30.
    assert rows(m) == {gyokaku: (2, 2, 150), jinji: (3, 4, 130), "guest": (1, 1, 30)}
    assert m.minutes == 310 and sum(u.participants for u in m.units) == m.participants
    assert (feb.meetings, feb.participants, feb.minutes) == (1, 2, 20)
    assert rows(feb) == {gyokaku: (1, 2, 20)}
    # April so far: the tail of the stays across midnight (20 + 20) and D's open stay (60), no meeting.
    assert (apr.meetings, apr.participants, apr.minutes) == (0, 0, 100)
    assert rows(apr) == {gyokaku: (0, 0, 20), jinji: (0, 0, 80)}
    # A unit head's view: only their unit's people, in the meetings they were in.
    assert (mine.meetings, mine.participants, mine.minutes) == (2, 2, 150)
    assert rows(mine) == {gyokaku: (2, 2, 150)}


async def test_a_scheduled_meeting_is_remembered_and_counted_per_day(app, db):
    from scheduling.models import Meeting

    p = await people(db)
    meeting = Meeting(
        uid="usage-test@telework",
        room_id="WeeklyRoom01",
        organizer_id=p["A"][0],
        title="定例",
        start_at=jst("2026-03-02 10:00"),
        end_at=jst("2026-03-02 11:00"),
    )
    db.add(meeting)
    await db.commit()
    sessions = app.state.db_sessions
    ids = []
    for who in ("A", "B"):
        uid, unit = p[who]
        ids.append(
            await usage.joined(sessions, "WeeklyRoom01", Identity(user_id=uid, name=who, unit_id=unit))
        )
    guest = await usage.joined(sessions, "WeeklyRoom01", Identity(user_id=None, name="外部", guest=True))
    instant = await usage.joined(sessions, "InstantRm001", Identity(user_id=p["C"][0], name="C"))
    async with sessions() as s:
        stays = {r.id: r for r in (await s.execute(select(RoomAttendance))).scalars()}
    assert {stays[i].meeting_id for i in [*ids, guest]} == {meeting.id}
    assert stays[guest].guest and stays[guest].user_id is None
    assert instant is not None and stays[instant].meeting_id is None
    # The same series a week later: another day, another meeting held.
    async with sessions() as s:
        for stay in (stays[ids[0]], stays[ids[1]]):
            s.add(
                RoomAttendance(
                    room_id=stay.room_id,
                    meeting_id=stay.meeting_id,
                    user_id=stay.user_id,
                    unit_id=stay.unit_id,
                    joined_at=stay.joined_at - timedelta(days=7),
                    left_at=stay.joined_at - timedelta(days=7) + timedelta(minutes=45),
                )
            )
        await s.commit()
    today = utcnow().astimezone(JST).date()
    async with sessions() as s:
        figures = await usage.usage(s, today - timedelta(days=7), today)
    assert (figures.meetings, figures.scheduled, figures.participants) == (2, 2, 5)
    for stay_id in [*ids, guest, instant]:
        await usage.left(sessions, stay_id)
    assert not usage.open_stays(sessions)


async def test_heartbeat_and_stale_stays(app, db):
    p = await people(db)
    sessions = app.state.db_sessions
    now = utcnow()
    dead = RoomAttendance(
        room_id="DeadRoom01",
        user_id=p["A"][0],
        unit_id=p["A"][1],
        joined_at=now - timedelta(minutes=40),
        seen_at=now - timedelta(minutes=5),
    )
    closed = RoomAttendance(
        room_id="DeadRoom01",
        user_id=p["B"][0],
        joined_at=now - timedelta(minutes=40),
        left_at=now - timedelta(minutes=30),
        seen_at=now - timedelta(minutes=30),
    )
    db.add_all([dead, closed])
    await db.commit()
    live = await usage.joined(
        sessions, "LiveRoom01", Identity(user_id=p["C"][0], name="C", unit_id=p["C"][1])
    )
    assert live is not None and usage.open_stays(sessions) == {live}
    async with sessions() as s:  # pretend this worker last beat 3 minutes ago
        row = await s.get(RoomAttendance, live)
        assert row is not None
        row.seen_at = now - timedelta(minutes=3)
        await s.commit()
    assert await usage.heartbeat_job(app.state) == 1  # the live stay is seen again ...
    assert await usage.close_stale(sessions) == 1  # ... so only the dead worker's stay is closed
    assert await usage.close_stale_job(app.state) == 0  # and closing again changes nothing
    async with sessions() as s:
        got = {r.id: r for r in (await s.execute(select(RoomAttendance))).scalars()}
    assert got[dead.id].left_at == got[dead.id].seen_at == dead.seen_at
    assert got[closed.id].left_at == closed.left_at
    assert got[live].left_at is None and got[live].seen_at > now - timedelta(seconds=30)
    await usage.left(sessions, live)
    assert await usage.touch(sessions, [live]) == 0  # a closed stay is not revived
    async with sessions() as s:
        row = await s.get(RoomAttendance, live)
        assert row is not None and row.left_at is not None


async def test_a_real_meeting_through_the_socket_is_counted(app, make_client):
    from tests.rtc.peers import serve

    owner, head = await make_client("employee"), await make_client("unit_head")
    room = (await owner.post("/api/rooms", json={})).json()
    sessions = app.state.db_sessions
    async with serve(app) as base:
        a = await ws_join(base, room["id"], owner.cookies["th_session"])
        await next_of(a, "welcome")
        b = await ws_join(base, room["id"], head.cookies["th_session"])
        await next_of(b, "welcome")
        for _ in range(100):  # the stay is recorded just after the welcome
            if len(usage.open_stays(sessions)) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(usage.open_stays(sessions)) == 2
        assert await usage.heartbeat_job(app.state) == 2
        await a.close()
        await b.close()
        for _ in range(100):
            if not usage.open_stays(sessions):
                break
            await asyncio.sleep(0.05)
    async with sessions() as s:
        stays = (await s.execute(select(RoomAttendance))).scalars().all()
        assert len(stays) == 2 and all(r.room_id == room["id"] and r.left_at is not None for r in stays)
        assert all(r.worker == app.state.rtc.worker_id for r in stays)
        today = utcnow().astimezone(JST).date()
        figures = await usage.usage(s, today - timedelta(days=1), today)
    assert (figures.meetings, figures.participants) == (1, 2)


async def test_api_csv_and_page(db, hr, make_client):
    p = await march(db)
    r = await hr.get("/api/rtc/usage", params={"month": "2026-03"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert (data["month"], data["scope"], data["meetings"], data["participants"], data["minutes"]) == (
        "2026-03",
        "city",
        3,
        7,
        310,
    )
    names = {u["unit_id"]: u for u in data["units"]}
    assert names[p["A"][1]]["unit_name"].endswith("行政改革課") and " / " in names[p["A"][1]]["unit_name"]
    assert names[p["A"][1]]["unit_code"] == "GYOKAKU"
    assert data["units"][-1]["guest"] and data["units"][-1]["unit_name"] == "ゲスト（庁外）"
    r = await hr.get("/api/rtc/usage", params={"month": "2026-13"}, headers={"accept-language": "en"})
    assert r.status_code == 400 and "YYYY-MM" in r.json()["detail"]

    r = await hr.get("/api/rtc/usage.csv", params={"from": "2026-02", "to": "2026-03"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "年月,組織コード,組織,会議数,参加者数,参加者延べ分数"
    assert "2026-02,,合計,1,2,20" in lines and "2026-03,,合計,3,7,310" in lines
    assert any(line.startswith("2026-03,GYOKAKU,") and line.endswith(",2,2,150") for line in lines)
    assert "meeting-usage-202602-202603.csv" in r.headers["content-disposition"]
    for bad in ({"from": "2026-04", "to": "2026-03"}, {"from": "2010-01", "to": "2026-03"}, {"to": "x"}):
        assert (await hr.get("/api/rtc/usage.csv", params=bad)).status_code == 400

    page = await hr.get("/rooms/usage", params={"month": "2026-03"})
    assert page.status_code == 200
    assert "オンライン会議の開催数" in page.text and "行政改革課" in page.text and "310" in page.text
    assert "ゲスト（庁外）" in page.text and 'href="/indicator"' in page.text
    empty = await hr.get("/rooms/usage", params={"month": "2025-01"})
    assert empty.status_code == 200 and "記録がありません" in empty.text
    bad = await hr.get("/rooms/usage", params={"month": "March"})
    assert bad.status_code == 400 and "YYYY-MM" in bad.text

    head = await make_client("unit_head")  # heads 行政改革課: its people only, no guests
    mine = (await head.get("/api/rtc/usage", params={"month": "2026-03"})).json()
    assert mine["scope"] == "scope" and (mine["meetings"], mine["participants"], mine["minutes"]) == (
        2,
        2,
        150,
    )
    assert [u["unit_id"] for u in mine["units"]] == [p["A"][1]]
    it = await make_client("it_admin")
    assert (await it.get("/api/rtc/usage", params={"month": "2026-03"})).json()["minutes"] == 310
    english = await it.get("/rooms/usage", params={"month": "2026-03"}, headers={"accept-language": "en"})
    assert english.status_code == 200


async def test_the_indicator_dashboard_shows_the_meeting_measures(app, db, hr):
    p = await people(db)
    first = utcnow().astimezone(JST).date().replace(day=1)
    start = usage.tokyo_midnight(first) + timedelta(minutes=1)
    for who in ("A", "B"):
        db.add(
            RoomAttendance(
                room_id="Indicator01",
                user_id=p[who][0],
                unit_id=p[who][1],
                joined_at=start,
                left_at=start + timedelta(minutes=45),
                seen_at=start + timedelta(minutes=45),
            )
        )
    await db.commit()
    page = await hr.get("/indicator")
    assert page.status_code == 200
    text = " ".join(page.text.split())
    assert '<h2>オンライン会議の開催数</h2><p class="kpi">1</p>' in text
    assert '<h2>オンライン会議の参加者数</h2><p class="kpi">2</p>' in text
    assert '<h2>オンライン会議の参加延べ時間（分）</h2><p class="kpi">90</p>' in text
    async with app.state.db_sessions() as s:
        assert await usage.measures(s, first, usage.month_bounds(first)[1]) == [
            ("rtc.measure.meetings_held", 1),
            ("rtc.measure.participants", 2),
            ("rtc.measure.participant_minutes", 90),
        ]


async def test_a_server_with_jobs_beats_and_closes_stale_stays(settings):
    import dataclasses

    from app.main import create_app, shutdown, startup

    application = create_app(dataclasses.replace(settings, jobs_interval_seconds=3600))
    await startup(application)
    try:
        names = {task.get_name() for task in application.state.jobs._tasks}
        assert {"job:rtc.heartbeat", "job:rtc.close_stale"} <= names
    finally:
        await shutdown(application)
