"""HTTP for meetings: create an instant room, read it, and the meeting page itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, PathParameter
from litestar.response import File, Redirect, Template

from app.deps import DB
from app.i18n import catalog
from app.security import Principal, signed_in
from app.web import NavItem, page_context, request_locale
from rtc import rooms, schemas

NAV = [NavItem("/rooms", "nav.rooms")]
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"meeting.js": "text/javascript; charset=utf-8", "meeting.css": "text/css; charset=utf-8"}
RoomId = Annotated[str, PathParameter(min_length=8, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _read(request: Request[Any, Any, Any], room: rooms.Room) -> schemas.RoomRead:
    service = request.app.state.rtc
    return room.read(
        participants=len(service.rosters.get(room.id, {})), max_participants=service.sfu.max_participants
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
        return _read(request, room)

    @get("/{room_id:str}", operation_id="getRoom")
    async def get_room(self, request: Request[Principal, Any, Any], room_id: RoomId) -> schemas.RoomRead:
        """A room, for the people who may join it."""
        return _read(request, await rooms.room_for(request.app.state.backends.store, request.user, room_id))


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
    async def room_page(self, request: Request[Principal, Any, Any], room_id: RoomId) -> Template:
        room = await rooms.room_for(request.app.state.backends.store, request.user, room_id)
        locale = request_locale(request)
        messages = {
            k.removeprefix("rtc.js."): v for k, v in catalog(locale).items() if k.startswith("rtc.js.")
        }
        messages.update(
            {k.removeprefix("rtc."): v for k, v in catalog(locale).items() if k.startswith("rtc.error.")}
        )
        room_url = request.app.state.settings.base_url + f"/rooms/{room.id}"
        return Template(
            "rtc/room.html", context=page_context(request, room=room, messages=messages, room_url=room_url)
        )


@get("/rtc/static/{name:str}", include_in_schema=False, cache_control=None)
async def asset(name: Annotated[str, PathParameter(max_length=40)]) -> File:
    """The meeting page's script and styles (no CDN, no build step)."""
    if name not in ASSETS:
        raise NotFoundException()
    return File(STATIC / name, media_type=ASSETS[name], content_disposition_type="inline")
