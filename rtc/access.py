"""Who is at the door of a room: the signed-in person (session cookie) and whether the room lets them in.

The transport (`rtc.signalling`) asks this module once per socket, before any media work; the answer is an
`Identity` that can cross to another worker (plain data), so the worker holding the room trusts the worker
that checked the cookie.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from litestar import WebSocket

from app.errors import DomainError
from app.security import current_principal
from rtc import rooms


@dataclass(frozen=True)
class Identity:
    """A participant as the room sees them: a person from the directory, or a guest (``user_id`` None)."""

    user_id: int | None
    name: str
    unit_id: int | None = None
    guest: bool = False
    email: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(**{k: data[k] for k in ("user_id", "name", "unit_id", "guest", "email") if k in data})


async def admit(socket: WebSocket[Any, Any, Any], room_id: str) -> Identity:
    """The identity behind this socket, if it may enter the room's door; DomainError (401/403/404) otherwise.

    The error's ``code`` parameter, when given, names the refusal the page shows (``rtc.error.<code>``).
    """
    person = current_principal(socket)
    if person is None:
        raise DomainError("rtc.error.sign_in", status_code=401, code="sign_in")
    await rooms.room_for(socket.app.state.backends.store, person, room_id)
    return Identity(user_id=person.id, name=person.name, unit_id=person.unit_id)
