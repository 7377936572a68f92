"""Meeting usage: each participant's stay is a `RoomAttendance` row, opened on joining and closed on leaving.

These are the facts behind the online-meeting figures (README, "Meeting usage figures"). A write that fails
must never keep anyone out of a meeting: errors are logged, not raised.

Definitions (the same for the page, the API, the CSV and the indicator dashboard's measures):
- a *meeting held* is one room on one day (Asia/Tokyo, by the day each stay began) with at least two
  participants that day; a scheduled series keeps one room, so each day it meets counts once;
- its *participants* are the distinct signed-in people (a reconnect is the same person) plus each guest stay
  (guests carry no identity here, so a guest who reconnects counts again);
- *participant-minutes* are the stays' durations clipped to the period (a stay still open counts to now),
  in every room, including time spent alone waiting for others.
Per unit, a person counts in the unit recorded when they joined (the lowest unit id should it differ between
their stays that day), so the units' participants add up to the total; a meeting counts in every unit that
had someone in it, so the units' meetings add up to more than the total.

A worker refreshes its open stays' ``seen_at`` every `HEARTBEAT_SECONDS`; a stay whose worker stopped
doing so for `STALE_AFTER` (the worker died) is closed at its last heartbeat by `close_stale`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col
from sqlmodel.sql.sqltypes import UTCDateTime

from app.db import utcnow
from rtc.access import Identity
from rtc.models import RoomAttendance

log = logging.getLogger("telework.rtc.usage")

TOKYO = ZoneInfo("Asia/Tokyo")  # no daylight saving: always UTC+9, which the SQL below relies on
HEARTBEAT_SECONDS = 30
STALE_AFTER = timedelta(minutes=2)

# Stays open on this process, per session factory (one per app; tests run many apps in one process).
_open: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], set[int]] = weakref.WeakKeyDictionary()


def open_stays(sessions: async_sessionmaker[AsyncSession]) -> set[int]:
    """Ids of the stays this process opened in this database and has not closed yet."""
    return set(_open.get(sessions, ()))


async def joined(
    sessions: async_sessionmaker[AsyncSession] | None,
    room_id: str,
    who: Identity,
    *,
    meeting_id: int | None = None,
    worker: str = "",
) -> int | None:
    """Open a stay; its id, or None when there is no database or the write failed."""
    if sessions is None:
        return None
    try:
        async with sessions() as db:
            if meeting_id is None:  # a scheduled meeting's room: remember which meeting it was
                from scheduling.meeting_rooms import meeting_room

                meeting = await meeting_room(db, room_id)
                meeting_id = meeting.meeting_id if meeting is not None else None
            stay = RoomAttendance(
                room_id=room_id,
                meeting_id=meeting_id,
                user_id=who.user_id,
                unit_id=who.unit_id,
                guest=who.guest,
                worker=worker[:64],
            )
            db.add(stay)
            await db.commit()
            if stay.id is not None:
                _open.setdefault(sessions, set()).add(stay.id)
            return stay.id
    except Exception:  # usage figures must not stop a meeting
        log.exception("could not record joining room %s", room_id)
        return None


async def left(sessions: async_sessionmaker[AsyncSession] | None, stay_id: int | None) -> None:
    """Close a stay at now."""
    if sessions is None or stay_id is None:
        return
    mine = _open.get(sessions)
    if mine is not None:  # no more heartbeats even if the write below fails: close_stale then ends it
        mine.discard(stay_id)
        if not mine:
            _open.pop(sessions, None)
    try:
        async with sessions() as db:
            now = utcnow()
            values: dict[str, Any] = {"left_at": now, "seen_at": now}
            await db.execute(
                update(RoomAttendance)
                .where(col(RoomAttendance.id) == stay_id, col(RoomAttendance.left_at).is_(None))
                .values(**values)
            )
            await db.commit()
    except Exception:
        log.exception("could not record leaving (stay %s)", stay_id)


async def touch(sessions: async_sessionmaker[AsyncSession] | None, stay_ids: Iterable[int]) -> int:
    """Heartbeat: these open stays are still going (seen now); how many rows were refreshed."""
    ids = sorted(set(stay_ids))
    if sessions is None or not ids:
        return 0
    touched = 0
    async with sessions() as db:
        now = utcnow()
        for i in range(0, len(ids), 500):
            result: Any = await db.execute(
                update(RoomAttendance)
                .where(col(RoomAttendance.id).in_(ids[i : i + 500]), col(RoomAttendance.left_at).is_(None))
                .values(seen_at=now)
            )
            touched += result.rowcount or 0
        await db.commit()
    return touched


async def close_stale(
    sessions: async_sessionmaker[AsyncSession] | None, older_than: timedelta = STALE_AFTER
) -> int:
    """Close stays nobody has vouched for since `older_than` ago at their last heartbeat; how many."""
    if sessions is None:
        return 0
    async with sessions() as db:
        result: Any = await db.execute(
            update(RoomAttendance)
            .where(
                col(RoomAttendance.left_at).is_(None),
                col(RoomAttendance.seen_at) < utcnow() - older_than,
            )
            .values(left_at=col(RoomAttendance.seen_at))
        )
        await db.commit()
        closed = int(result.rowcount or 0)
    if closed:
        log.info("closed %s meeting stay(s) left open by a worker that stopped", closed)
    return closed


async def heartbeat_job(state: Any) -> int:
    """Job: refresh this process's open stays."""
    sessions = getattr(state, "db_sessions", None)
    return await touch(sessions, open_stays(sessions)) if sessions is not None else 0


