"""Reading meetings: one meeting, my meetings as occurrences in a window, the people picker, free/busy.

A meeting is visible to its organizer and the people invited to it; to anyone else it does not exist
(404), so nobody learns about other people's meetings. Free/busy shows only times, never titles.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.errors import DomainError, NotFound
from app.security import Principal
from auth.models import OrgUnit, User
from scheduling import meeting_schemas as ms
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.meeting_input import local
from scheduling.meeting_recurrence import Occurrence, expand, parse_rrule, rid_text, utc
from scheduling.meetings import attendees_of, exceptions_of, load
from scheduling.models import Meeting, MeetingAttendee, MeetingOccurrence, TeleworkDay

MAX_WINDOW = timedelta(days=400)
FREEBUSY_WINDOW = timedelta(days=31)
FREEBUSY_USERS = 50


def join_url(base_url: str, room_id: str) -> str:
    return f"{base_url.rstrip('/')}/rooms/{room_id}"


def occurrences(meeting: Meeting, exc: list[MeetingOccurrence]) -> list[Occurrence]:
    return expand(
        meeting.rrule,
        meeting.start_at,
        meeting.end_at,
        TOKYO,
        [(e.recurrence_id, e.start_at, e.end_at, e.cancelled) for e in exc],
    )


async def names(db: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await db.execute(select(User.id, User.name).where(col(User.id).in_(ids)))
    return {uid: name for uid, name in rows.all()}


async def visible(db: AsyncSession, meeting_id: int, principal: Principal) -> tuple[Meeting, str]:
    """The meeting and my role in it (organizer, cohost, attendee); not invited: 'not found'."""
    meeting = await load(db, meeting_id)
    if meeting.organizer_id == principal.id:
        return meeting, "organizer"
    row = (
        await db.execute(
            select(MeetingAttendee.role).where(
                col(MeetingAttendee.meeting_id) == meeting_id, col(MeetingAttendee.user_id) == principal.id
            )
        )
    ).first()
    if row is None:
        raise NotFound("meeting.not_found")
    return meeting, str(row[0])


async def get_meeting(
    db: AsyncSession, principal: Principal, meeting_id: int, base_url: str
) -> ms.MeetingRead:
    """One meeting with its attendees and answers, exceptions, and what I may do with it."""
    meeting, role = await visible(db, meeting_id, principal)
    return await meeting_read(db, meeting, principal, role, base_url)


async def meeting_read(
    db: AsyncSession, meeting: Meeting, principal: Principal, role: str, base_url: str
) -> ms.MeetingRead:
    assert meeting.id is not None
    people = await attendees_of(db, meeting.id)
    exc = await exceptions_of(db, meeting.id)
    organizer = (await names(db, {meeting.organizer_id})).get(meeting.organizer_id, "")
    rec = parse_rrule(meeting.rrule, TOKYO)
    mine = next((a for a in people if a.user_id == principal.id), None)
    live = meeting.status == "scheduled"
    return ms.MeetingRead(
        id=meeting.id,
        uid=meeting.uid,
        room_id=meeting.room_id,
        join_url=join_url(base_url, meeting.room_id),
        organizer_id=meeting.organizer_id,
        organizer_name=organizer,
        title=meeting.title,
        agenda=meeting.agenda,
        start=utc(meeting.start_at),
        end=utc(meeting.end_at),
        tz=meeting.tz,
        rrule=meeting.rrule,
        freq=rec.freq,
        interval=rec.interval,
        byday=list(rec.byday),
        monthly_by=rec.monthly_by,
        count=rec.count,
        until=rec.until.astimezone(TOKYO).date() if rec.until else None,
        series_end=utc(meeting.series_end_at) if meeting.series_end_at else None,
        sequence=meeting.sequence,
        status=meeting.status,
        lobby=meeting.lobby,
        attendees=[
            ms.AttendeeRead(
                id=a.id or 0,
                user_id=a.user_id,
                name=a.name,
                email=a.email,
                role=a.role,
                partstat=a.partstat,
                responded_at=utc(a.responded_at) if a.responded_at else None,
            )
            for a in people
        ],
        exceptions=[
            ms.OccurrenceRead(
                recurrence_id=rid_text(e.recurrence_id),
                start=utc(e.start_at) if e.start_at and not e.cancelled else utc(e.recurrence_id),
                end=utc(e.end_at)
                if e.end_at and not e.cancelled
                else utc(e.recurrence_id) + (utc(meeting.end_at) - utc(meeting.start_at)),
                moved=e.start_at is not None and not e.cancelled,
                cancelled=e.cancelled,
            )
            for e in exc
        ],
        my_role=role,
        my_answer=mine.partstat if mine else None,
        can_edit=live and role in ("organizer", "cohost"),
        can_cancel=live and role == "organizer",
    )


def window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The period asked for (times without an offset are Tokyo time); default: three months from now."""
    first = local(start, "mt_window") if start else now
    try:
        last = local(end, "mt_window") if end else first + timedelta(days=92)
    except OverflowError as exc:
        raise DomainError("meeting.too_far", field="mt_window", status_code=400) from exc
    if last <= first:
        raise DomainError("meeting.bad_window", field="mt_window", status_code=400)
    if last - first > MAX_WINDOW:
        raise DomainError("meeting.window_too_long", field="mt_window", days=MAX_WINDOW.days, status_code=400)
    return first, last


