"""Rooms: who may join which meeting, and as what (host, straight in, or through the lobby).

Instant rooms are kept in the shared store (memory or Redis) so every worker sees them; a scheduled meeting's
room is read from scheduling (`scheduling.meeting_rooms`) when the store has no room of that id.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from litestar.stores.base import Store
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.errors import DomainError, Forbidden, NotFound
from app.security import Principal
from rtc import schemas
from scheduling.meeting_rooms import MeetingRoom, meeting_room

ROOM_TTL_SECONDS = 24 * 3600
ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


@dataclass
class Room:
    id: str
    title: str
    open: bool
    created_by: int
    created_by_name: str
    created_at: str
    invitees: list[int] = field(default_factory=list)

    def allows(self, person: Principal) -> bool:
        """An open room: anyone signed in. Otherwise the creator and the people invited."""
        return self.open or person.id == self.created_by or person.id in self.invitees

    def read(self, *, participants: int = 0, max_participants: int = 0) -> schemas.RoomRead:
        return schemas.RoomRead(
            id=self.id,
            url=f"/rooms/{self.id}",
            title=self.title,
            open=self.open,
            created_by=self.created_by,
            created_by_name=self.created_by_name,
            created_at=self.created_at,
            invitees=list(self.invitees),
            participants=participants,
            max_participants=max_participants,
        )


def _key(room_id: str) -> str:
    return f"rtc:room:{room_id}"


async def create_room(store: Store, db: AsyncSession, person: Principal, data: schemas.RoomIn) -> Room:
    """An instant meeting; it lasts a day, which covers any meeting and its late joiners."""
    room = Room(
        id=secrets.token_urlsafe(12),
        title=data.title.strip(),
        open=data.open,
        created_by=person.id,
        created_by_name=person.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        invitees=sorted(set(data.invitees) - {person.id}),
    )
    await store.set(_key(room.id), json.dumps(asdict(room)), expires_in=ROOM_TTL_SECONDS)
    audit.record(
        db,
        "rtc.room.create",
        actor_id=person.id,
        actor_label=person.name,
        entity_type="room",
        entity_id=room.id,
        after={"title": room.title, "open": room.open, "invitees": room.invitees},
    )
    await db.commit()
    return room


async def get_room(store: Store, room_id: str) -> Room:
    if not ROOM_ID.match(room_id):
        raise NotFound("rtc.room_not_found")
    raw = await store.get(_key(room_id))
    if raw is None:
        raise NotFound("rtc.room_not_found")
    return Room(**json.loads(raw))


async def room_for(store: Store, person: Principal, room_id: str) -> Room:
    """The room, if this person may join it."""
    room = await get_room(store, room_id)
    if not room.allows(person):
        raise Forbidden("rtc.not_invited")
    return room


@dataclass(frozen=True)
class Door:
    """What a room's door says to one person: the room as its page shows it, and how they come in."""

    room_id: str
    title: str
    host_name: str
    meeting_id: int | None  # None: an instant room
    host: bool  # may moderate: the creator of an instant room; a scheduled meeting's organizer and co-hosts
    lobby: bool  # waits until a host admits them


def cancelled() -> DomainError:
    return DomainError("rtc.meeting_cancelled", status_code=410, code="cancelled")


async def scheduled_room(db: AsyncSession, room_id: str) -> MeetingRoom:
    """The scheduled meeting's room, if it exists and is not cancelled."""
    if not ROOM_ID.match(room_id):
        raise NotFound("rtc.room_not_found")
    meeting = await meeting_room(db, room_id)
    if meeting is None:
        raise NotFound("rtc.room_not_found")
    if meeting.cancelled:
        raise cancelled()
    return meeting


async def door(store: Store, db: AsyncSession, person: Principal, room_id: str) -> Door:
    """How this signed-in person enters the room; NotFound, Forbidden or 410 (cancelled) otherwise.

    Instant room: its creator hosts; open rooms and invitees come straight in; others are refused.
    Scheduled meeting: organizer and co-hosts host; invitees come in (through the lobby when the meeting
    has one); other staff may knock and wait in the lobby for a host to decide.
    """
    if not ROOM_ID.match(room_id):
        raise NotFound("rtc.room_not_found")
    raw = await store.get(_key(room_id))
    if raw is not None:
        room = Room(**json.loads(raw))
        if not room.allows(person):
            raise Forbidden("rtc.not_invited")
        return Door(room.id, room.title, room.created_by_name, None, person.id == room.created_by, False)
    meeting = await scheduled_room(db, room_id)
    host = person.id in meeting.host_ids
    lobby = not host and (meeting.lobby or person.id not in meeting.invitee_ids)
    return Door(meeting.room_id, meeting.title, meeting.organizer_name, meeting.meeting_id, host, lobby)


async def guest_door(db: AsyncSession, room_id: str, meeting_id: object, email: object) -> Door:
    """A guest's way in: the meeting must still list their address. Guests always wait in the lobby."""
    meeting = await scheduled_room(db, room_id)
    if (
        meeting.meeting_id != meeting_id
        or not isinstance(email, str)
        or email.lower() not in meeting.guest_emails
    ):
        raise Forbidden("rtc.guest.not_invited", code="guest_removed")
    return Door(meeting.room_id, meeting.title, meeting.organizer_name, meeting.meeting_id, False, True)
