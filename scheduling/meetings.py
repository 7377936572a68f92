"""Meeting scheduling: create, change, cancel a meeting or one occurrence, answer an invitation.

Rules: the organizer and co-hosts may change a meeting and its occurrences; only the organizer cancels
the whole series. Every change that attendees must hear about bumps ``Meeting.sequence`` with a
compare-and-set on the sequence the change was based on, so two edits at once never lose one: the
second gets 409 (stale). Invitations (iTIP REQUEST/CANCEL) are queued in the same transaction, after
the rows are flushed; every change writes one audit event in that transaction too.
Reading (my meetings, one meeting, directory, free/busy) lives in `scheduling.meeting_queries`.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit import record
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.security import Principal
from app.settings import Settings
from auth.models import User
from scheduling import invitations
from scheduling.config import TOKYO
from scheduling.ical import uid_host
from scheduling.meeting_input import check_times, local, plan
from scheduling.meeting_recurrence import expand, starts, utc
from scheduling.meeting_schemas import MeetingIn, MeetingUpdate, OccurrenceMoveIn
from scheduling.models import Meeting, MeetingAttendee, MeetingOccurrence, Notification

__all__ = ["local"]  # controllers read input times through here

ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
ANSWERS = ("ACCEPTED", "DECLINED", "TENTATIVE")


def snapshot(meeting: Meeting) -> dict[str, Any]:
    return {
        "title": meeting.title,
        "start_at": utc(meeting.start_at).isoformat(),
        "end_at": utc(meeting.end_at).isoformat(),
        "rrule": meeting.rrule,
        "lobby": meeting.lobby,
        "status": meeting.status,
        "sequence": meeting.sequence,
    }


async def load(db: AsyncSession, meeting_id: int) -> Meeting:
    meeting = await db.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("meeting.not_found")
    return meeting


async def attendees_of(db: AsyncSession, meeting_id: int) -> list[MeetingAttendee]:
    rows = await db.execute(
        select(MeetingAttendee)
        .where(col(MeetingAttendee.meeting_id) == meeting_id)
        .order_by(col(MeetingAttendee.id))
    )
    return list(rows.scalars())


async def exceptions_of(db: AsyncSession, meeting_id: int) -> list[MeetingOccurrence]:
    rows = await db.execute(
        select(MeetingOccurrence)
        .where(col(MeetingOccurrence.meeting_id) == meeting_id)
        .order_by(col(MeetingOccurrence.recurrence_id))
    )
    return list(rows.scalars())


async def role_of(db: AsyncSession, meeting: Meeting, principal: Principal) -> str | None:
    """organizer, cohost, attendee, or None for someone not invited."""
    if meeting.organizer_id == principal.id:
        return "organizer"
    row = (
        await db.execute(
            select(MeetingAttendee.role).where(
                col(MeetingAttendee.meeting_id) == meeting.id, col(MeetingAttendee.user_id) == principal.id
            )
        )
    ).first()
    return str(row[0]) if row else None


async def editable(
    db: AsyncSession, meeting_id: int, principal: Principal, *, organizer_only: bool
) -> Meeting:
    """The meeting, if this person may change it: not invited is 'not found', an attendee 'forbidden'."""
    meeting = await load(db, meeting_id)
    role = await role_of(db, meeting, principal)
    if role is None:
        raise NotFound("meeting.not_found")
    if role == "attendee" or (organizer_only and role != "organizer"):
        raise Forbidden("meeting.organizer_only" if organizer_only else "meeting.hosts_only")
    if meeting.status == "cancelled":
        raise Conflict("meeting.cancelled")
    return meeting


async def claim(db: AsyncSession, meeting: Meeting, based_on: int, now: datetime) -> int:
    """Bump the sequence if it is still the one the change was based on (else 409: changed meanwhile)."""
    result = await db.execute(
        update(Meeting)
        .where(col(Meeting.id) == meeting.id, col(Meeting.sequence) == based_on)
        .values(sequence=based_on + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict("meeting.stale")
    meeting.sequence = based_on + 1
    meeting.updated_at = now
    return meeting.sequence


async def series_end(db: AsyncSession, meeting: Meeting) -> datetime | None:
    """End of the last occurrence, moved ones included (None for a single meeting)."""
    if not meeting.rrule:
        return None
    exc = await exceptions_of(db, meeting.id or 0)
    occ = expand(
        meeting.rrule,
        meeting.start_at,
        meeting.end_at,
        TOKYO,
        [(e.recurrence_id, e.start_at, e.end_at, e.cancelled) for e in exc],
    )
    live = [o.end_at for o in occ if not o.cancelled] or [o.end_at for o in occ]
    return max(live)


# ---------------------------------------------------------------- writing


def _audit(
    db: AsyncSession,
    principal: Principal,
    action: str,
    meeting_id: int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str = "",
) -> None:
    """One audit event about a meeting, by the signed-in person."""
    record(
        db,
        action,
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="meeting",
        entity_id=meeting_id,
        before=before,
        after=after,
        ip=ip,
    )


async def _refresh_series_end(db: AsyncSession, meeting: Meeting) -> None:
    """Write what changed, then the series' end again (moved and cancelled occurrences count)."""
    await db.flush()
    meeting.series_end_at = await series_end(db, meeting)
    await db.flush()


