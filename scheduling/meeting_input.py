"""Meeting input checked into rows-to-be: times, title, people, repeat rule (every refusal says why).

No HTTP and no writes: `scheduling.meetings` turns a `Plan` into rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.errors import DomainError
from auth.models import User
from scheduling.config import TOKYO
from scheduling.meeting_recurrence import Recurrence, build_rrule, starts
from scheduling.meeting_schemas import MeetingIn

MAX_LENGTH = timedelta(hours=12)
MAX_ATTENDEES = 200
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


@dataclass(frozen=True)
class Invitee:
    user_id: int | None
    email: str  # lower case
    name: str
    role: str  # attendee, cohost


@dataclass(frozen=True)
class Plan:
    """A meeting as validated from input: what the rows should say."""

    title: str
    agenda: str
    start_at: datetime  # UTC
    end_at: datetime
    rrule: str
    series_end_at: datetime | None
    invitees: list[Invitee]
    lobby: bool


def local(value: datetime, field: str = "mt_start") -> datetime:
    """A time without an offset is Asia/Tokyo wall time; returned in UTC, to the minute."""
    try:
        moment = (value.replace(tzinfo=TOKYO) if value.tzinfo is None else value).astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # the first or last representable instant, shifted
        raise DomainError("meeting.too_far", field=field, status_code=422) from exc
    return moment.replace(second=0, microsecond=0)


def clean(text: str) -> str:
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]", "", text).strip()


def check_times(start: datetime, end: datetime, now: datetime, field: str = "mt_start") -> None:
    if end <= start:
        raise DomainError("meeting.end_before_start", field="mt_end", status_code=422)
    if end - start > MAX_LENGTH:
        raise DomainError("meeting.too_long", field="mt_end", hours=12, status_code=422)
    if start < now:
        raise DomainError("meeting.in_past", field=field, status_code=422)


async def resolve_invitees(db: AsyncSession, organizer_id: int, data: MeetingIn) -> list[Invitee]:
    """People from the directory (active only) and outside addresses; the organizer is left out."""
    ids = [i for i in dict.fromkeys([*data.attendee_ids, *data.cohost_ids]) if i != organizer_id]
    cohosts = set(data.cohost_ids)
    emails: list[str] = []
    for raw in data.emails:
        address = raw.strip().lower()
        if not address:
            continue
        if len(address) > 254 or not EMAIL.match(address):
            raise DomainError("meeting.bad_email", field="mt_emails", email=raw[:80], status_code=422)
        emails.append(address)
    emails = list(dict.fromkeys(emails))
    if len(ids) + len(emails) > MAX_ATTENDEES:
        raise DomainError("meeting.too_many", field="mt_attendees", n=MAX_ATTENDEES, status_code=422)
    people: dict[int, User] = {}
    if ids:
        rows = await db.execute(select(User).where(col(User.id).in_(ids), col(User.active).is_(True)))
        people = {u.id: u for u in rows.scalars() if u.id is not None}
        missing = [i for i in ids if i not in people]
        if missing:
            raise DomainError("meeting.unknown_person", field="mt_attendees", id=missing[0], status_code=422)
    out = [
        Invitee(i, people[i].email.lower(), people[i].name, "cohost" if i in cohosts else "attendee")
        for i in ids
    ]
    known = {inv.email for inv in out}
    if emails:  # an address of someone in the directory invites that person
        rows = await db.execute(select(User).where(col(User.email).in_(emails), col(User.active).is_(True)))
        by_email = {u.email.lower(): u for u in rows.scalars()}
        for address in emails:
            if address in known:
                continue
            user = by_email.get(address)
            if user is not None and user.id == organizer_id:
                continue
            out.append(Invitee(user.id if user else None, address, user.name if user else "", "attendee"))
            known.add(address)
    if len(out) > MAX_ATTENDEES:
        raise DomainError("meeting.too_many", field="mt_attendees", n=MAX_ATTENDEES, status_code=422)
    return out


def recurrence_of(data: MeetingIn) -> Recurrence:
    until = None
    if data.until is not None:  # the last day a meeting may start on, to its end
        until = datetime.combine(data.until, time(23, 59, 59), tzinfo=TOKYO)
    return Recurrence(
        freq=data.freq,
        interval=data.interval,
        byday=tuple(data.byday),
        monthly_by=data.monthly_by,
        count=data.count,
        until=until,
    )


async def plan(
    db: AsyncSession, organizer_id: int, data: MeetingIn, now: datetime, *, check_past: bool = True
) -> Plan:
    """Validate the input into rows-to-be; every refusal names the field and says why (422)."""
    title = clean(data.title)
    if not 1 <= len(title) <= 200:
        raise DomainError("meeting.title", field="title", status_code=422)
    start, end = local(data.start), local(data.end)
    if end <= start:
        raise DomainError("meeting.end_before_start", field="mt_end", status_code=422)
    if end - start > MAX_LENGTH:
        raise DomainError("meeting.too_long", field="mt_end", hours=12, status_code=422)
    if check_past and start < now:
        raise DomainError("meeting.in_past", field="mt_start", status_code=422)
    if start.year > 2100:
        raise DomainError("meeting.too_far", field="mt_start", status_code=422)
    rrule = build_rrule(recurrence_of(data), start, TOKYO)
    series_end = None
    if rrule:
        series_end = starts(rrule, start, TOKYO)[-1] + (end - start)
    invitees = await resolve_invitees(db, organizer_id, data)
    return Plan(
        title=title,
        agenda=clean(data.agenda),
        start_at=start,
        end_at=end,
        rrule=rrule,
        series_end_at=series_end,
        invitees=invitees,
        lobby=data.lobby,
    )
