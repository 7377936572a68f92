"""Session lifetimes on the real stores (memory here; Redis when REDIS_URL is set)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from litestar.stores.memory import MemoryStore

from auth.sessions import SESSION_PREFIX, SessionManager


@pytest.fixture
async def store():
    url = os.environ.get("REDIS_URL")
    if not url:
        yield MemoryStore()
        return
    from litestar.stores.redis import RedisStore
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    yield RedisStore(client, namespace="telework-test-sessions", handle_client_shutdown=False)
    await client.aclose()


async def test_idle_timeout_ends_a_quiet_session_and_activity_extends_it(store):
    manager = SessionManager(store, idle_seconds=2, absolute_seconds=60)
    busy = await manager.create(1)
    quiet = await manager.create(2)
    for _ in range(3):
        await asyncio.sleep(0.9)
        assert await manager.load(busy.sid) is not None
    assert await manager.load(quiet.sid) is None


async def test_absolute_timeout_ends_even_a_busy_session(store):
    manager = SessionManager(store, idle_seconds=60, absolute_seconds=3600)
    record = await manager.create(1)
    raw = json.loads(await store.get(SESSION_PREFIX + record.sid))
    raw["created"] -= 3601
    await store.set(SESSION_PREFIX + record.sid, json.dumps(raw), expires_in=60)
    assert await manager.load(record.sid) is None
    assert await store.get(SESSION_PREFIX + record.sid) is None


async def test_end_all_sessions_of_a_user(store):
    manager = SessionManager(store, idle_seconds=60, absolute_seconds=3600)
    a, b, other = await manager.create(7), await manager.create(7), await manager.create(8)
    assert await manager.destroy_all_for(7) == 2
    assert await manager.load(a.sid) is None and await manager.load(b.sid) is None
    assert await manager.load(other.sid) is not None


async def test_garbage_ids_are_rejected(store):
    manager = SessionManager(store, idle_seconds=60, absolute_seconds=3600)
    assert await manager.load("") is None
    assert await manager.load("x" * 500) is None
    await store.set(SESSION_PREFIX + "bad", "not json", expires_in=60)
    assert await manager.load("bad") is None


async def test_oldest_sessions_end_past_the_per_person_limit(store):
    from auth.sessions import MAX_SESSIONS_PER_USER

    manager = SessionManager(store, idle_seconds=60, absolute_seconds=3600)
    records = [await manager.create(9) for _ in range(MAX_SESSIONS_PER_USER + 3)]
    assert [await manager.load(r.sid) is None for r in records[:3]] == [True] * 3
    assert await manager.destroy_all_for(9) == MAX_SESSIONS_PER_USER
    assert all([await manager.load(r.sid) is None for r in records])
