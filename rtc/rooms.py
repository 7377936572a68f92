"""Rooms: who may join which meeting. Kept in the shared store (memory or Redis) so every worker sees them."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from litestar.stores.base import Store
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.errors import Forbidden, NotFound
from app.security import Principal
from rtc import schemas

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
