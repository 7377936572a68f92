"""The meeting WebSocket (transport): origin and identity checks, then the session (`rtc.session`) over it.

`RtcService` is this worker's SFU, the channels that fan room events out (Redis when configured, so several
web workers share them) and the rosters of the rooms held here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket as socket_module
from contextlib import AsyncExitStack
from typing import Annotated, Any
from urllib.parse import urlsplit

from aiortc import RTCIceServer
from litestar import WebSocket, websocket
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.exceptions import WebSocketDisconnect
from litestar.params import PathParameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import DomainError
from app.i18n import translate
from app.settings import Settings, SettingsError
from app.web import request_locale
from rtc import access, session
from rtc.sfu import MediaRoom, Sfu

log = logging.getLogger("telework.rtc")

JOIN_TIMEOUT = 30.0


def ice_servers(raw: str) -> list[dict[str, Any]]:
    """RTC_ICE_SERVERS: a JSON list of {"urls", "username"?, "credential"?} (our own STUN/TURN), or empty."""
    if not raw.strip():
        return []
    try:
        value = json.loads(raw)
        servers = [
            {k: v for k, v in item.items() if k in ("urls", "username", "credential")}
            for item in value
            if isinstance(item, dict) and isinstance(item.get("urls"), (str, list))
        ]
    except (ValueError, TypeError, AttributeError) as exc:
        raise SettingsError(f"RTC_ICE_SERVERS must be a JSON list of ICE servers: {exc}") from exc
    if len(servers) != len(value):
        raise SettingsError('RTC_ICE_SERVERS: every entry needs "urls"')
    return servers


class RtcService:
    """This worker's SFU, the channels that fan signalling out, and the roster of each room held here."""

    def __init__(
        self,
        settings: Settings,
        redis: Any | None,
        db_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.settings = settings
        self.db_sessions = db_sessions
        # This process among the workers (host, pid and a random part, so a restarted pid is a new worker).
        self.worker_id = f"{socket_module.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.ice_servers = ice_servers(settings.rtc_ice_servers)
        self.sfu = Sfu(
            max_streams=settings.rtc_max_forwarded_streams,
            max_participants=settings.rtc_max_participants,
            video_cap_bps=settings.rtc_video_kbps * 1000,
            screen_cap_bps=settings.rtc_screen_kbps * 1000,
            ice_servers=[
                RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                for s in self.ice_servers
            ],
        )
        backend = RedisChannelsPubSubBackend(redis=redis) if redis is not None else MemoryChannelsBackend()
        self.channels = ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True)
        self.rosters: dict[str, dict[str, dict[str, Any]]] = {}
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        await self._stack.enter_async_context(self.channels)

    async def stop(self) -> None:
        await self.sfu.close()
        await self._stack.aclose()

    def publish(self, room_id: str, event: dict[str, Any]) -> None:
        self.channels.publish(json.dumps(event, ensure_ascii=False), f"rtc.{room_id}")

    def media_room(self, room_id: str) -> MediaRoom:
        async def on_event(event: dict[str, Any]) -> None:
            self.publish(room_id, event)

        return self.sfu.room(room_id, on_event)


class SocketLink:
    """A participant's WebSocket as a link; sends are serialised (negotiation and fan-out both write)."""

    def __init__(self, socket: WebSocket[Any, Any, Any], locale: str) -> None:
        self.socket = socket
        self.locale = locale
        self._lock = asyncio.Lock()
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                await self.socket.send_json(message)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True

    async def receive(self) -> dict[str, Any] | None:
        """The next protocol message (anything not a JSON object is skipped); None once the socket is gone."""
        while not self.closed:
            try:
                message = await self.socket.receive_json()
            except WebSocketDisconnect:
                self.closed = True
                return None
            except ValueError:
                continue
            if isinstance(message, dict):
                return message
        return None

    async def refuse(self, code: str, close_code: int) -> None:
        """Tell the page why, in its language, then close."""
        message = translate(self.locale, f"rtc.error.{code}")
        await self.send({"type": "error", "code": code, "message": message})
        await self.close(close_code)

    async def close(self, close_code: int = 1000) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self.socket.close(code=close_code)


REFUSALS = {401: ("sign_in", 4401), 403: ("not_invited", 4403), 404: ("not_found", 4404)}


@websocket("/rooms/{room_id:str}/ws")
async def room_socket(socket: WebSocket[Any, Any, Any], room_id: Annotated[str, PathParameter()]) -> None:
    """Signalling for one participant: origin and identity are checked here, the rest is `rtc.session`."""
    service: RtcService = socket.app.state.rtc
    await socket.accept()
    link = SocketLink(socket, request_locale(socket))

    origin = socket.headers.get("origin")
    allowed = {socket.headers.get("host"), urlsplit(service.settings.base_url).netloc}
    if origin and urlsplit(origin).netloc not in allowed:  # another site's page must not join as our user
        await link.refuse("origin", 4403)
        return
    try:
        who = await access.admit(socket, room_id)
    except DomainError as exc:
        code, close_code = REFUSALS.get(exc.status_code, ("not_invited", 4000 + exc.status_code))
        await link.refuse(exc.params.get("code", code), close_code)
        return
    try:
        first = await asyncio.wait_for(socket.receive_json(), JOIN_TIMEOUT)
    except (TimeoutError, WebSocketDisconnect, ValueError):
        await link.close(4400)
        return
    if not isinstance(first, dict) or first.get("type") != "join":
        await link.refuse("protocol", 4400)
        return
    try:
        await session.run(service, link, room_id, who, first)
    finally:
        link.closed = True