async def _meetings_of(
    db: AsyncSession, user_ids: list[int], first: datetime, *, skip_declined: bool = False
) -> list[tuple[Meeting, int]]:
    """Scheduled meetings of these people (as organizer or invitee) that end after `first`."""
    invited = select(MeetingAttendee.meeting_id, MeetingAttendee.user_id).where(
        col(MeetingAttendee.user_id).in_(user_ids)
    )
    if skip_declined:
        invited = invited.where(col(MeetingAttendee.partstat) != "DECLINED")
    pairs = {(mid, uid) for mid, uid in (await db.execute(invited)).all() if uid is not None}
    still = or_(
        (col(Meeting.rrule) == "") & (col(Meeting.end_at) >= first),
        (col(Meeting.rrule) != "") & (col(Meeting.series_end_at) >= first),
    )
    query = select(Meeting).where(
        col(Meeting.status) == "scheduled",
        still,
        or_(
            col(Meeting.organizer_id).in_(user_ids), col(Meeting.id).in_(sorted({m for m, _ in pairs}) or [0])
        ),
    )
    out: list[tuple[Meeting, int]] = []
    for meeting in (await db.execute(query.order_by(col(Meeting.start_at)))).scalars():
        if meeting.organizer_id in user_ids:
            out.append((meeting, meeting.organizer_id))
        out.extend((meeting, uid) for mid, uid in pairs if mid == meeting.id and uid != meeting.organizer_id)
    return out


async def list_mine(
    db: AsyncSession,
    principal: Principal,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    base_url: str,
    *,
    page: int = 1,
    per_page: int = 20,
) -> ms.MeetingList:
    """My meetings (organizer or invited) as occurrences in a window (default: the next three months)."""
    first, last = window(start, end, now)
    found = await _meetings_of(db, [principal.id], first)
    ids = [m.id for m, _ in found if m.id is not None]
    exc_rows = (
        (await db.execute(select(MeetingOccurrence).where(col(MeetingOccurrence.meeting_id).in_(ids or [0]))))
        .scalars()
        .all()
    )
    answers = {
        mid: (role, partstat)
        for mid, role, partstat in (
            await db.execute(
                select(MeetingAttendee.meeting_id, MeetingAttendee.role, MeetingAttendee.partstat).where(
                    col(MeetingAttendee.meeting_id).in_(ids or [0]),
                    col(MeetingAttendee.user_id) == principal.id,
                )
            )
        ).all()
    }
    organizers = await names(db, {m.organizer_id for m, _ in found})
    items: list[ms.MyOccurrenceRead] = []
    for meeting, _ in found:
        assert meeting.id is not None
        exc = [e for e in exc_rows if e.meeting_id == meeting.id]
        role, answer = ("organizer", None) if meeting.organizer_id == principal.id else answers[meeting.id]
        for occ in occurrences(meeting, exc):
            if occ.cancelled or occ.end_at <= first or occ.start_at >= last:
                continue
            items.append(
                ms.MyOccurrenceRead(
                    meeting_id=meeting.id,
                    title=meeting.title,
                    recurrence_id=rid_text(occ.recurrence_id),
                    start=occ.start_at,
                    end=occ.end_at,
                    moved=occ.moved,
                    series=bool(meeting.rrule),
                    room_id=meeting.room_id,
                    join_url=join_url(base_url, meeting.room_id),
                    organizer_name=organizers.get(meeting.organizer_id, ""),
                    my_role=role,
                    my_answer=answer,
                )
            )
    items.sort(key=lambda i: (i.start, i.meeting_id))
    offset = (page - 1) * per_page
    return ms.MeetingList(
        items=items[offset : offset + per_page], total=len(items), page=page, per_page=per_page
    )


# ---------------------------------------------------------------- the people picker


def _kana_forms(text: str) -> set[str]:
    """The query in hiragana and in katakana, so either finds the stored reading."""
    hira = "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)
    kata = "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)
    return {text, hira, kata}


def _squeezed(column: Any) -> Any:
    return func.replace(func.replace(column, " ", ""), "\u3000", "")


