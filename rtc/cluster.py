"""Several web workers over one Redis: which worker holds each room, and whether a worker is still there.

A worker is alive while its heartbeat key ``rtc:worker:<id>`` exists (written every second with a 3 s TTL)
AND something is subscribed to its worker channel ``rtc.worker.<id>``. The second half makes a killed process
visible at once: its connection to Redis closes with it, so Redis drops the subscription the same moment; the
heartbeat TTL covers a hung process or a lost host, whose connection may linger.

Each room lives on exactly one worker, recorded in ``rtc:room-worker:<room>`` (its TTL is refreshed while the
room has people there). A worker claims a free room, or takes over one whose worker is dead, atomically in one
Lua script; a worker that finds its room taken by another (after it could not reach Redis for a while) is told
so, and closes that room's links so their pages rejoin where the room now lives.

Without Redis (the embedded default) there is one worker and everything is local.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("telework.rtc.cluster")

HEARTBEAT_TTL_MS = 3000
BEAT_SECONDS = 1.0
WATCH_SECONDS = 0.25
ROOM_TTL_MS = 15000
COUNT_TTL_MS = 3000

# Whether a worker is alive: heartbeat key present and its worker channel subscribed.
_ALIVE_LUA = """
local function alive(w)
  if redis.call('EXISTS', 'rtc:worker:' .. w) == 0 then return false end
  return redis.call('PUBSUB', 'NUMSUB', 'rtc.worker.' .. w)[2] > 0
end
"""

# KEYS[1] room key; ARGV[1] me, ARGV[2] TTL ms, ARGV[3] a worker that did not answer ("" for none).
# The room goes to me unless another live (and answering) worker holds it; returns the holder.
# (Reads keys not passed in KEYS: fine on one Redis server, which is what the deployment uses.)
PLACE = (
    _ALIVE_LUA
    + """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[3] and alive(cur) then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
)

# ARGV: worker ids; returns 1/0 for each.
ALIVE = (
    _ALIVE_LUA
    + """
local out = {}
for i, w in ipairs(ARGV) do out[i] = alive(w) and 1 or 0 end
return out
"""
)

# KEYS: room keys held here; ARGV[1] me, ARGV[2] TTL ms. Refreshes ours (or free ones); returns the indexes
# (1-based) of the rooms another worker holds now.
REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if not cur or cur == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

# KEYS: room keys; ARGV[1] me. Deletes those that are still mine.
RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


def worker_key(worker_id: str) -> str:
    return f"rtc:worker:{worker_id}"


def worker_channel(worker_id: str) -> str:
    return f"rtc.worker.{worker_id}"


def room_key(room_id: str) -> str:
    return f"rtc:room-worker:{room_id}"


def count_key(room_id: str) -> str:
    return f"rtc:room-count:{room_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Cluster:
    """This worker's place among the others: heartbeat, room placement, watching the workers it relays to.

    ``in_use()`` gives the rooms with people on this worker and how many; ``on_lost(room)`` is awaited when
    another worker turns out to hold one of them.
    """

    def __init__(
        self,
        redis: Any | None,
        worker_id: str,
        in_use: Callable[[], dict[str, int]],
        on_lost: Callable[[str], Awaitable[None]],
    ) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self._in_use = in_use
        self._on_lost = on_lost
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._held: set[str] = set()
        if redis is not None:
            self._place = redis.register_script(PLACE)
            self._alive = redis.register_script(ALIVE)
            self._refresh = redis.register_script(REFRESH)
            self._release = redis.register_script(RELEASE)

    @property
    def shared(self) -> bool:
        """True when rooms are placed through Redis (several workers may run)."""
        return self.redis is not None

    async def start(self) -> None:
        """First heartbeat now (once the worker channel is subscribed), then keep beating and watching."""
        if self.redis is None:
            return
        await self._beat()
        self._tasks = [asyncio.create_task(self._beat_loop()), asyncio.create_task(self._watch_loop())]

    async def stop(self) -> None:
        """Stop beating, give back the rooms held here and say this worker is gone: others take over now."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.redis is None:
            return
        rooms = sorted(self._held | set(self._in_use()))
        try:
            if rooms:
                await self._release(keys=[room_key(r) for r in rooms], args=[self.worker_id])
                await self.redis.delete(*[count_key(r) for r in rooms])
            await self.redis.delete(worker_key(self.worker_id))
        except (RedisError, OSError):
            log.warning("could not release rooms on stop; they move when the heartbeat expires")
        self._held.clear()

    async def place(self, room_id: str, *, not_answering: str = "") -> str:
        """The worker that holds the room: a live one already holding it, else this worker (claimed now).

        ``not_answering`` names a worker that holds the room but did not answer: it is passed over.
        """
        if self.redis is None:
            return self.worker_id
        holder = _text(
            await self._place(
                keys=[room_key(room_id)], args=[self.worker_id, ROOM_TTL_MS, not_answering or ""]
            )
        )
        if holder == self.worker_id:
            self._held.add(room_id)
        return holder

    async def holder(self, room_id: str) -> str | None:
        """Who holds the room now (None: nobody)."""
        if self.redis is None:
            return self.worker_id if room_id in self._in_use() else None
        value = await self.redis.get(room_key(room_id))
        return None if value is None else _text(value)

    async def alive(self, *workers: str) -> list[bool]:
        if self.redis is None:
            return [w == self.worker_id for w in workers]
        if not workers:
            return []
        return [bool(v) for v in await self._alive(keys=[], args=list(workers))]

    async def participants(self, room_id: str) -> int | None:
        """How many people the room's worker last reported (None: nobody reported)."""
        if self.redis is None:
            return None
        value = await self.redis.get(count_key(room_id))
        return None if value is None else int(value)

    @contextlib.asynccontextmanager
    async def watching(self, worker_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set once ``worker_id`` is found dead (checked every WATCH_SECONDS while watched)."""
        event = asyncio.Event()
        self._watchers.setdefault(worker_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(worker_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    self._watchers.pop(worker_id, None)

    async def _beat(self) -> None:
        """Heartbeat, keep the rooms with people here, report their head counts; hand over rooms lost."""
        assert self.redis is not None
        counts = self._in_use()
        rooms = sorted(counts)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(worker_key(self.worker_id), str(time.time()), px=HEARTBEAT_TTL_MS)
            for room in rooms:
                pipe.set(count_key(room), counts[room], px=COUNT_TTL_MS)
            await pipe.execute()
        lost: list[str] = []
        if rooms:
            result = await self._refresh(
                keys=[room_key(r) for r in rooms], args=[self.worker_id, ROOM_TTL_MS]
            )
            lost = [rooms[int(i) - 1] for i in result]
        self._held = (self._held & set(rooms)) | (set(rooms) - set(lost))
        for room in lost:
            log.warning("room %s is now held by another worker; its people rejoin there", room)
            await self._on_lost(room)

    async def report(self, room_id: str, participants: int) -> None:
        """Publish a room's head count now (besides every beat), e.g. right after someone joined or left."""
        if self.redis is None:
            return
        with contextlib.suppress(RedisError, OSError):
            if participants:
                await self.redis.set(count_key(room_id), participants, px=COUNT_TTL_MS)
            else:
                await self.redis.delete(count_key(room_id))

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                await self._beat()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            workers = sorted(self._watchers)
            if not workers:
                continue
            try:
                states = await self.alive(*workers)
            except (RedisError, OSError) as exc:
                log.warning("could not check workers: %s", exc)
                continue
            for worker, ok in zip(workers, states, strict=True):
                if not ok:
                    for event in self._watchers.get(worker, set()):
                        event.set()
