"""The meeting WebSocket: a JSON protocol between the page and the SFU (README, "RTC / meetings").

Negotiation (offer/answer/ICE) stays between the socket and this worker's SFU; what everyone in the room must
see (who came and went, mute and camera state, raised hands, chat, active speaker) is published on the room's
channel, so it also reaches sockets held by other workers when channels run on Redis. Media never goes through
the channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from aiortc import RTCIceServer
from litestar import WebSocket, websocket
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.exceptions import WebSocketDisconnect
from litestar.params import PathParameter

from app.errors import DomainError
from app.i18n import translate
from app.security import current_principal
from app.settings import Settings, SettingsError
from app.web import request_locale
from rtc import rooms
from rtc.sfu import CapacityExceeded, MediaRoom, RoomFull, Sfu

log = logging.getLogger("telework.rtc")

JOIN_TIMEOUT = 30.0
CHAT_MAX = 1000
STATE_FLAGS = ("muted", "camera", "screen", "hand")


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

    def __init__(self, settings: Settings, redis: Any | None) -> None:
        self.settings = settings
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


class Connection:
    """One open meeting socket: sends are serialised, since negotiation and fan-out both write to it."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self.socket = socket
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


@websocket("/rooms/{room_id:str}/ws")
async def room_socket(socket: WebSocket[Any, Any, Any], room_id: Annotated[str, PathParameter()]) -> None:
    """Signalling for one participant, identified by the session cookie (auth middleware covers WebSocket)."""
    service: RtcService = socket.app.state.rtc
    locale = request_locale(socket)
    await socket.accept()
    conn = Connection(socket)

    async def refuse(code: str, close_code: int) -> None:
        await conn.send({"type": "error", "code": code, "message": translate(locale, f"rtc.error.{code}")})
        await socket.close(code=close_code)

    origin = socket.headers.get("origin")
    allowed = {socket.headers.get("host"), urlsplit(service.settings.base_url).netloc}
    if origin and urlsplit(origin).netloc not in allowed:  # another site's page must not join as our user
        await refuse("origin", 4403)
        return
    person = current_principal(socket)
    if person is None:
        await refuse("sign_in", 4401)
        return
    try:
        await rooms.room_for(socket.app.state.backends.store, person, room_id)
    except DomainError as exc:
        await refuse("not_found" if exc.status_code == 404 else "not_invited", 4000 + exc.status_code)
        return
    try:
        first = await asyncio.wait_for(socket.receive_json(), JOIN_TIMEOUT)
    except (TimeoutError, WebSocketDisconnect, ValueError):
        await socket.close(code=4400)
        return
    if not isinstance(first, dict) or first.get("type") != "join":
        await refuse("protocol", 4400)
        return

    media = service.media_room(room_id)
    pid = secrets.token_hex(6)
    try:
        participant = await media.join(pid, conn.send, audio_only=bool(first.get("audioOnly")))
    except RoomFull:
        await refuse("room_full", 4409)
        return
    except CapacityExceeded:
        await refuse("capacity", 4503)
        return

    roster = service.rosters.setdefault(room_id, {})
    me = {
        "id": pid,
        "name": person.name,
        "user": person.id,
        "muted": bool(first.get("muted", False)),
        "camera": bool(first.get("camera", True)),
        "screen": False,
        "hand": False,
    }
    roster[pid] = me
    channel = f"rtc.{room_id}"
    try:
        async with service.channels.start_subscription([channel]) as subscriber:

            async def fan_out() -> None:
                async for raw in subscriber.iter_events():
                    await conn.send(json.loads(raw))

            relay = asyncio.create_task(fan_out())
            try:
                await conn.send(
                    {
                        "type": "welcome",
                        "you": pid,
                        "participants": list(roster.values()),
                        "iceServers": service.ice_servers,
                        "maxParticipants": service.sfu.max_participants,
                    }
                )
                service.publish(room_id, {"type": "joined", "participant": me})
                service.sfu.spawn(participant.negotiate)
                await _serve(conn, service, room_id, participant, me)
            finally:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
    finally:
        conn.closed = True
        roster.pop(pid, None)
        if not roster:
            service.rosters.pop(room_id, None)
        await media.leave(pid)
        service.publish(room_id, {"type": "left", "participant": pid})


async def _serve(
    conn: Connection, service: RtcService, room_id: str, participant: Any, me: dict[str, Any]
) -> None:
    """Handle the participant's messages until they leave or the socket drops."""
    socket = conn.socket
    while True:
        try:
            message = await socket.receive_json()
        except WebSocketDisconnect:
            return
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        kind = message.get("type")
        if kind == "answer" and isinstance(message.get("sdp"), str):
            participant.answer(message["sdp"])
        elif kind == "ice" and isinstance(message.get("candidate"), dict):
            with contextlib.suppress(Exception):  # a malformed or late candidate must not end the meeting
                await participant.add_ice_candidate(message["candidate"])
        elif kind == "state":
            changes = {k: bool(message[k]) for k in STATE_FLAGS if k in message}
            me.update(changes)
            service.publish(room_id, {"type": "state", "participant": me["id"], **changes})
        elif kind == "chat" and isinstance(message.get("text"), str) and message["text"].strip():
            service.publish(
                room_id,
                {
                    "type": "chat",
                    "from": me["id"],
                    "name": me["name"],
                    "text": message["text"].strip()[:CHAT_MAX],
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
        elif kind == "audio-only":
            await participant.set_audio_only(bool(message.get("on")))
        elif kind == "keyframe":
            for slot in participant.slots:
                if slot.source is not None:
                    await slot.source.request_keyframe()
        elif kind == "ping":
            await conn.send({"type": "pong"})
        elif kind == "leave":
            with contextlib.suppress(Exception):
                await socket.close()
            return
