"""Several web workers (issue #8, item 4): two real server processes against one Redis and one database.

A participant on each worker joins the same meeting: the room lives on one worker, the other relays the
signalling through Redis, and media flows straight between each participant and the room's worker (ICE on
127.0.0.1 only, in the servers and in these aiortc clients). Then a worker is killed with SIGKILL mid-meeting;
the timings of what follows are printed and written to test-results/rtc-workers*.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from tests.conftest import DEMO_PASSWORD, LOGIN_BY_ROLE
from tests.live_server import ROOT, LiveServer, live_server
from tests.rtc.peers import ClientPeer

KINDS = ("audio", "video")
RESULTS = ROOT / "test-results"


def redis_url() -> str:
    """REDIS_URL, else the machine's Redis. Unreachable: skip here, fail on CI.

    Without REDIS_URL it is db 14, not the Redis tier's db 15: a Redis-tier run on the same machine flushes
    db 15 before each of its tests, which would sign these participants out mid-meeting.
    """
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"
    try:
        client = redis_sync.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis_sync.RedisError as exc:
        reason = f"several workers need Redis at {url}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    """Two `python -m app serve` processes on their own ports: one database file, one Redis, one secret."""
    url = redis_url()
    env = {"REDIS_URL": url, "SECRET_KEY": "workers-" + uuid.uuid4().hex}
    with live_server(tmp_path, extra_env=env, name="worker-a", loopback_ice=True) as a:
        with live_server(
            tmp_path, extra_env={**env, "SEED_DEMO": "0"}, name="worker-b", loopback_ice=True
        ) as b:
            yield a, b, url


async def sign_in(server: LiveServer, role: str) -> str:
    """The session cookie of a demo person, signed in on ``server`` (sessions live in Redis: any worker)."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.get("/health/live")
        token = client.cookies["csrftoken"]
        r = await client.post(
            "/api/auth/login",
            json={"login": LOGIN_BY_ROLE[role], "password": DEMO_PASSWORD},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 200, r.text
        return client.cookies["th_session"]


async def api(server: LiveServer, cookie: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, cookies={"th_session": cookie}) as client:
        await client.get("/health/live")
        headers = {"x-csrftoken": client.cookies["csrftoken"]}
        return await client.request(method, path, headers=headers, **kwargs)


async def wait_until(
    condition: Callable[[], bool], what: str, seconds: float = 60.0, *, since: float | None = None
) -> float:
    """Poll every millisecond; the seconds it took (from ``since``, a monotonic time, if given)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(0.001)
    return time.monotonic() - (start if since is None else since)


def pongs(peer: ClientPeer) -> int:
    return sum(1 for e in peer.events if e.get("type") == "pong")


def ws_base(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://")


def closed(peer: ClientPeer) -> bool:
    """The peer's socket is closed (its reader ended)."""
    return bool(peer._tasks) and peer._tasks[0].done()


def receiving(a: ClientPeer, b: ClientPeer, at_least: int = 10, since: dict[Any, int] | None = None) -> bool:
    """Each of a and b decoded at least ``at_least`` more audio and video frames of the other."""
    since = since or {}
    return all(
        x.received(y.me or "", k) >= since.get((x.me, y.me, k), 0) + at_least
        for x, y in ((a, b), (b, a))
        for k in KINDS
    )


async def worker_of(redis: Redis, room_id: str) -> str:
    value = await redis.get(f"rtc:room-worker:{room_id}")
    return value.decode() if value else ""


def pid_of(worker_id: str) -> int:
    return int(worker_id.split(":")[-2])


async def round_trips(peer: ClientPeer, n: int = 20) -> list[float]:
    """Milliseconds from a ping to its pong over the signalling socket."""
    out = []
    for _ in range(n):
        seen = pongs(peer)
        start = time.perf_counter()
        await peer.send({"type": "ping"})
        await wait_until(lambda seen=seen: pongs(peer) > seen, "a pong", 5)
        out.append((time.perf_counter() - start) * 1000)
    return out


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 2)


def record(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}: " + json.dumps(result, indent=1, ensure_ascii=False))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))


