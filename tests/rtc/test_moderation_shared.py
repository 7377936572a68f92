"""Bans and an end outlive the worker that decided them: another worker taking the room over still refuses.

Runs on a real Redis: REDIS_URL when set (the PostgreSQL + Redis tier), else the machine's Redis (db 13).
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from rtc import moderation
from rtc.access import Identity

HOST = Identity(user_id=1, name="主催者", host=True, meeting_id=5)
GUEST = Identity(user_id=None, name="外部 太郎", guest=True, email="Taro@Example.org", lobby=True)
STAFF = Identity(user_id=7, name="職員 花子")


@pytest.fixture
async def redis():
    client = Redis.from_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/13")
    try:
        await client.ping()
    except OSError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no Redis on this machine")
    yield client
    await client.aclose()


def _worker(redis, room_id: str, roster: dict) -> SimpleNamespace:
    published: list[dict] = []
    return SimpleNamespace(
        redis=redis,
        rosters={room_id: roster},
        publish=lambda room, event: published.append(event),
        published=published,
        db_sessions=None,
    )


async def test_a_worker_taking_over_keeps_bans_and_the_end(redis) -> None:
    room_id = f"shared{time.monotonic_ns()}"
    roster = {"p-guest": {"name": GUEST.name, "user": None, "guest": True}, "p-staff": {"name": STAFF.name}}
    first = _worker(redis, room_id, roster)
    room = moderation.control(first, room_id)
    room.keys.update({"p-guest": GUEST.key, "p-staff": STAFF.key})

    assert (
        await moderation.act(
            first, room_id, {"name": HOST.name}, HOST, {"type": "remove", "participant": "p-guest"}
        )
        is None
    )
    # The worker dies; another one holds the room now and knows nothing in memory.
    second = _worker(redis, room_id, {})
    taken = moderation.control(second, room_id)
    assert taken.refusal(GUEST, time.monotonic()) is None  # before recalling: memory only
    await moderation.recall(second, taken)
    assert taken.refusal(GUEST, time.monotonic()) == "removed"
    assert taken.refusal(STAFF, time.monotonic()) is None  # only the removed person

    first.rosters[room_id] = {}
    assert await moderation.act(first, room_id, {"name": HOST.name}, HOST, {"type": "end"}) is None
    third = _worker(redis, room_id, {})
    after_end = moderation.control(third, room_id)
    await moderation.recall(third, after_end)
    assert after_end.refusal(STAFF, time.monotonic()) == "ended"
    assert after_end.refusal(HOST, time.monotonic()) == "ended"  # hosts too, for ENDED_SECONDS
    ttl = await redis.ttl(f"rtc:moderation:{room_id}")
    assert moderation.ENDED_SECONDS < ttl <= moderation.BAN_SECONDS + 1  # the ban is the longest entry


async def test_a_non_host_records_nothing(redis) -> None:
    room_id = f"shared{time.monotonic_ns()}"
    worker = _worker(redis, room_id, {"p": {"name": "x"}})
    assert await moderation.act(worker, room_id, {"name": STAFF.name}, STAFF, {"type": "end"}) == "not_host"
    assert await redis.exists(f"rtc:moderation:{room_id}") == 0
