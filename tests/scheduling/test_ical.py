"""iCalendar feeds: secret addresses, what a feed carries, and output that two independent parsers accept.

Days are arranged directly in the database (the booking flow has its own tests); feeds are created and
read over HTTP, then parsed with icalendar (the library that wrote them) and vobject (which did not).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import icalendar
import vobject
from sqlalchemy import delete, select, text

from app.audit import AuditEvent
from app.db import utcnow
from auth.models import OrgUnit, RoleAssignment, User
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.ical import FeedDay, PartTimes, build_calendar
from scheduling.models import CalendarFeed, TeleworkDay, TeleworkRequest

TODAY = TeleworkConfig().today()


async def user_id(db, employee_number: str) -> int:
    return (await db.execute(select(User.id).where(User.employee_number == employee_number))).scalar_one()


async def unit_id(db, code: str) -> int:
    return (await db.execute(select(OrgUnit.id).where(OrgUnit.code == code))).scalar_one()


async def book(
    db,
    who: str,
    days: list[tuple[date, str, str]],
    *,
    place: str = "home",
    plan: str = "資料作成",
    sequence: int = 1,
) -> list[TeleworkDay]:
    """One request with these (day, part, state) items, as the booking flow would leave them."""
    await db.rollback()  # a fresh snapshot: the app may have written since
    uid = await user_id(db, who)
    unit = (await db.execute(select(User.unit_id).where(User.id == uid))).scalar_one()
    req = TeleworkRequest(
        user_id=uid,
        unit_id=unit,
        kind="range",
        first_day=min(d for d, _, _ in days),
        last_day=max(d for d, _, _ in days),
        place=place,
        plan=plan,
    )
    db.add(req)
    await db.flush()
    rows = [
        TeleworkDay(
            request_id=req.id,
            user_id=uid,
            unit_id=unit,
            day=d,
            part=part,
            state=state,
            sequence=sequence,
            updated_at=datetime(2026, 11, 2, 1, 2, 3, 456789, tzinfo=ZoneInfo("UTC")),
        )
        for d, part, state in days
    ]
    db.add_all(rows)
    await db.commit()
    return rows


async def new_feed(client: httpx.AsyncClient, **body) -> dict:
    r = await client.post("/api/telework/feeds", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def feed_path(created: dict) -> str:
    assert created["url"].startswith("http://127.0.0.1:8000/ical/") and created["url"].endswith(".ics")
    assert created["webcal_url"] == created["url"].replace("http://", "webcal://", 1)
    return created["url"].removeprefix("http://127.0.0.1:8000")


async def fetch(anon: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    return await anon.get(path, headers=headers)


def check_wire_format(body: bytes) -> None:
    """What every client needs: UTF-8, CRLF only, lines folded at 75 octets, VERSION and PRODID."""
    body.decode("utf-8")
    assert body.startswith(b"BEGIN:VCALENDAR\r\n") and body.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    for line in body.split(b"\r\n"):
        assert len(line) <= 75, line
    for needed in (b"VERSION:2.0", b"PRODID:", b"METHOD:PUBLISH", b"CALSCALE:GREGORIAN", b"X-WR-CALNAME:"):
        assert needed in body
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT1H" in body and b"X-PUBLISHED-TTL:PT1H" in body


def events_by_uid(body: bytes) -> dict[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def vevents_by_uid(body: bytes) -> dict[str, object]:
    cal = vobject.readOne(body.decode("utf-8"))
    return {e.uid.value: e for e in getattr(cal, "vevent_list", [])}


async def test_personal_feed_round_trips_through_two_parsers(db, make_client, anon):
    employee = await make_client("employee")
    d1, d2, d3 = TODAY + timedelta(days=3), TODAY + timedelta(days=4), TODAY + timedelta(days=5)
    rows = await book(
        db,
        "100012",
        [
            (d1, "full", "approved"),
            (d2, "am", "approved"),
            (d2, "pm", "cancelled"),
            (d3, "full", "submitted"),  # not decided: not in a calendar
            (d3 + timedelta(days=1), "full", "rejected"),
            (d3 + timedelta(days=2), "full", "withdrawn"),
            (TODAY + timedelta(days=405), "full", "approved"),  # beyond the 400-day window
            (TODAY - timedelta(days=405), "full", "approved"),
        ],
        plan="議事録の作成と、来年度予算の資料のとりまとめ。" * 4,
    )
    full, am, pm = rows[:3]
    created = await new_feed(employee)
    assert created["kind"] == "personal" and created["unit_id"] is None

    r = await fetch(anon, feed_path(created))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    assert r.headers["etag"].startswith('W/"') and r.headers["last-modified"].endswith("GMT")
    assert "private" in r.headers["cache-control"]
    body = r.content
    check_wire_format(body)

    host = "127.0.0.1"
    expected = {f"telework-day-{row.id}@{host}" for row in (full, am, pm)}
    events = events_by_uid(body)
    vevents = vevents_by_uid(body)
    assert set(events) == expected == set(vevents)

    # All-day: DATE values, exclusive end.
    ev = events[f"telework-day-{full.id}@{host}"]
    assert ev.decoded("DTSTART") == d1 and ev.decoded("DTEND") == d1 + timedelta(days=1)
    assert str(ev["SUMMARY"]) == "在宅勤務" and str(ev["STATUS"]) == "CONFIRMED"
    assert int(ev["SEQUENCE"]) == 1
    assert ev.decoded("DTSTAMP") == datetime(2026, 11, 2, 1, 2, 3, tzinfo=ZoneInfo("UTC"))
    assert "業務予定：議事録の作成" in str(ev["DESCRIPTION"])
    vev = vevents[f"telework-day-{full.id}@{host}"]
    assert vev.dtstart.value == d1 and vev.sequence.value == "1" and vev.summary.value == "在宅勤務"

    # Half days: timed, in Asia/Tokyo, with the zone defined in the file.
    ev = events[f"telework-day-{am.id}@{host}"]
    assert ev["DTSTART"].params["TZID"] == "Asia/Tokyo"
    assert ev.decoded("DTSTART") == datetime.combine(d2, time(8, 30), tzinfo=TOKYO)
    assert ev.decoded("DTEND") == datetime.combine(d2, time(12, 0), tzinfo=TOKYO)
    assert str(ev["SUMMARY"]) == "在宅勤務（午前）"
    assert f"DTSTART;TZID=Asia/Tokyo:{d2:%Y%m%d}T083000".encode() in body
    vev = vevents[f"telework-day-{am.id}@{host}"]
    assert vev.dtstart.value.utcoffset() == timedelta(hours=9)
    assert vev.dtstart.value.replace(tzinfo=None) == datetime.combine(d2, time(8, 30))
    cal = icalendar.Calendar.from_ical(body)
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Asia/Tokyo"]

    # A cancelled day stays, marked cancelled, so clients remove it instead of keeping a stale copy.
    ev = events[f"telework-day-{pm.id}@{host}"]
    assert str(ev["STATUS"]) == "CANCELLED" and str(ev["SUMMARY"]).startswith("【取消】")
    assert ev.decoded("DTSTART") == datetime.combine(d2, time(13, 0), tzinfo=TOKYO)
    assert ev.decoded("DTEND") == datetime.combine(d2, time(17, 15), tzinfo=TOKYO)
    assert vevents[f"telework-day-{pm.id}@{host}"].status.value == "CANCELLED"


async def test_a_change_bumps_sequence_and_the_etag_revalidates(db, make_client, anon):
    employee = await make_client("employee")
    day = TODAY + timedelta(days=7)
    (row,) = await book(db, "100012", [(day, "full", "approved")], sequence=2)
    path = feed_path(await new_feed(employee))

    first = await fetch(anon, path)
    uid = f"telework-day-{row.id}@127.0.0.1"
    assert int(events_by_uid(first.content)[uid]["SEQUENCE"]) == 2
    again = await fetch(anon, path, **{"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]

    # The person cancels the approved day: same UID, higher SEQUENCE, STATUS:CANCELLED.
    await db.rollback()
    row = await db.get(TeleworkDay, row.id)
    row.state, row.sequence, row.updated_at = "cancelled", 3, utcnow()
    db.add(row)
    await db.commit()
    changed = await fetch(anon, path, **{"if-none-match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    event = events_by_uid(changed.content)[uid]
    assert int(event["SEQUENCE"]) == 3 and str(event["STATUS"]) == "CANCELLED"
    vevent = vevents_by_uid(changed.content)[uid]
    assert vevent.sequence.value == "3" and vevent.status.value == "CANCELLED"


async def test_unit_feed_shows_the_unit_with_names_and_only_to_its_head(db, make_client, anon):
    head = await make_client("unit_head")
    gyokaku = await unit_id(db, "GYOKAKU")
    day = TODAY + timedelta(days=2)
    (theirs,) = await book(db, "100019", [(day, "pm", "approved")], plan="秘密の計画")
    (outside,) = await book(db, "100012", [(day, "full", "approved")])  # 人事課: not the head's unit

    created = await new_feed(head, kind="unit", unit_id=gyokaku)
    assert (
        created["kind"] == "unit" and created["unit_id"] == gyokaku and created["unit_name"] == "行政改革課"
    )
    r = await fetch(anon, feed_path(created))
    assert r.status_code == 200
    check_wire_format(r.content)
    events = events_by_uid(r.content)
    assert set(events) == {f"telework-day-{theirs.id}@127.0.0.1"}
    event = events[f"telework-day-{theirs.id}@127.0.0.1"]
    assert str(event["SUMMARY"]) == "山口 翼：在宅勤務（午後）"
    assert "秘密の計画" not in r.content.decode()  # plans stay in the person's own feed
    cal = icalendar.Calendar.from_ical(r.content)
    assert str(cal["X-WR-CALNAME"]) == "テレワーク予定（行政改革課）"
    assert outside.id not in {int(uid.split("-")[2].split("@")[0]) for uid in events}

    # Someone else's unit: not found; an employee: not a unit head at all; a unit id is required.
    jinji = await unit_id(db, "JINJI")
    r = await head.post("/api/telework/feeds", json={"kind": "unit", "unit_id": jinji})
    assert r.status_code == 404, r.text
    employee = await make_client("employee")
    r = await employee.post("/api/telework/feeds", json={"kind": "unit", "unit_id": gyokaku})
    assert r.status_code == 403, r.text
    r = await head.post("/api/telework/feeds", json={"kind": "unit"})
    assert r.status_code == 400, r.text
    r = await head.post("/api/telework/feeds", json={"kind": "personal", "unit_id": gyokaku})
    assert r.status_code == 400, r.text

    # Losing the post closes the feed without anyone revoking it.
    await db.rollback()
    head_id = await user_id(db, "100006")
    await db.execute(
        delete(RoleAssignment).where(RoleAssignment.user_id == head_id, RoleAssignment.role == "unit_head")
    )
    await db.commit()
    assert (await fetch(anon, feed_path(created))).status_code == 404


async def test_revoked_and_unknown_addresses_are_not_found(db, make_client, anon):
    employee = await make_client("employee")
    created = await new_feed(employee)
    path = feed_path(created)
    live = await fetch(anon, path)
    assert live.status_code == 200
    checked = await anon.head(path)  # some calendar services look before they fetch
    assert checked.status_code == 200 and checked.headers["etag"] == live.headers["etag"]
    assert checked.content == b""

    listed = (await employee.get("/api/telework/feeds")).json()
    assert [f["id"] for f in listed] == [created["id"]] and "token" not in listed[0]

    other = await make_client("hr_admin")
    assert (await other.delete(f"/api/telework/feeds/{created['id']}")).status_code == 404
    assert (await fetch(anon, path)).status_code == 200
    assert (await employee.delete(f"/api/telework/feeds/{created['id']}")).status_code == 204
    assert (await employee.delete(f"/api/telework/feeds/{created['id']}")).status_code == 404
    assert (await employee.get("/api/telework/feeds")).json() == []

    r = await fetch(anon, path)
    assert r.status_code == 404
    assert (await anon.head(path)).status_code == 404
    problem = await anon.get(path, headers={"accept": "application/json"})
    assert problem.status_code == 404
    assert problem.headers["content-type"].startswith("application/problem+json")
    assert "取り消されています" in problem.json()["detail"]
    for bad in ("/ical/" + "A" * 43 + ".ics", "/ical/short.ics", path.removesuffix(".ics"), path + "x"):
        assert (await fetch(anon, bad)).status_code == 404, bad


async def test_the_token_is_never_stored_or_logged_in_clear(db, make_client):
    employee = await make_client("employee")
    created = await new_feed(employee)
    token = created["token"]
    assert len(token) >= 43 and created["url"].endswith(f"/ical/{token}.ics")
    feed = (await db.execute(select(CalendarFeed).where(CalendarFeed.id == created["id"]))).scalar_one()
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
    dump = await db.execute(text("SELECT * FROM telework_calendar_feed"))
    assert token not in repr(dump.all())
    audit = (
        await db.execute(select(AuditEvent).where(AuditEvent.action.startswith("telework.feed")))
    ).scalars()
    events = list(audit)
    assert [e.action for e in events] == ["telework.feed.create"]
    assert all(token not in (e.after or "") and feed.token_hash not in (e.after or "") for e in events)
    await db.rollback()
    assert (await employee.delete(f"/api/telework/feeds/{created['id']}")).status_code == 204
    actions = (
        await db.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "calendar_feed"))
    ).all()
    assert sorted(a for (a,) in actions) == ["telework.feed.create", "telework.feed.revoke"]


async def test_use_is_recorded_at_most_once_an_hour(db, make_client, anon):
    employee = await make_client("employee")
    created = await new_feed(employee)
    path = feed_path(created)

    async def last_used() -> datetime | None:
        await db.rollback()
        return (
            await db.execute(select(CalendarFeed.last_used_at).where(CalendarFeed.id == created["id"]))
        ).scalar_one()

    assert await last_used() is None
    await fetch(anon, path)
    first = await last_used()
    assert first is not None
    await fetch(anon, path)
    assert await last_used() == first
    await db.execute(
        CalendarFeed.__table__.update()
        .where(CalendarFeed.__table__.c.id == created["id"])
        .values(last_used_at=first - timedelta(hours=2))
    )
    await db.commit()
    await fetch(anon, path)
    assert await last_used() > first - timedelta(hours=1)


async def test_a_deactivated_owner_feed_stops(db, make_client, anon):
    employee = await make_client("employee")
    path = feed_path(await new_feed(employee))
    await db.rollback()
    await db.execute(User.__table__.update().where(User.employee_number == "100012").values(active=False))
    await db.commit()
    assert (await fetch(anon, path)).status_code == 404


def test_builder_english_empty_and_long_text():
    """The pure builder: an empty feed is still a valid calendar; English summaries; long lines fold."""
    empty = build_calendar([], locale="en", host="hub.example.jp", name="Telework (Sakura)")
    check_wire_format(empty)
    assert vobject.readOne(empty.decode()).vtimezone.tzid.value == "Asia/Tokyo"

    day = FeedDay(
        id=7,
        day=date(2027, 1, 4),
        part="am",
        state="approved",
        sequence=0,
        updated_at=datetime(2026, 12, 1, 9, 0),
        place="satellite",
        place_note="北区サテライト" * 10,
        plan="plan " * 40,
        person="Sakura Yamamoto",
    )
    body = build_calendar(
        [day], locale="en", host="hub.example.jp", name="Telework", times=PartTimes(am_start=time(9, 0))
    )
    check_wire_format(body)
    (event,) = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert str(event["UID"]) == "telework-day-7@hub.example.jp"
    assert str(event["SUMMARY"]) == "Sakura Yamamoto: Satellite office (morning)"
    assert event.decoded("DTSTART") == datetime(2027, 1, 4, 9, 0, tzinfo=TOKYO)
    assert "北区サテライト" * 10 in str(event["DESCRIPTION"])
    (vevent,) = vobject.readOne(body.decode()).vevent_list
    assert vevent.description.value == str(event["DESCRIPTION"])


def test_typed_text_cannot_break_or_inject_lines():
    """Plans and names are typed by people: bare CRs, controls and fake properties stay inside the text."""
    evil = "a\rEND:VEVENT\rBEGIN:VEVENT\nUID:evil\r\nX:y; z, \\ w\x0b\x00\x85\u2028end"
    day = FeedDay(
        id=1,
        day=date(2027, 1, 4),
        part="full",
        state="approved",
        sequence=0,
        updated_at=datetime(2026, 1, 1),
        plan=evil,
        place_note=evil,
        person="Evil\r\nUID:x",
    )
    body = build_calendar([day], locale="ja", host="h.example", name="n\r\nMETHOD:REQUEST")
    check_wire_format(body)
    cal = icalendar.Calendar.from_ical(body)
    (event,) = cal.walk("VEVENT")
    assert str(event["UID"]) == "telework-day-1@h.example" and str(cal["METHOD"]) == "PUBLISH"
    assert "\n" not in str(event["SUMMARY"])
    (vevent,) = vobject.readOne(body.decode()).vevent_list
    assert vevent.uid.value == "telework-day-1@h.example"
    assert "X:y; z, \\ w" in vevent.description.value


async def test_a_person_holds_a_bounded_number_of_live_feeds(make_client):
    from scheduling.feeds import MAX_ACTIVE_FEEDS

    employee = await make_client("employee")
    ids = [(await new_feed(employee))["id"] for _ in range(MAX_ACTIVE_FEEDS)]
    r = await employee.post("/api/telework/feeds", json={"kind": "personal"})
    assert r.status_code == 409 and str(MAX_ACTIVE_FEEDS) in r.json()["detail"]
    assert (await employee.delete(f"/api/telework/feeds/{ids[0]}")).status_code == 204
    await new_feed(employee)
    r = await employee.post("/api/telework/feeds", json={"kind": "personal", "extra": 1})
    assert r.status_code == 400
