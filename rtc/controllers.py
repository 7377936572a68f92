"""HTTP for meetings: instant rooms, the meeting page, and a guest's way in by a signed link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, JSONBody, PathParameter, QueryParameter
from litestar.response import File, Redirect, Template

from app import signing
from app.deps import DB
from app.errors import DomainError, Forbidden
from app.i18n import catalog
from app.security import Principal, signed_in
from app.web import NavItem, page_context, request_locale
from rtc import access, rooms, schemas

NAV = [NavItem("/rooms", "nav.rooms")]
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"meeting.js": "text/javascript; charset=utf-8", "meeting.css": "text/css; charset=utf-8"}
RoomId = Annotated[str, PathParameter(min_length=8, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Token = Annotated[str, QueryParameter(max_length=4096)]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


async def _read(request: Request[Any, Any, Any], room: rooms.Room) -> schemas.RoomRead:
    service = request.app.state.rtc  # the head count comes from the worker holding the room
    return room.read(
        participants=await service.participants(room.id), max_participants=service.sfu.max_participants
    )


class RoomApi(Controller):
    """Instant meetings: any signed-in person opens one and shares its link."""

    path = "/api/rooms"
    tags = ["meetings"]
    guards = [signed_in]

    @post("/", operation_id="createRoom")
    async def create_room(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.RoomIn]
    ) -> schemas.RoomRead:
        """A new room; its page is at `url`."""
        room = await rooms.create_room(request.app.state.backends.store, db, request.user, data)
        return await _read(request, room)

    @get("/{room_id:str}", operation_id="getRoom")
    async def get_room(self, request: Request[Principal, Any, Any], room_id: RoomId) -> schemas.RoomRead:
        """A room, for the people who may join it."""
        return await _read(
            request, await rooms.room_for(request.app.state.backends.store, request.user, room_id)
        )


class RoomPages(Controller):
    """The meetings page (start a meeting) and the meeting page."""

    path = "/rooms"
    guards = [signed_in]
    include_in_schema = False

    @get("/", media_type=MediaType.HTML)
    async def start_page(self, request: Request[Principal, Any, Any]) -> Template:
        return Template("rtc/start.html", context=page_context(request))

    @post("/", status_code=303)
    async def start(self, request: Request[Principal, Any, Any], db: DB) -> Redirect:
        room = await rooms.create_room(request.app.state.backends.store, db, request.user, schemas.RoomIn())
        return Redirect(f"/rooms/{room.id}", status_code=303)

    @get("/{room_id:str}", media_type=MediaType.HTML)
    async def room_page(self, request: Request[Principal, Any, Any], db: DB, room_id: RoomId) -> Template:
        door = await rooms.door(request.app.state.backends.store, db, request.user, room_id)
        return _meeting_page(request, door, guest=False)


def _meeting_page(request: Request[Any, Any, Any], door: rooms.Door, *, guest: bool) -> Template:
    """The meeting page: the same page and script for staff and guests; the socket says who may do what."""
    locale = request_locale(request)
    messages = {k.removeprefix("rtc.js."): v for k, v in catalog(locale).items() if k.startswith("rtc.js.")}
    messages.update(
        {k.removeprefix("rtc."): v for k, v in catalog(locale).items() if k.startswith("rtc.error.")}
    )
    room_url = request.app.state.settings.base_url + f"/rooms/{door.room_id}"
    rejoin = f"/rooms/{door.room_id}/guest/meeting" if guest else f"/rooms/{door.room_id}"
    return Template(
        "rtc/room.html",
        context=page_context(
            request, room=door, messages=messages, room_url=room_url, guest=guest, rejoin_url=rejoin
        ),
    )


def _guest_link(request: Request[Any, Any, Any], room_id: str, token: str) -> dict[str, Any]:
    """The claims of a guest link for this room; a clear 4xx for a forged, altered or expired one."""
    try:
        claims = signing.verify(request.app.state.settings.secret_key, access.GUEST_LINK, token)
    except signing.BadToken as exc:
        if exc.expired:
            raise DomainError("rtc.guest.expired", status_code=410) from exc
        raise DomainError("rtc.guest.bad_link") from exc
    if (
        claims.get("r") != room_id
        or not isinstance(claims.get("e"), str)
        or not isinstance(claims.get("n"), str)
    ):
        raise DomainError("rtc.guest.bad_link")
    return claims


class GuestPages(Controller):
    """People from outside the city: the signed link in their invitation, their name, then the lobby.

    No sign-in (no guard): the link is the authority, checked against the meeting each time.
    """

    path = "/rooms/{room_id:str}/guest"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML)
    async def guest_page(
        self, request: Request[Any, Any, Any], db: DB, room_id: RoomId, t: Token
    ) -> Template:
        claims = _guest_link(request, room_id, t)
        door = await rooms.guest_door(db, room_id, claims.get("m"), claims["e"])
        return Template(
            "rtc/guest.html",
            context=page_context(request, room=door, token=t, name=claims["n"]),
        )

    @post("/", status_code=303)
    async def enter(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        room_id: RoomId,
        data: Annotated[schemas.GuestForm, Form],
    ) -> Redirect:
        """Keep the guest's name in a short-lived signed cookie for this room only, then open the meeting."""
        claims = _guest_link(request, room_id, data.t)
        await rooms.guest_door(db, room_id, claims.get("m"), claims["e"])
        name = " ".join(data.name.split()) or claims["n"]
        settings = request.app.state.settings
        cookie = Cookie(
            key=access.GUEST_COOKIE,
            value=access.guest_session_token(settings, {**claims, "n": name[:100]}),
            path=f"/rooms/{room_id}",
            httponly=True,
            secure=settings.base_url.startswith("https"),
            samesite="lax",
            max_age=access.GUEST_SESSION_SECONDS,
        )
        return Redirect(f"/rooms/{room_id}/guest/meeting", status_code=303, cookies=[cookie])

    @get("/meeting", media_type=MediaType.HTML)
    async def meeting_page(self, request: Request[Any, Any, Any], db: DB, room_id: RoomId) -> Template:
        claims = access.guest_claims(request, room_id)
        if claims is None:
            raise Forbidden("rtc.guest.session_expired")
        door = await rooms.guest_door(db, room_id, claims.get("m"), claims.get("e"))
        return _meeting_page(request, door, guest=True)


@get("/rtc/static/{name:str}", include_in_schema=False, cache_control=None)
async def asset(name: Annotated[str, PathParameter(max_length=40)]) -> File:
    """The meeting page's script and styles (no CDN, no build step)."""
    if name not in ASSETS:
        raise NotFoundException()
    return File(STATIC / name, media_type=ASSETS[name], content_disposition_type="inline")
