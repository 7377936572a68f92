"""Meetings in the personal iCalendar feed: the ones a person organises or attends (not declined), with the
invitation's UID and SEQUENCE, exceptions, and cancelled ones marked; parsed by icalendar and vobject.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import icalendar
import vobject
from sqlalchemy import select

from auth.models import User
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.feeds import WINDOW_DAYS
from scheduling.models import Meeting, MeetingAttendee, MeetingOccurrence
from tests.scheduling.test_ical import book, check_wire_format, feed_path, new_feed

TODAY = TeleworkConfig().today()


def at(days: int, hour: int = 10) -> datetime:
    """A Tokyo wall time `days` from today, as UTC."""
    return datetime.combine(TODAY + timedelta(days=days), time(hour), tzinfo=TOKYO).astimezone(UTC)


async def uid_of(db, employee_number: str) -> User:
    return (await db.execute(select(User).where(User.employee_number == employee_number))).scalar_one()


async def add_meeting(
    db,
    key: str,
    organizer: User,
    start: datetime,
    *,
    attendees: list[tuple[User, str]] = (),  # type: ignore[assignment]
    rrule: str = "",
    sequence: int = 0,
    status: str = "scheduled",
    series_end: datetime | None = None,
) -> Meeting:
    meeting = Meeting(
        uid=f"meeting-{key}@127.0.0.1",
        room_id=f"room{key}",
        organizer_id=organizer.id,
        title=f"会議{key}",
        agenda=f"{key} の議題",
        start_at=start,
        end_at=start + timedelta(hours=1),
        rrule=rrule,
        series_end_at=series_end,
        sequence=sequence,
        status=status,
    )
    db.add(meeting)
    await db.flush()
    db.add_all(
        MeetingAttendee(meeting_id=meeting.id, user_id=u.id, email=u.email, name=u.name, partstat=p)
        for u, p in attendees
    )
    await db.flush()
    return meeting


async def test_personal_feed_carries_my_meetings(db, make_client, anon):
    employee = await make_client("employee")
    await book(db, "100012", [(TODAY + timedelta(days=3), "full", "approved")])
    me, head, other = await uid_of(db, "100012"), await uid_of(db, "100006"), await uid_of(db, "100009")
    series = await add_meeting(
        db,
        "series",
        head,
        at(7),
        attendees=[(me, "ACCEPTED"), (other, "NEEDS-ACTION")],
        rrule="FREQ=WEEKLY;COUNT=6",
        sequence=3,
        series_end=at(7 + 35, 11),
    )
    db.add_all(
        [
            MeetingOccurrence(
                meeting_id=series.id, recurrence_id=at(14), start_at=at(15, 13), end_at=at(15, 14), sequence=2
            ),
            MeetingOccurrence(meeting_id=series.id, recurrence_id=at(21), cancelled=True, sequence=3),
        ]
    )
    await add_meeting(db, "mine", me, at(2, 15), attendees=[(other, "ACCEPTED")])
    await add_meeting(db, "declined", head, at(4), attendees=[(me, "DECLINED")])
    await add_meeting(
        db, "called-off", head, at(5), attendees=[(me, "TENTATIVE")], status="cancelled", sequence=2
    )
    await add_meeting(db, "not-mine", head, at(6), attendees=[(other, "ACCEPTED")])
    await add_meeting(db, "long-ago", head, at(-WINDOW_DAYS - 30), attendees=[(me, "ACCEPTED")])
    await add_meeting(db, "far-ahead", head, at(WINDOW_DAYS + 30), attendees=[(me, "ACCEPTED")])
    await add_meeting(
        db,
        "open-ended",
        head,
        at(-WINDOW_DAYS - 30),
        attendees=[(me, "NEEDS-ACTION")],
        rrule="FREQ=MONTHLY",
    )
    await db.commit()

    created = await new_feed(employee)
    r = await anon.get(feed_path(created))
    assert r.status_code == 200
    body = r.content
    check_wire_format(body)

    cal = icalendar.Calendar.from_ical(body)
    events = cal.walk("VEVENT")
    uids = [str(e["UID"]) for e in events]
    assert sum(u.startswith("telework-day-") for u in uids) == 1, "telework days stay"
    meeting_uids = [u for u in uids if u.startswith("meeting-")]
    assert sorted(set(meeting_uids)) == [
        "meeting-called-off@127.0.0.1",
        "meeting-mine@127.0.0.1",
        "meeting-open-ended@127.0.0.1",
        "meeting-series@127.0.0.1",
    ]
    assert meeting_uids.count("meeting-series@127.0.0.1") == 2, "the series and its moved occurrence"

    by_uid: dict[str, list] = {}
    for e in events:
        by_uid.setdefault(str(e["UID"]), []).append(e)
    master, moved = by_uid["meeting-series@127.0.0.1"]
    assert master["SEQUENCE"] == 3 and master["STATUS"] == "CONFIRMED"
    assert master["RRULE"]["COUNT"] == [6] and "ATTENDEE" not in master
    assert master["EXDATE"].dts[0].dt == at(21).astimezone(TOKYO)
    assert master["LOCATION"] == "http://127.0.0.1:8000/rooms/roomseries"
    assert f"http://127.0.0.1:8000/meetings/{series.id}" in str(master["DESCRIPTION"])
    assert str(master["ORGANIZER"]) == f"mailto:{head.email}"
    assert moved["RECURRENCE-ID"].dt == at(14).astimezone(TOKYO) and moved["DTSTART"].dt == at(15, 13)
    (called_off,) = by_uid["meeting-called-off@127.0.0.1"]
    assert called_off["STATUS"] == "CANCELLED" and called_off["SEQUENCE"] == 2

    vcal = vobject.readOne(body.decode("utf-8"))
    series_ev = next(
        e
        for e in vcal.vevent_list
        if e.uid.value == "meeting-series@127.0.0.1" and not hasattr(e, "recurrence_id")
    )
    dates = [d.astimezone(UTC) for d in series_ev.getrruleset(addRDate=True)]
    assert dates == [at(7 + 7 * w) for w in range(6) if w != 2]

    # Declining takes it out of the feed; the ETag moves with it.
    row = (
        await db.execute(
            select(MeetingAttendee).where(
                MeetingAttendee.meeting_id == series.id, MeetingAttendee.user_id == me.id
            )
        )
    ).scalar_one()
    row.partstat, row.responded_at = "DECLINED", datetime.now(UTC)
    db.add(row)
    await db.commit()
    again = await anon.get(feed_path(created), headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 200 and b"meeting-series@" not in again.content


async def test_unit_feed_has_no_meetings(db, make_client, anon):
    head_client = await make_client("unit_head")
    head = await uid_of(db, "100006")
    await add_meeting(db, "unit", head, at(3), attendees=[(await uid_of(db, "100012"), "ACCEPTED")])
    await db.commit()
    unit = head.unit_id
    created = await new_feed(head_client, kind="unit", unit_id=unit)
    r = await anon.get(feed_path(created))
    assert r.status_code == 200 and b"meeting-unit@" not in r.content