def _new_exception(db: AsyncSession, meeting_id: int, recurrence_id: datetime) -> MeetingOccurrence:
    """The exception row for an occurrence changed for the first time."""
    row = MeetingOccurrence(meeting_id=meeting_id, recurrence_id=utc(recurrence_id))
    db.add(row)
    return row


async def create(
    db: AsyncSession,
    settings: Settings,
    principal: Principal,
    data: MeetingIn,
    now: datetime,
    *,
    ip: str = "",
) -> Meeting:
    """Schedule a meeting (or series) with its own room and invite everyone named."""
    p = await plan(db, principal.id, data, now)
    # One organizer's creations in turn (PostgreSQL row lock; SQLite's write transactions already are), so two
    # simultaneous clicks cannot both pass the twin check below.
    await db.execute(select(User.id).where(col(User.id) == principal.id).with_for_update())
    twin = (
        await db.execute(
            select(Meeting.id).where(
                col(Meeting.organizer_id) == principal.id,
                col(Meeting.status) == "scheduled",
                col(Meeting.title) == p.title,
                col(Meeting.start_at) == p.start_at,
            )
        )
    ).first()
    if twin is not None:  # a second click on "schedule" must not make a second meeting
        raise Conflict("meeting.duplicate", field="title")
    room_id = secrets.token_urlsafe(12)
    assert ROOM_ID.match(room_id)
    meeting = Meeting(
        uid=f"meeting-{secrets.token_hex(16)}@{uid_host(settings.base_url)}",
        room_id=room_id,
        organizer_id=principal.id,
        unit_id=principal.unit_id,
        title=p.title,
        agenda=p.agenda,
        start_at=p.start_at,
        end_at=p.end_at,
        tz="Asia/Tokyo",
        rrule=p.rrule,
        series_end_at=p.series_end_at,
        lobby=p.lobby,
        created_at=now,
        updated_at=now,
    )
    db.add(meeting)
    await db.flush()
    assert meeting.id is not None
    db.add_all(
        MeetingAttendee(
            meeting_id=meeting.id, user_id=i.user_id, email=i.email, name=i.name, role=i.role, created_at=now
        )
        for i in p.invitees
    )
    await db.flush()
    _audit(
        db,
        principal,
        "meeting.created",
        meeting.id,
        after={**snapshot(meeting), "attendees": len(p.invitees)},
        ip=ip,
    )
    if p.invitees:
        await invitations.queue_request(db, settings, meeting.id)
    return meeting


