"""Meeting usage: each participant's stay is a `RoomAttendance` row, opened on joining and closed on leaving.

These are the facts behind the online-meeting figures (meetings held, participants, participant-minutes per
month and unit). A write that fails must never keep anyone out of a meeting: errors are logged, not raised.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import utcnow
from rtc.access import Identity
from rtc.models import RoomAttendance

log = logging.getLogger("telework.rtc.usage")


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
            return stay.id
    except Exception:  # usage figures must not stop a meeting
        log.exception("could not record joining room %s", room_id)
        return None


async def left(sessions: async_sessionmaker[AsyncSession] | None, stay_id: int | None) -> None:
    """Close a stay at now."""
    if sessions is None or stay_id is None:
        return
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