async def directory(db: AsyncSession, q: str, locale: str = "ja", limit: int = 20) -> list[ms.DirectoryEntry]:
    """Active people whose name, reading (kana), e-mail or employee number matches (at most 20)."""
    text = "".join(ch for ch in q if ch.isprintable() and not ch.isspace())[:100]
    if not text:
        return []
    conditions = [col(User.email).contains(text.lower(), autoescape=True)]
    conditions.append(col(User.employee_number).startswith(text, autoescape=True))
    for form in _kana_forms(text):
        conditions.append(_squeezed(col(User.name)).contains(form, autoescape=True))
        conditions.append(_squeezed(col(User.kana)).contains(form, autoescape=True))
    rows = await db.execute(
        select(User, OrgUnit.name, OrgUnit.name_en)
        .join(OrgUnit, col(OrgUnit.id) == col(User.unit_id), isouter=True)
        .where(col(User.active).is_(True), or_(*conditions))
        .order_by(col(User.kana), col(User.id))
        .limit(limit)
    )
    return [
        ms.DirectoryEntry(
            id=u.id or 0,
            name=u.name,
            kana=u.kana,
            email=u.email,
            employee_number=u.employee_number,
            unit=(unit_en if locale == "en" and unit_en else unit_ja) or "",
        )
        for u, unit_ja, unit_en in rows.all()
    ]


async def people(db: AsyncSession, ids: list[int]) -> list[ms.DirectoryEntry]:
    """Directory entries for chosen ids (active people only), in the order given."""
    if not ids:
        return []
    rows = await db.execute(select(User).where(col(User.id).in_(ids), col(User.active).is_(True)))
    found = {u.id: u for u in rows.scalars()}
    return [
        ms.DirectoryEntry(
            id=i, name=u.name, kana=u.kana, email=u.email, employee_number=u.employee_number, unit=""
        )
        for i in ids
        if (u := found.get(i)) is not None
    ]


# ---------------------------------------------------------------- free/busy


async def freebusy(
    db: AsyncSession,
    config: TeleworkConfig,
    user_ids: list[int],
    start: datetime,
    end: datetime,
    *,
    exclude_meeting: int | None = None,
) -> ms.FreeBusyRead:
    """Per person: other meetings (busy; not yet accepted ones tentative) and approved telework (a hint)."""
    first, last = utc(start), utc(end)
    if last <= first:
        raise DomainError("meeting.bad_window", field="mt_window", status_code=400)
    if last - first > FREEBUSY_WINDOW:
        raise DomainError(
            "meeting.window_too_long", field="mt_window", days=FREEBUSY_WINDOW.days, status_code=400
        )
    ids = list(dict.fromkeys(user_ids))[:FREEBUSY_USERS]
    rows = await db.execute(
        select(User.id, User.name).where(col(User.id).in_(ids), col(User.active).is_(True))
    )
    who = {uid: name for uid, name in rows.all()}
    ids = [i for i in ids if i in who]
    blocks: dict[int, list[ms.BusyBlock]] = {i: [] for i in ids}
    if ids:
        found = await _meetings_of(db, ids, first, skip_declined=True)
        mids = [m.id for m, _ in found if m.id is not None]
        exc_rows = (
            (
                await db.execute(
                    select(MeetingOccurrence).where(col(MeetingOccurrence.meeting_id).in_(mids or [0]))
                )
            )
            .scalars()
            .all()
        )
        tentative = {
            (mid, uid)
            for mid, uid in (
                await db.execute(
                    select(MeetingAttendee.meeting_id, MeetingAttendee.user_id).where(
                        col(MeetingAttendee.meeting_id).in_(mids or [0]),
                        col(MeetingAttendee.partstat).in_(("NEEDS-ACTION", "TENTATIVE")),
                    )
                )
            ).all()
        }
        for meeting, uid in found:
            if meeting.id == exclude_meeting:
                continue
            exc = [e for e in exc_rows if e.meeting_id == meeting.id]
            for occ in occurrences(meeting, exc):
                if occ.cancelled or occ.end_at <= first or occ.start_at >= last:
                    continue
                blocks[uid].append(
                    ms.BusyBlock(
                        start=occ.start_at,
                        end=occ.end_at,
                        kind="meeting",
                        tentative=(meeting.id, uid) in tentative,
                    )
                )
        first_day: date = first.astimezone(TOKYO).date()
        last_day: date = last.astimezone(TOKYO).date()
        days = await db.execute(
            select(col(TeleworkDay.user_id), col(TeleworkDay.day), col(TeleworkDay.part)).where(
                col(TeleworkDay.user_id).in_(ids),
                col(TeleworkDay.state) == "approved",
                col(TeleworkDay.day) >= first_day,
                col(TeleworkDay.day) <= last_day,
            )
        )
        for uid, day, part in days.all():
            begins = config.workday_starts if part in ("full", "am") else config.pm_start
            ends = config.am_end if part == "am" else config.workday_ends
            blocks[uid].append(
                ms.BusyBlock(
                    start=datetime.combine(day, begins, tzinfo=TOKYO).astimezone(UTC),
                    end=datetime.combine(day, ends, tzinfo=TOKYO).astimezone(UTC),
                    kind="telework",
                    part=part,
                )
            )
    return ms.FreeBusyRead(
        start=first,
        end=last,
        users=[
            ms.FreeBusyUser(user_id=i, name=who[i], blocks=sorted(blocks[i], key=lambda b: (b.start, b.kind)))
            for i in ids
        ],
    )