async def update_meeting(
    db: AsyncSession,
    settings: Settings,
    principal: Principal,
    meeting_id: int,
    data: MeetingUpdate,
    now: datetime,
    *,
    ip: str = "",
) -> Meeting:
    """Change a meeting: current attendees get the new version, removed ones a cancellation."""
    meeting = await editable(db, meeting_id, principal, organizer_only=False)
    if data.sequence != meeting.sequence:
        raise Conflict("meeting.stale")
    if utc(meeting.series_end_at or meeting.end_at) < now:
        raise Conflict("meeting.over")
    p = await plan(db, meeting.organizer_id, data, now, check_past=False)
    times_changed = (
        p.start_at != utc(meeting.start_at) or p.end_at != utc(meeting.end_at) or p.rrule != meeting.rrule
    )
    if times_changed and p.start_at < now and p.start_at != utc(meeting.start_at):
        raise DomainError("meeting.in_past", field="mt_start", status_code=422)
    before = snapshot(meeting)
    current = await attendees_of(db, meeting_id)
    wanted = {i.email: i for i in p.invitees}
    removed = [a for a in current if a.email not in wanted]
    kept = {a.email: a for a in current if a.email in wanted}
    added = [i for i in p.invitees if i.email not in kept]
    roles_changed = any(kept[e].role != wanted[e].role for e in kept)
    changed = (
        times_changed
        or roles_changed
        or removed
        or added
        or p.title != meeting.title
        or p.agenda != meeting.agenda
        or p.lobby != meeting.lobby
    )
    if not changed:
        return meeting
    await claim(db, meeting, data.sequence, now)
    if times_changed and meeting.rrule:  # exceptions of occurrences the new pattern no longer has go
        still = set(starts(p.rrule, p.start_at, TOKYO)) if p.rrule else set()
        for exc in await exceptions_of(db, meeting_id):
            if utc(exc.recurrence_id) not in still:
                await db.delete(exc)
    meeting.title, meeting.agenda, meeting.lobby = p.title, p.agenda, p.lobby
    meeting.start_at, meeting.end_at, meeting.rrule = p.start_at, p.end_at, p.rrule
    for address, row in kept.items():
        row.role = wanted[address].role
        if times_changed:  # a new time asks everyone again
            row.partstat, row.responded_at = "NEEDS-ACTION", None
    db.add_all(
        MeetingAttendee(
            meeting_id=meeting_id, user_id=i.user_id, email=i.email, name=i.name, role=i.role, created_at=now
        )
        for i in added
    )
    await _refresh_series_end(db, meeting)
    if removed:
        await invitations.queue_cancel(db, settings, meeting_id, attendee_ids=[a.id for a in removed if a.id])
        for a in removed:
            await db.delete(a)
        await db.flush()
    _audit(
        db,
        principal,
        "meeting.updated",
        meeting_id,
        before=before,
        after={
            **snapshot(meeting),
            "added": [i.email for i in added],
            "removed": [a.email for a in removed],
        },
        ip=ip,
    )
    if kept or added:
        await invitations.queue_request(db, settings, meeting_id)
    return meeting


async def cancel_meeting(
    db: AsyncSession,
    settings: Settings,
    principal: Principal,
    meeting_id: int,
    now: datetime,
    *,
    based_on: int | None = None,
    ip: str = "",
) -> Meeting:
    """Cancel the whole meeting or series (organizer only); everyone invited is told."""
    meeting = await editable(db, meeting_id, principal, organizer_only=True)
    before = snapshot(meeting)
    await claim(db, meeting, meeting.sequence if based_on is None else based_on, now)
    meeting.status = "cancelled"
    await db.flush()
    _audit(
        db,
        principal,
        "meeting.cancelled",
        meeting_id,
        before=before,
        after=snapshot(meeting),
        ip=ip,
    )
    if await attendees_of(db, meeting_id):
        await invitations.queue_cancel(db, settings, meeting_id)
    return meeting


async def _occurrence(
    db: AsyncSession, meeting: Meeting, recurrence_id: datetime, now: datetime
) -> MeetingOccurrence | None:
    """The exception row for an occurrence that exists and has not started (None: not yet changed)."""
    if not meeting.rrule:
        raise DomainError("meeting.not_series", status_code=409)
    rid = utc(recurrence_id)
    exc = await exceptions_of(db, meeting.id or 0)
    row = next((e for e in exc if utc(e.recurrence_id) == rid), None)
    if row is None and rid not in starts(meeting.rrule, meeting.start_at, TOKYO):
        raise NotFound("meeting.bad_occurrence")
    if row is not None and row.cancelled:
        raise Conflict("meeting.occurrence_cancelled")
    current = utc(row.start_at) if row is not None and row.start_at else rid
    if current < now:
        raise Conflict("meeting.occurrence_past")
    return row


