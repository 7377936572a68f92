"""Stores and counters shared by every worker: memory in the embedded profile, Redis when configured."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from app.settings import Settings


@runtime_checkable
class Counter(Protocol):
    async def hit(self, key: str, window_seconds: int) -> int: ...
    async def count(self, key: str) -> int: ...
    async def ttl(self, key: str) -> int: ...
    async def reset(self, key: str) -> None: ...


class MemoryCounter:
    """Fixed-window counters in process memory (one worker only)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, float]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[int, float]:
        value, expires = self._data.get(key, (0, 0.0))
        if expires <= time.monotonic():
            self._data.pop(key, None)
            return 0, 0.0
        return value, expires

    async def hit(self, key: str, window_seconds: int) -> int:
        async with self._lock:
            value, expires = self._live(key)
            if not expires:
                expires = time.monotonic() + window_seconds
            self._data[key] = (value + 1, expires)
            return value + 1

    async def count(self, key: str) -> int:
        return self._live(key)[0]

    async def ttl(self, key: str) -> int:
        _, expires = self._live(key)
        return max(0, int(expires - time.monotonic())) if expires else 0

    async def reset(self, key: str) -> None:
        self._data.pop(key, None)


class RedisCounter:
    """Fixed-window counters in Redis: INCR is atomic, so every worker sees the same count."""

    def __init__(self, client: Redis, prefix: str = "telework:counter:") -> None:
        self._redis = client
        self._prefix = prefix

    async def hit(self, key: str, window_seconds: int) -> int:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds, nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def count(self, key: str) -> int:
        value = await self._redis.get(self._prefix + key)
        return int(value or 0)

    async def ttl(self, key: str) -> int:
        return max(0, int(await self._redis.ttl(self._prefix + key)))

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)


class Backends:
    """The store and counter for this process, built once from settings."""

    def __init__(self, settings: Settings) -> None:
        self.redis: Redis | None = None
        self.store: Store
        self.counter: Counter
        if settings.redis_url:
            self.redis = Redis.from_url(settings.redis_url)
            self.store = RedisStore(self.redis, namespace="telework", handle_client_shutdown=False)
            self.counter = RedisCounter(self.redis)
        else:
            self.store = MemoryStore()
            self.counter = MemoryCounter()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
