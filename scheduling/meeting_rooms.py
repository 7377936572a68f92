"""What rtc may read about a scheduled meeting's room (ARCHITECTURE: rtc reads scheduling's public functions).

A scheduled meeting owns one room id for its whole life; its room is not in the room store but is built
from the meeting on demand, so it never expires while the series runs and a change of attendees or
co-hosts applies at the next join.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from auth.models import User
from scheduling.models import Meeting, MeetingAttendee


@dataclass(frozen=True)
class MeetingRoom:
    meeting_id: int
    room_id: str
    title: str
    organizer_id: int
    organizer_name: str
    cohost_ids: frozenset[int]  # named co-hosts (users); the organizer is a host too
    invitee_ids: frozenset[int]  # every invited user, co-hosts included
    guest_emails: frozenset[str]  # outside addresses invited (lower case)
    lobby: bool  # hold everyone but the hosts until admitted
    cancelled: bool

    @property
    def host_ids(self) -> frozenset[int]:
        return self.cohost_ids | {self.organizer_id}


async def meeting_room(db: AsyncSession, room_id: str) -> MeetingRoom | None:
    """The room of the scheduled meeting with this room id, or None if no meeting has it."""
    meeting = (await db.execute(select(Meeting).where(col(Meeting.room_id) == room_id))).scalars().first()
    if meeting is None or meeting.id is None:
        return None
    organizer = await db.get(User, meeting.organizer_id)
    attendees = (
        (await db.execute(select(MeetingAttendee).where(col(MeetingAttendee.meeting_id) == meeting.id)))
        .scalars()
        .all()
    )
    return MeetingRoom(
        meeting_id=meeting.id,
        room_id=meeting.room_id,
        title=meeting.title,
        organizer_id=meeting.organizer_id,
        organizer_name=organizer.name if organizer is not None else "",
        cohost_ids=frozenset(a.user_id for a in attendees if a.user_id is not None and a.role == "cohost"),
        invitee_ids=frozenset(a.user_id for a in attendees if a.user_id is not None),
        guest_emails=frozenset(a.email.lower() for a in attendees if a.user_id is None),
        lobby=meeting.lobby,
        cancelled=meeting.status == "cancelled",
    )
