"""A participant whose socket landed on one worker while their room lives on another: signalling is relayed.

The worker with the socket (the *front*) has checked origin and identity; it sends ``connect`` on the room
worker's channel ``rtc.worker.<id>`` with a connection id, the room, the `Identity` and the first message.
The room worker answers on ``rtc.conn.<id>.down`` (``accepted``, or ``moved`` when the room is elsewhere now)
and runs the ordinary session (`rtc.session.run`) over a `RelayLink`: what the session sends goes down that
channel to the front, which writes it to the socket; what the page sends goes up ``rtc.conn.<id>.up``.
Media does not take this path: the page's ICE reaches the room worker's own addresses.

Each side watches the other worker (`Cluster.watching`); a PUBLISH that reaches nobody means the same.
When the room worker dies, the front tells the page ``server_gone`` and closes with 1012 (service restart),
and the page reconnects; the room then moves to a live worker. When the front dies, the room worker ends
the relayed stay as if the socket had closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from rtc import session
from rtc.access import Identity
from rtc.cluster import worker_channel

if TYPE_CHECKING:
    from rtc.signalling import RtcService, SocketLink

log = logging.getLogger("telework.rtc.relay")

CONNECT_TIMEOUT = 2.0
GONE_CLOSE_CODE = 1012  # "service restart": the page reconnects


def _down(conn: str) -> str:
    return f"rtc.conn.{conn}.down"


def _up(conn: str) -> str:
    return f"rtc.conn.{conn}.up"


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Outcome(enum.Enum):
    DONE = "done"  # the stay ran on the room worker and is over
    MOVED = "moved"  # the room worker says the room is elsewhere now: place again
    SILENT = "silent"  # the room worker did not take the participant (dead or not answering): take over


class RelayLink:
    """The session's end of a relayed participant, on the room worker (a `rtc.session.Link`)."""

    def __init__(self, redis: Any, conn: str) -> None:
        self.redis = redis
        self.conn = conn
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False
        self._lock = asyncio.Lock()

    async def _publish(self, message: dict[str, Any]) -> None:
        async with self._lock:
            try:
                receivers = await self.redis.publish(_down(self.conn), _dumps(message))
            except (RedisError, OSError):
                receivers = 0
        if not receivers:  # the front is gone: the participant with it
            self.drop()

    def drop(self) -> None:
        """The participant is gone (front died or socket closed): end the stay."""
        self.closed = True
        self.inbox.put_nowait(None)

    async def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            await self._publish({"op": "send", "m": message})

    async def receive(self) -> dict[str, Any] | None:
        if self.closed and self.inbox.empty():
            return None
        message = await self.inbox.get()
        if message is None:
            self.closed = True
        return message

    async def refuse(self, code: str, close_code: int) -> None:
        if not self.closed:
            await self._publish({"op": "refuse", "code": code, "close": close_code})
        self.drop()

    async def close(self, close_code: int = 1000) -> None:
        if not self.closed:
            await self._publish({"op": "close", "close": close_code})
        self.drop()


async def serve(service: RtcService, request: dict[str, Any]) -> None:
    """On the room worker: take a relayed participant (a ``connect`` from a front) and run their stay."""
    conn, room_id, front = str(request["conn"]), str(request["room"]), str(request["front"])
    redis = service.redis
    assert redis is not None  # relays exist only with Redis
    holder = await service.cluster.place(room_id)
    if holder != service.worker_id:
        await redis.publish(_down(conn), _dumps({"op": "moved", "worker": holder}))
        return
    link = RelayLink(redis, conn)
    async with service.channels.start_subscription([_up(conn)]) as subscriber:

        async def pump_up() -> None:
            async for raw in subscriber.iter_events():
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("op") == "m" and isinstance(message.get("m"), dict):
                    link.inbox.put_nowait(message["m"])
                elif message.get("op") == "gone":
                    link.drop()
                    return

        async with service.cluster.watching(front) as front_gone:

            async def watch() -> None:
                await front_gone.wait()
                log.info("front worker %s went away; ending relayed stay %s", front, conn)
                link.drop()

            tasks = [asyncio.create_task(pump_up()), asyncio.create_task(watch())]
            try:
                await link._publish({"op": "accepted", "worker": service.worker_id})
                with service.hosting(room_id, link):
                    await session.run(
                        service, link, room_id, Identity.from_dict(request["who"]), request["first"]
                    )
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


async def front(
    service: RtcService, link: SocketLink, room_id: str, who: Identity, first: dict[str, Any], holder: str
) -> tuple[Outcome, str]:
    """On the worker with the socket: relay it to ``holder`` until the stay ends. The outcome, and for
    MOVED the worker named instead."""
    redis = service.redis
    assert redis is not None  # relays exist only with Redis
    conn = secrets.token_hex(8)
    async with service.channels.start_subscription([_down(conn)]) as subscriber:
        events = subscriber.iter_events()
        request = {
            "op": "connect",
            "conn": conn,
            "room": room_id,
            "who": who.to_dict(),
            "first": first,
            "front": service.worker_id,
        }
        if not await redis.publish(worker_channel(holder), _dumps(request)):
            return Outcome.SILENT, holder
        try:
            reply = json.loads(await asyncio.wait_for(anext(events), CONNECT_TIMEOUT))
        except (TimeoutError, StopAsyncIteration):
            log.warning("worker %s did not answer for room %s", holder, room_id)
            return Outcome.SILENT, holder
        if reply.get("op") == "moved":
            return Outcome.MOVED, str(reply.get("worker", ""))

        async with service.cluster.watching(holder) as holder_gone:

            async def pump_up() -> bool:
                """Socket → room worker; True when the room worker could not be reached."""
                while True:
                    message = await link.receive()
                    if message is None:
                        with contextlib.suppress(RedisError, OSError):
                            await redis.publish(_up(conn), _dumps({"op": "gone"}))
                        return False
                    try:
                        if not await redis.publish(_up(conn), _dumps({"op": "m", "m": message})):
                            return True
                    except (RedisError, OSError):
                        return True

            async def pump_down() -> bool:
                """Room worker → socket, until it closes the stay."""
                async for raw in events:
                    try:
                        message = json.loads(raw)
                        op = message.get("op")
                    except (ValueError, AttributeError):
                        log.warning("skipped a malformed relay message")
                        continue
                    if op == "send" and isinstance(message.get("m"), dict):
                        await link.send(message["m"])
                    elif op == "refuse":
                        await link.refuse(
                            str(message.get("code", "protocol")), int(message.get("close", 4400))
                        )
                        return False
                    elif op == "close":
                        await link.close(int(message.get("close", 1000)))
                        return False
                return False

            async def watch() -> bool:
                await holder_gone.wait()
                return True

            tasks = [asyncio.create_task(c) for c in (pump_up(), pump_down(), watch())]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        log.error("relay for room %s failed", room_id, exc_info=task.exception())
                if any(t.result() for t in done if not t.cancelled() and t.exception() is None):
                    log.warning("worker %s went away during a stay in room %s", holder, room_id)
                    await link.refuse("server_gone", GONE_CLOSE_CODE)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        return Outcome.DONE, holder