async def move_occurrence(
    db: AsyncSession,
    settings: Settings,
    principal: Principal,
    meeting_id: int,
    recurrence_id: datetime,
    data: OccurrenceMoveIn,
    now: datetime,
    *,
    ip: str = "",
) -> Meeting:
    """Move one occurrence of a series; the attendees get the series with the moved one."""
    meeting = await editable(db, meeting_id, principal, organizer_only=False)
    row = await _occurrence(db, meeting, recurrence_id, now)
    start, end = local(data.start), local(data.end)
    check_times(start, end, now)
    sequence = await claim(db, meeting, meeting.sequence if data.sequence is None else data.sequence, now)
    if row is None:
        row = _new_exception(db, meeting_id, recurrence_id)
    before = {"start_at": utc(row.start_at).isoformat() if row.start_at else utc(recurrence_id).isoformat()}
    row.start_at, row.end_at, row.sequence, row.updated_at = start, end, sequence, now
    await _refresh_series_end(db, meeting)
    _audit(
        db,
        principal,
        "meeting.occurrence_moved",
        meeting_id,
        before=before,
        after={
            "recurrence_id": utc(recurrence_id).isoformat(),
            "start_at": start.isoformat(),
            "end_at": end.isoformat(),
            "sequence": sequence,
        },
        ip=ip,
    )
    if await attendees_of(db, meeting_id):
        await invitations.queue_request(db, settings, meeting_id)
    return meeting


async def cancel_occurrence(
    db: AsyncSession,
    settings: Settings,
    principal: Principal,
    meeting_id: int,
    recurrence_id: datetime,
    now: datetime,
    *,
    based_on: int | None = None,
    ip: str = "",
) -> Meeting:
    """Cancel one occurrence of a series; the attendees are told about that one only."""
    meeting = await editable(db, meeting_id, principal, organizer_only=False)
    row = await _occurrence(db, meeting, recurrence_id, now)
    sequence = await claim(db, meeting, meeting.sequence if based_on is None else based_on, now)
    if row is None:
        row = _new_exception(db, meeting_id, recurrence_id)
    row.cancelled, row.sequence, row.updated_at = True, sequence, now
    await _refresh_series_end(db, meeting)
    _audit(
        db,
        principal,
        "meeting.occurrence_cancelled",
        meeting_id,
        after={"recurrence_id": utc(recurrence_id).isoformat(), "sequence": sequence},
        ip=ip,
    )
    if await attendees_of(db, meeting_id):
        await invitations.queue_cancel(db, settings, meeting_id, recurrence_id=utc(recurrence_id))
    return meeting


async def respond(
    db: AsyncSession,
    principal: Principal,
    meeting_id: int,
    answer: str,
    now: datetime,
    *,
    ip: str = "",
    based_on: int | None = None,
) -> MeetingAttendee:
    """Answer an invitation: yes (ACCEPTED), no (DECLINED) or maybe (TENTATIVE).

    ``based_on`` is the SEQUENCE the person saw: an answer to a version that has changed since is refused
    (a change of time resets everyone's answer), as a calendar's REPLY is.
    """
    if answer not in ANSWERS:
        raise DomainError("meeting.bad_answer", field="answer", status_code=422)
    meeting = await load(db, meeting_id)
    if based_on is not None and based_on != meeting.sequence:
        raise Conflict("meeting.answer_stale")
    row = (
        (
            await db.execute(
                select(MeetingAttendee).where(
                    col(MeetingAttendee.meeting_id) == meeting_id,
                    col(MeetingAttendee.user_id) == principal.id,
                )
            )
        )
        .scalars()
        .first()
    )
    if row is None:
        if meeting.organizer_id == principal.id:
            raise Forbidden("meeting.organizer_answers")
        raise NotFound("meeting.not_found")
    if meeting.status == "cancelled":
        raise Conflict("meeting.cancelled")
    before = row.partstat
    row.partstat, row.responded_at = answer, now
    if before != answer:  # the organizer sees answers in the app (calendars mail them a REPLY themselves)
        db.add(
            Notification(
                user_id=meeting.organizer_id,
                key=f"meeting.notify.{answer.lower()}",
                params_json=json.dumps({"name": principal.name, "title": meeting.title}, ensure_ascii=False),
                link=f"/meetings/{meeting_id}",
            )
        )
    await db.flush()
    _audit(
        db,
        principal,
        "meeting.answered",
        meeting_id,
        before={"partstat": before},
        after={"partstat": answer},
        ip=ip,
    )
    return row