async def close_stale_job(state: Any) -> int:
    """Job: close stays left open by dead workers (every worker runs it; the update is idempotent)."""
    return await close_stale(getattr(state, "db_sessions", None))


# --- figures ------------------------------------------------------------------------------------------


class _TokyoDay(FunctionElement[str]):
    """The Asia/Tokyo calendar day of a UTC timestamp, as a value to group by (never bound parameters:
    PostgreSQL must see the same expression in SELECT and GROUP BY)."""

    type = String()
    inherit_cache = True
    name = "tokyo_day"


@compiles(_TokyoDay, "sqlite")
def _tokyo_day_sqlite(element: _TokyoDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, '+9 hours')"


@compiles(_TokyoDay, "postgresql")
def _tokyo_day_pg(element: _TokyoDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'Asia/Tokyo' AS DATE)"


class _Seconds(FunctionElement[float]):
    """Seconds from the first timestamp to the second."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({b}) - julianday({a})) * 86400.0)"


@compiles(_Seconds, "postgresql")
def _seconds_pg(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({b} - {a}))"


def tokyo_midnight(day: date) -> datetime:
    """The UTC instant a Tokyo day begins."""
    return datetime.combine(day, time.min, tzinfo=TOKYO).astimezone(UTC)


def month_bounds(first: date) -> tuple[date, date]:
    """First and last day of the month of `first`."""
    start = first.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)


@dataclass
class UnitUsage:
    """One row: the people of one unit (or the guests, or staff with no unit)."""

    unit_id: int | None
    guest: bool
    meetings: int = 0  # meetings held with someone of this unit in them
    participants: int = 0
    minutes: int = 0


@dataclass
class Usage:
    """Online-meeting figures for a period (whole Tokyo days, first to last inclusive)."""

    first: date
    last: date
    meetings: int = 0
    scheduled: int = 0  # of which in a scheduled meeting's room
    participants: int = 0
    minutes: int = 0
    units: list[UnitUsage] = field(default_factory=list)


async def usage(
    db: AsyncSession,
    first: date,
    last: date,
    *,
    units: set[int] | None = None,
    now: datetime | None = None,
) -> Usage:
    """The figures for [first, last] (Tokyo days), aggregated in the database; `units` limits the rows (and
    the totals) to those units' people, e.g. a unit head's subtree. None: everyone, guests included."""
    start, end = tokyo_midnight(first), tokyo_midnight(last + timedelta(days=1))
    now = now or utcnow()
    A = RoomAttendance
    joined_at, left_at = col(A.joined_at), col(A.left_at)
    day = _TokyoDay(joined_at)
    who = func.coalesce(col(A.user_id), -col(A.id))  # a person, or one guest stay
    # One row per participant of each room-day (a reconnect is the same person), in their unit of the day.
    present = (
        select(
            col(A.room_id).label("room_id"),
            day.label("day"),
            who.label("who"),
            col(A.guest).label("guest"),
            func.min(col(A.unit_id)).label("unit_id"),
            func.max(col(A.meeting_id)).label("meeting_id"),
        )
        .where(joined_at >= start, joined_at < end)
        .group_by(col(A.room_id), day, who, col(A.guest))
        .cte("present")
    )
    held = (
        select(
            present.c.room_id,
            present.c.day,
            func.count().label("people"),
            func.max(present.c.meeting_id).label("meeting_id"),
        )
        .group_by(present.c.room_id, present.c.day)
        .having(func.count() >= 2)
        .cte("held")
    )
    in_scope = present.c.unit_id.in_(sorted(units)) if units is not None else None
    per = (
        select(
            present.c.unit_id,
            present.c.guest,
            present.c.room_id,
            present.c.day,
            func.count().label("people"),
            func.max(present.c.meeting_id).label("meeting_id"),
        )
        .join(held, and_(held.c.room_id == present.c.room_id, held.c.day == present.c.day))
        .where(*([in_scope] if in_scope is not None else []))
        .group_by(present.c.unit_id, present.c.guest, present.c.room_id, present.c.day)
        .cte("per")
    )
    meetings: Any = held
    if in_scope is not None:  # the held meetings with someone in scope, counting only those people
        meetings = (
            select(
                func.sum(per.c.people).label("people"),
                func.max(per.c.meeting_id).label("meeting_id"),
            )
            .group_by(per.c.room_id, per.c.day)
            .subquery()
        )
    # One statement, so each CTE is computed once: the per-unit rows (kind 0) and the totals (kind 1).
    by_unit = select(
        literal_column("0").label("kind"),
        per.c.unit_id,
        per.c.guest,
        func.count().label("meetings"),
        func.sum(per.c.people).label("people"),
        literal_column("0").label("scheduled"),
    ).group_by(per.c.unit_id, per.c.guest)
    totals: Any = select(
        literal_column("1"),
        null(),
        null(),
        func.count(),
        func.coalesce(func.sum(meetings.c.people), 0),
        func.count(meetings.c.meeting_id),
    )
    result = Usage(first=first, last=last)
    rows: dict[tuple[int | None, bool], UnitUsage] = {}
    for kind, unit_id, guest, count, people, scheduled in await db.execute(union_all(by_unit, totals)):
        if int(kind) == 1:
            result.meetings, result.participants, result.scheduled = int(count), int(people), int(scheduled)
        else:
            rows[(unit_id, bool(guest))] = UnitUsage(unit_id, bool(guest), int(count), int(people or 0))

    stop = min(end, now)
    if stop > start:
        lo, hi = literal(start, UTCDateTime()), literal(stop, UTCDateTime())
        clipped = _Seconds(
            case((joined_at < lo, lo), else_=joined_at),
            case((or_(left_at.is_(None), left_at > hi), hi), else_=left_at),
        )
        minutes = (
            select(col(A.unit_id), col(A.guest), func.sum(clipped))
            .where(
                joined_at < stop,
                or_(left_at.is_(None), left_at > start),
                *([col(A.unit_id).in_(sorted(units))] if units is not None else []),
            )
            .group_by(col(A.unit_id), col(A.guest))
        )
        for unit_id, guest, seconds in await db.execute(minutes):
            row = rows.setdefault((unit_id, bool(guest)), UnitUsage(unit_id, bool(guest)))
            row.minutes = round(float(seconds or 0) / 60)
    result.units = [r for r in rows.values() if r.meetings or r.minutes]
    result.minutes = sum(r.minutes for r in result.units)
    return result


async def measures(db: AsyncSession, first: date, last: date) -> list[tuple[str, int]]:
    """Beside the telework indicator: online meetings held, their participants and participant-minutes."""
    figures = await usage(db, first, last)
    return [
        ("rtc.measure.meetings_held", figures.meetings),
        ("rtc.measure.participants", figures.participants),
        ("rtc.measure.participant_minutes", figures.minutes),
    ]
