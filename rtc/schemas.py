"""Input and output shapes of the rooms API."""

from __future__ import annotations

from typing import Annotated

import msgspec


class RoomIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An instant meeting: open to every signed-in person, or only to the creator's invitees."""

    title: Annotated[str, msgspec.Meta(max_length=100)] = ""
    open: bool = True
    invitees: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]], msgspec.Meta(max_length=200)
    ] = msgspec.field(default_factory=list)


class RoomRead(msgspec.Struct, kw_only=True):
    id: str
    url: str
    title: str
    open: bool
    created_by: int
    created_by_name: str
    created_at: str
    invitees: list[int]
    participants: int = 0
    max_participants: int = 0


class GuestForm(msgspec.Struct, kw_only=True):
    """The guest's link token (again) and the name the others will see."""

    t: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""
