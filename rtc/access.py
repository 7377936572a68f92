"""Who is at the door of a room: the signed-in person (session cookie) or a guest (guest cookie), and how the
room lets them in (host, straight in, or through the lobby).

The transport (`rtc.signalling`) asks this module once per socket, before any media work; the answer is an
`Identity` that can cross to another worker (plain data), so the worker holding the room trusts the worker
that checked the cookie. What changes during a meeting (lock, lobby, removals, end) is not decided here but by
the worker holding the room (`rtc.moderation`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from litestar import WebSocket
from litestar.connection import ASGIConnection

from app import signing
from app.errors import DomainError
from app.security import current_principal
from app.settings import Settings
from rtc import rooms

GUEST_LINK = "rtc.guest"  # the link in the invitation mail (made by scheduling.invitations)
GUEST_SESSION = "rtc.guest-session"  # the cookie set once the guest has given their name
GUEST_COOKIE = "th_guest"
GUEST_SESSION_SECONDS = 4 * 3600


@dataclass(frozen=True)
class Identity:
    """A participant as the room sees them: a person from the directory, or a guest (``user_id`` None)."""

    user_id: int | None
    name: str
    unit_id: int | None = None
    guest: bool = False
    email: str = ""
    host: bool = False  # may admit, mute, remove, lock and end
    lobby: bool = False  # waits until a host admits them
    meeting_id: int | None = None  # the scheduled meeting whose room this is

    @property
    def key(self) -> str:
        """Who this is across reconnects (for the room's ban list and 'already admitted')."""
        return f"user:{self.user_id}" if self.user_id is not None else f"guest:{self.email.lower()}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def guest_session_token(settings: Settings, claims: dict[str, Any]) -> str:
    """The guest cookie's value: the link's room, meeting and address with the name the guest gave."""
    keep = {k: claims[k] for k in ("r", "e", "n", "m")}
    return signing.sign(
        settings.secret_key, GUEST_SESSION, keep, expires_at=time.time() + GUEST_SESSION_SECONDS
    )


def guest_claims(connection: ASGIConnection[Any, Any, Any, Any], room_id: str) -> dict[str, Any] | None:
    """The guest behind this request's guest cookie, if it is valid and for this room."""
    token = connection.cookies.get(GUEST_COOKIE)
    if not token:
        return None
    try:
        claims = signing.verify(connection.app.state.settings.secret_key, GUEST_SESSION, token)
    except signing.BadToken:
        return None
    if claims.get("r") != room_id or not isinstance(claims.get("n"), str):
        return None
    return claims


async def admit(socket: WebSocket[Any, Any, Any], room_id: str) -> Identity:
    """Who is behind this socket and how they may enter; DomainError (401/403/404/410) otherwise.

    The error's ``code`` parameter, when given, names the refusal the page shows (``rtc.error.<code>``).
    """
    person = current_principal(socket)
    store = socket.app.state.backends.store
    async with socket.app.state.db_sessions() as db:
        if person is not None:
            door = await rooms.door(store, db, person, room_id)
            return Identity(
                user_id=person.id,
                name=person.name,
                unit_id=person.unit_id,
                host=door.host,
                lobby=door.lobby,
                meeting_id=door.meeting_id,
            )
        claims = guest_claims(socket, room_id)
        if claims is None:
            raise DomainError("rtc.error.sign_in", status_code=401, code="sign_in")
        door = await rooms.guest_door(db, room_id, claims.get("m"), claims.get("e"))
        return Identity(
            user_id=None,
            name=claims["n"],
            guest=True,
            email=str(claims["e"]),
            lobby=True,
            meeting_id=door.meeting_id,
        )