class Meeting:
    """Peers joined through given workers, closed at the end whatever happens."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.peers: list[ClientPeer] = []

    async def join(self, server: LiveServer, cookie: str, shade: int) -> ClientPeer:
        peer = ClientPeer(ws_base(server), self.room_id, cookie, shade=shade)
        self.peers.append(peer)
        await peer.join()
        await asyncio.wait_for(peer.welcome.wait(), 20)
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            try:
                await asyncio.wait_for(peer.close(), 10)
            except Exception:  # a socket to a killed worker may not close cleanly
                pass


@pytest.fixture
async def meeting_parts(
    workers: tuple[LiveServer, LiveServer, str],
) -> AsyncIterator[tuple[LiveServer, LiveServer, Redis, str, str, str]]:
    a, b, url = workers
    redis = Redis.from_url(url)
    first, second = await sign_in(a, "employee"), await sign_in(b, "unit_head")
    room = (await api(a, first, "POST", "/api/rooms", json={"title": "複数ワーカー"})).json()
    yield a, b, redis, first, second, room["id"]
    await redis.aclose()


async def start_meeting(
    a: LiveServer, b: LiveServer, redis: Redis, first: str, second: str, room_id: str, meeting: Meeting
) -> tuple[ClientPeer, ClientPeer, dict[str, Any]]:
    """``one`` joins on worker a (the room goes there), ``two`` on worker b (relayed); both receive media."""
    started = time.monotonic()
    one = await meeting.join(a, first, shade=60)
    assert one.pc is not None
    # Their own tracks flow before the second person arrives (not part of what is measured here).
    await wait_until(lambda: one.pc is not None and one.pc.connectionState == "connected", "first to connect")
    holder = await worker_of(redis, room_id)
    assert a.process is not None and pid_of(holder) == a.process.pid  # the room lives on worker a
    await asyncio.sleep(1.0)
    joined = time.monotonic()
    two = await meeting.join(b, second, shade=200)
    welcome_s = time.monotonic() - joined
    welcome = next(e for e in two.events if e.get("type") == "welcome")
    assert {p["id"] for p in welcome["participants"]} == {one.me, two.me}  # one room across the two workers
    media_s = await wait_until(lambda: receiving(one, two), "each to receive the other's audio and video")
    assert await worker_of(redis, room_id) == holder  # still on worker a: b relays
    # The head count is right on either worker.
    for server, cookie in ((a, first), (b, second)):
        deadline = time.monotonic() + 3
        while (
            count := (await api(server, cookie, "GET", f"/api/rooms/{room_id}")).json()["participants"]
        ) != 2:
            assert time.monotonic() < deadline, f"{server.url} counts {count}"
            await asyncio.sleep(0.2)
    return (
        one,
        two,
        {
            "relayed_join_to_welcome_ms": round(welcome_s * 1000, 1),
            "relayed_join_to_both_receiving_ms": round((welcome_s + media_s) * 1000, 1),
            "setup_s": round(time.monotonic() - started, 1),
        },
    )


async def test_two_workers_one_meeting_and_the_room_worker_is_killed(meeting_parts):
    """Both receive media across two workers; SIGKILL the room's worker; the other tells its participant at
    once and the meeting resumes on the survivor."""
    a, b, redis, first, second, room_id = meeting_parts
    meeting = Meeting(room_id)
    try:
        one, two, result = await start_meeting(a, b, redis, first, second, room_id, meeting)
        direct, relayed = await round_trips(one), await round_trips(two)
        result["signalling_rtt_ms_direct_median"] = median(direct)
        result["signalling_rtt_ms_relayed_median"] = median(relayed)

        assert a.process is not None
        killed_at = time.monotonic()
        os.kill(a.process.pid, signal.SIGKILL)
        one_closed = await wait_until(lambda: closed(one), "the socket to drop", 10, since=killed_at)
        two_told = await wait_until(lambda: closed(two), "the relaying worker to close", 10, since=killed_at)
        gone = [e for e in two.events if e.get("type") == "error"]
        assert gone and gone[-1]["code"] == "server_gone" and gone[-1]["message"], two.events[-3:]
        assert two.ws.close_code == 1012  # "service restart": the page reconnects by itself
        result["kill_to_direct_socket_closed_ms"] = round(one_closed * 1000, 1)
        result["kill_to_relayed_participant_told_ms"] = round(two_told * 1000, 1)

        # Both rejoin on the surviving worker, which takes the room over at once.
        rejoin_at = time.monotonic()
        two_again = await meeting.join(b, second, shade=200)
        result["rejoin_to_welcome_ms"] = round((time.monotonic() - rejoin_at) * 1000, 1)
        holder = await worker_of(redis, room_id)
        assert b.process is not None and pid_of(holder) == b.process.pid
        one_again = await meeting.join(b, first, shade=60)
        await wait_until(lambda: receiving(one_again, two_again), "media again after the rejoin")
        result["rejoin_to_both_receiving_ms"] = round((time.monotonic() - rejoin_at) * 1000, 1)
        result["kill_to_both_receiving_again_ms"] = round((time.monotonic() - killed_at) * 1000, 1)
        record("rtc-workers-room-worker-killed", result)
        assert two_told < 3.0, result  # told well before any page would give up
        assert result["rejoin_to_welcome_ms"] < 2000, result  # no waiting for a heartbeat to expire
    finally:
        await meeting.close()


async def test_the_relaying_worker_is_killed(meeting_parts):
    """SIGKILL the worker that relays a participant: the room's worker ends their stay (the others hear they
    left) and they rejoin through the worker that is left."""
    a, b, redis, first, second, room_id = meeting_parts
    meeting = Meeting(room_id)
    try:
        one, two, result = await start_meeting(a, b, redis, first, second, room_id, meeting)
        assert b.process is not None
        killed_at = time.monotonic()
        os.kill(b.process.pid, signal.SIGKILL)
        left = await wait_until(
            lambda: any(e.get("type") == "left" and e.get("participant") == two.me for e in one.events),
            "the room's worker to drop the relayed participant",
            10,
        )
        result["kill_to_others_told_left_ms"] = round(left * 1000, 1)
        assert closed(two)
        before = {(one.me, k): one.received(two.me or "", k) for k in KINDS}
        rejoin_at = time.monotonic()
        two_again = await meeting.join(a, second, shade=200)
        result["rejoin_to_welcome_ms"] = round((time.monotonic() - rejoin_at) * 1000, 1)
        await wait_until(lambda: receiving(one, two_again), "media again after the rejoin")
        result["rejoin_to_both_receiving_ms"] = round((time.monotonic() - rejoin_at) * 1000, 1)
        result["kill_to_both_receiving_again_ms"] = round((time.monotonic() - killed_at) * 1000, 1)
        assert before  # the first participant never left: their stay went on
        assert any(e.get("type") == "welcome" for e in one.events)
        record("rtc-workers-relaying-worker-killed", result)
        assert left < 3.0, result
    finally:
        await meeting.close()


async def test_a_hung_room_worker_loses_its_room_and_gives_it_up_when_it_wakes(meeting_parts):
    """SIGSTOP the room's worker (hung, its Redis connection still open): someone arriving meanwhile gets no
    answer from it, so the other worker takes the room after 2 s; once the hung worker's heartbeat expires
    its relayed participant is told and rejoins there. On SIGCONT the woken worker finds the room taken
    and tells its own participant to rejoin, who comes back through it (relayed the other way now)."""
    a, b, redis, first, second, room_id = meeting_parts
    meeting = Meeting(room_id)
    assert a.process is not None and b.process is not None
    try:
        one, two, result = await start_meeting(a, b, redis, first, second, room_id, meeting)
        third = await sign_in(b, "hr_admin")
        stopped_at = time.monotonic()
        os.kill(a.process.pid, signal.SIGSTOP)
        try:
            # Someone arriving now: b relays to a, which does not answer; after 2 s b takes the room.
            three = await meeting.join(b, third, shade=120)
            result["join_during_hang_to_welcome_ms"] = round((time.monotonic() - stopped_at) * 1000, 1)
            assert pid_of(await worker_of(redis, room_id)) == b.process.pid
            told = await wait_until(
                lambda: closed(two), "the relayed participant to be told", 10, since=stopped_at
            )
            result["stop_to_relayed_participant_told_ms"] = round(told * 1000, 1)
            assert [e for e in two.events if e.get("type") == "error"][-1]["code"] == "server_gone"
            rejoin_at = time.monotonic()
            two_again = await meeting.join(b, second, shade=200)
            result["rejoin_to_welcome_ms"] = round((time.monotonic() - rejoin_at) * 1000, 1)
            assert pid_of(await worker_of(redis, room_id)) == b.process.pid
        finally:
            continued_at = time.monotonic()
            os.kill(a.process.pid, signal.SIGCONT)
        moved = await wait_until(lambda: closed(one), "the woken worker to hand over", 10, since=continued_at)
        result["cont_to_its_participant_told_ms"] = round(moved * 1000, 1)
        assert [e for e in one.events if e.get("type") == "error"][-1]["code"] == "server_gone"
        assert one.ws.close_code == 1012
        one_again = await meeting.join(a, first, shade=60)  # through the woken worker: relayed to b
        await wait_until(lambda: receiving(one_again, two_again), "media again, the room on b")
        await wait_until(lambda: receiving(one_again, three), "the one who came during the hang too")
        assert pid_of(await worker_of(redis, room_id)) == b.process.pid
        result["rejoin_to_both_receiving_ms"] = round((time.monotonic() - continued_at - moved) * 1000, 1)
        record("rtc-workers-room-worker-hung", result)
        assert told < 5.0, result  # heartbeat TTL (3 s) + one check
        assert moved < 3.0, result  # the next heartbeat (every second) finds the room taken
    finally:
        await meeting.close()
