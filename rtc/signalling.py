"""The meeting WebSocket (transport): origin and identity checks, then the session (`rtc.session`) over it.

`RtcService` is this worker's SFU, the channels that fan room events out (Redis when configured, so several
web workers share them), the rosters of the rooms held here and this worker's place among the others
(`rtc.cluster`). A socket for a room held by another worker is relayed there (`rtc.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket as socket_module
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from aiortc import RTCIceServer
from litestar import WebSocket, websocket
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.channels.subscriber import Subscriber
from litestar.exceptions import WebSocketDisconnect
from litestar.params import PathParameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import DomainError
from app.i18n import translate
from app.settings import Settings, SettingsError
from app.web import request_locale
from rtc import access, relay, session
from rtc.cluster import Cluster, worker_channel
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
        self.redis = redis
        backend = RedisChannelsPubSubBackend(redis=redis) if redis is not None else MemoryChannelsBackend()
        self.channels = ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True)
        self.rosters: dict[str, dict[str, dict[str, Any]]] = {}
        # The links of the stays running here (sockets and relays from other workers), by room.
        self.links: dict[str, set[Closable]] = {}
        # Sockets of this worker relayed to the worker holding their room.
        self.fronts: set[Closable] = set()
        self.cluster = Cluster(redis, self.worker_id, self._rooms_in_use, self._room_lost)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        await self._stack.enter_async_context(self.channels)
        if self.cluster.shared:
            subscriber = await self._stack.enter_async_context(
                self.channels.start_subscription([worker_channel(self.worker_id)])
            )
            self._spawn(self._listen(subscriber))
        await self.cluster.start()

    async def stop(self) -> None:
        """Give the rooms back first (others may take them at once), then tell everyone here to rejoin."""
        await self.cluster.stop()
        for link in [*self.fronts, *(link for links in self.links.values() for link in links)]:
            with contextlib.suppress(Exception):
                await link.refuse("server_gone", relay.GONE_CLOSE_CODE)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.sfu.close()
        await self._stack.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("rtc task failed", exc_info=task.exception())

    async def _listen(self, subscriber: Subscriber) -> None:
        """This worker's channel: participants relayed here by the worker that holds their socket."""
        async for raw in subscriber.iter_events():
            try:
                request = json.loads(raw)
            except ValueError:
                continue
            if isinstance(request, dict) and request.get("op") == "connect":
                self._spawn(relay.serve(self, request))

    @contextlib.contextmanager
    def hosting(self, room_id: str, link: Closable) -> Iterator[None]:
        """A stay in ``room_id`` runs here over ``link`` (kept for the heartbeat, a lost room, shutdown)."""
        self.links.setdefault(room_id, set()).add(link)
        try:
            yield
        finally:
            links = self.links.get(room_id)
            if links is not None:
                links.discard(link)
                if not links:
                    self.links.pop(room_id, None)
            self._spawn(self.cluster.report(room_id, len(self.rosters.get(room_id, {}))))

    def _rooms_in_use(self) -> dict[str, int]:
        return {room: len(self.rosters.get(room, {})) for room in self.links}

    async def _room_lost(self, room_id: str) -> None:
        for link in list(self.links.get(room_id, ())):
            with contextlib.suppress(Exception):
                await link.refuse("server_gone", relay.GONE_CLOSE_CODE)

    async def participants(self, room_id: str) -> int:
        """People in the room now, wherever it is held (the holder reports its head count every second)."""
        if room_id in self.rosters or not self.cluster.shared:
            return len(self.rosters.get(room_id, {}))
        try:
            return await self.cluster.participants(room_id) or 0
        except Exception:  # a count must not break the page
            log.warning("could not read the head count of room %s", room_id)
            return 0

    def publish(self, room_id: str, event: dict[str, Any]) -> None:
        self.channels.publish(json.dumps(event, ensure_ascii=False), f"rtc.{room_id}")

    def media_room(self, room_id: str) -> MediaRoom:
        async def on_event(event: dict[str, Any]) -> None:
            self.publish(room_id, event)

        return self.sfu.room(room_id, on_event)


class Closable(Protocol):
    async def refuse(self, code: str, close_code: int) -> None: ...


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
        await _stay(service, link, room_id, who, first)
    finally:
        link.closed = True


async def _stay(
    service: RtcService, link: SocketLink, room_id: str, who: access.Identity, first: Any
) -> None:
    """Run the stay here if the room lives here (or nobody holds it), else relay it to its worker."""
    not_answering = ""
    for _ in range(4):
        holder = await service.cluster.place(room_id, not_answering=not_answering)
        if holder == service.worker_id:
            with service.hosting(room_id, link):
                await session.run(service, link, room_id, who, first)
            return
        service.fronts.add(link)
        try:
            outcome, _named = await relay.front(service, link, room_id, who, first, holder)
        finally:
            service.fronts.discard(link)
        if outcome is relay.Outcome.DONE:
            return
        not_answering = holder if outcome is relay.Outcome.SILENT else ""
        log.info("room %s: worker %s %s; placing again", room_id, holder, outcome.value)
    await link.refuse("server_gone", relay.GONE_CLOSE_CODE)
