"""Hosts moderate through the signalling protocol: lobby, admit/deny, lock, mute (at the SFU), remove, end.

Participants are aiortc clients (tests/rtc/peers.py) publishing real audio and video, so "muted" is measured
in packets the server forwards, not in a flag.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select, update

from app.audit import AuditEvent
from rtc.access import Identity
from rtc.moderation import BAN_SECONDS, ENDED_SECONDS, INSTANT_ROOM_SECONDS, RoomControl
from scheduling.models import Meeting
from tests.rtc.peers import ClientPeer, scheduled_meeting, serve
from tests.rtc.test_meeting import wait_until
from tests.rtc.test_rooms import next_of, ws_join

EMPLOYEE, UNIT_HEAD, IT_ADMIN, HR_ADMIN = "100012", "100006", "100009", "100008"


def cookie(client: Any) -> str:
    return str(client.cookies["th_session"])


def latest(peer: ClientPeer, kind: str) -> dict[str, Any] | None:
    found = [e for e in peer.events if e.get("type") == kind]
    return found[-1] if found else None


def waiting_ids(peer: ClientPeer) -> list[str] | None:
    event = latest(peer, "lobby-list")
    return None if event is None else [p["id"] for p in event["waiting"]]


async def close_all(*peers: ClientPeer) -> None:
    for peer in peers:
        await peer.close()


async def test_the_lobby_holds_people_until_a_host_admits_or_denies_them(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, attendees=(UNIT_HEAD,), lobby=True)
    room_id = meeting.room_id
    organizer, invitee, outsider = [await make_client(r) for r in ("employee", "unit_head", "hr_admin")]
    async with serve(app) as base:
        host = ClientPeer(base, room_id, cookie(organizer))
        knocking = ClientPeer(base, room_id, cookie(invitee), shade=200)
        stranger = ClientPeer(base, room_id, cookie(outsider), shade=30)
        try:
            await host.join()
            welcome = await host.event("welcome")
            assert welcome["host"] is True and welcome["waiting"] == [] and welcome["locked"] is False
            assert welcome["participants"][0]["host"] is True

            await knocking.join()
            in_lobby = await knocking.event("lobby")
            await wait_until(lambda: waiting_ids(host) == [in_lobby["you"]], "the host to see the lobby")
            entry = latest(host, "lobby-list")["waiting"][0]  # type: ignore[index]
            assert entry["name"] and entry["guest"] is False
            # Waiting is not being in: no welcome, no media room place, no room events.
            assert not knocking.welcome.is_set()
            assert list(app.state.rtc.sfu.rooms[room_id].participants) == [host.me]

            await stranger.join()  # signed-in staff who were not invited knock too
            stranger_lobby = await stranger.event("lobby")
            await wait_until(
                lambda: waiting_ids(host) == [in_lobby["you"], stranger_lobby["you"]], "two in the lobby"
            )

            await host.send({"type": "admit", "id": in_lobby["you"]})
            await knocking.event("admitted")
            await asyncio.wait_for(knocking.welcome.wait(), 30)
            assert knocking.me == in_lobby["you"]
            await wait_until(
                lambda: host.received(knocking.me, "video") >= 5 and knocking.received(host.me, "video") >= 5,
                "the admitted person and the host to see each other",
            )
            await wait_until(lambda: waiting_ids(host) == [stranger_lobby["you"]], "the lobby list to shrink")
            assert "waiting" not in (await knocking.event("welcome"))  # the lobby is for hosts only
            assert all(e.get("type") != "lobby-list" for e in knocking.events)

            # A participant who is not a host cannot moderate: each command is refused and changes nothing.
            commands: list[dict[str, Any]] = [
                {"type": "admit", "id": stranger_lobby["you"]},
                {"type": "deny", "id": stranger_lobby["you"]},
                {"type": "lock"},
                {"type": "mute", "participant": host.me},
                {"type": "remove", "participant": host.me},
                {"type": "end"},
            ]
            for command in commands:
                await knocking.send(command)
                refused = await knocking.event("error", **{"for": command["type"]})
                assert refused["code"] == "not_host"
            await knocking.send({"type": "ping"})
            await knocking.event("pong")
            assert not stranger.welcome.is_set() and not any(
                e.get("type") == "denied" for e in stranger.events
            )
            assert not any(
                e.get("type") in ("locked", "muted-by-host", "removed", "ended") for e in host.events
            )
            assert set(app.state.rtc.sfu.rooms[room_id].participants) == {host.me, knocking.me}

            await host.send({"type": "deny", "id": stranger_lobby["you"]})
            await stranger.event("denied")
            await asyncio.wait_for(stranger.gone.wait(), 10)
            await wait_until(lambda: waiting_ids(host) == [], "the lobby to empty")
            await host.send({"type": "admit", "id": stranger_lobby["you"]})
            assert (await host.event("error", code="not_waiting"))["for"] == "admit"
        finally:
            await close_all(host, knocking, stranger)


async def test_someone_leaving_the_lobby_leaves_the_hosts_list(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, attendees=(UNIT_HEAD,), lobby=True)
    organizer, invitee = await make_client("employee"), await make_client("unit_head")
    async with serve(app) as base:
        host = await ws_join(base, meeting.room_id, cookie(organizer))
        assert (await next_of(host, "welcome"))["waiting"] == []
        waiting = await ws_join(base, meeting.room_id, cookie(invitee))
        lobby_id = (await next_of(waiting, "lobby"))["you"]
        listed = await next_of(host, "lobby-list")
        assert [p["id"] for p in listed["waiting"]] == [lobby_id]
        await waiting.close()
        assert (await next_of(host, "lobby-list"))["waiting"] == []
        await host.close()


async def test_a_host_mute_stops_forwarding_that_persons_audio_until_they_unmute(app, make_client):
    owner, head = await make_client("employee"), await make_client("unit_head")
    room_id = (await owner.post("/api/rooms", json={})).json()["id"]
    async with serve(app) as base:
        host = ClientPeer(base, room_id, cookie(owner))
        other = ClientPeer(base, room_id, cookie(head), shade=200)
        try:
            for peer in (host, other):
                await peer.join()
                await asyncio.wait_for(peer.welcome.wait(), 30)
            await wait_until(
                lambda: host.received(other.me, "audio") >= 20 and host.received(other.me, "video") >= 10,
                "the host to hear and see the other",
            )
            media = app.state.rtc.sfu.rooms[room_id]
            source = media.participants[other.me].sources["audio"]
            slot = next(s for s in media.participants[host.me].slots if s.source is source)

            await host.send({"type": "mute", "participant": other.me})
            assert (await other.event("muted-by-host"))["by"]
            await host.event("state", participant=other.me, muted=True)
            await asyncio.sleep(0.5)  # what was already on the wire arrives
            heard, seen, forwarded, dropped = (
                host.received(other.me, "audio"),
                host.received(other.me, "video"),
                slot.stream.last_seq,
                source.dropped,
            )
            await asyncio.sleep(2.0)
            # The other's client still sends audio (about 50 packets a second); the server drops all of it.
            assert source.dropped - dropped >= 50
            assert slot.stream.last_seq == forwarded
            assert host.received(other.me, "audio") == heard
            assert host.received(other.me, "video") >= seen + 20  # their camera still reaches the host

            # The host's mute is one-shot: unmuting oneself restarts forwarding.
            await other.send({"type": "state", "muted": False})
            await wait_until(lambda: host.received(other.me, "audio") >= heard + 20, "the audio to come back")
            assert not source.held
        finally:
            await close_all(host, other)


async def audited(db: Any, room_id: str) -> list[tuple[str, str, Any]]:
    await db.rollback()
    rows = (await db.execute(select(AuditEvent).where(AuditEvent.entity_id == room_id))).scalars().all()
    return [(e.action, e.actor_label, json.loads(e.after)) for e in rows if e.action != "rtc.room.create"]


def test_the_rooms_rules_in_time():
    """Without sockets: who is refused when, for how long, and what a room forgets once empty."""
    person = Identity(user_id=7, name="a")
    guest = Identity(user_id=None, name="g", guest=True, email="G@Partner.example", lobby=True)
    host = Identity(user_id=1, name="h", host=True)
    room = RoomControl("room-one")
    assert room.refusal(person, 0.0) is None and room.must_wait(guest) and not room.must_wait(person)
    room.locked = True
    assert room.refusal(person, 0.0) == "locked" and room.refusal(host, 0.0) is None
    room.banned[guest.key] = BAN_SECONDS
    assert guest.key == "guest:g@partner.example"  # by address, whatever its case
    assert room.refusal(guest, BAN_SECONDS - 1) == "removed" and room.refusal(guest, BAN_SECONDS) != "removed"
    room.admitted.add(guest.key)
    assert not room.must_wait(guest)  # a reconnect after a blip skips the lobby
    room.end(instant=False, now=100.0)
    assert room.refusal(host, 100.0 + ENDED_SECONDS - 1) == "ended"  # hosts too
    assert room.refusal(person, 100.0 + ENDED_SECONDS) is None and not room.locked and not room.admitted
    assert not room.idle(100.0) and room.idle(BAN_SECONDS + 1)
    room.end(instant=True, now=0.0)
    assert room.refusal(host, INSTANT_ROOM_SECONDS - 1) == "ended"


async def test_a_removed_participant_is_closed_and_cannot_come_back(app, make_client, db):
    owner, head = await make_client("employee"), await make_client("unit_head")
    room_id = (await owner.post("/api/rooms", json={})).json()["id"]
    async with serve(app) as base:
        host = ClientPeer(base, room_id, cookie(owner))
        other = ClientPeer(base, room_id, cookie(head), shade=200)
        again = ClientPeer(base, room_id, cookie(head), shade=90)
        try:
            for peer in (host, other):
                await peer.join()
                await asyncio.wait_for(peer.welcome.wait(), 30)
            await host.send({"type": "remove", "participant": host.me})
            assert (await host.event("error", **{"for": "remove"}))["code"] == "host_stays"

            await host.send({"type": "remove", "participant": other.me})
            await other.event("removed")
            await asyncio.wait_for(other.gone.wait(), 10)
            await host.event("left", participant=other.me)
            await wait_until(
                lambda: list(app.state.rtc.sfu.rooms[room_id].participants) == [host.me],
                "the media room to free",
            )
            await again.join()
            refused = await again.event("error")
            assert refused["code"] == "removed" and "再参加" in refused["message"]
            await asyncio.wait_for(again.gone.wait(), 10)
            assert not again.welcome.is_set()
        finally:
            await close_all(host, other, again)
    [(action, actor, after)] = await audited(db, room_id)  # the refused attempt on a host left no trace
    assert action == "rtc.participant.remove" and actor and after["participant"]["name"]


async def test_a_cohost_ends_the_meeting_for_everyone_and_the_room_stays_closed(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, attendees=(UNIT_HEAD,), cohosts=(IT_ADMIN,))
    room_id = meeting.room_id
    organizer, invitee, cohost, outsider = [
        await make_client(r) for r in ("employee", "unit_head", "it_admin", "hr_admin")
    ]
    async with serve(app) as base:
        peers = [
            ClientPeer(base, room_id, cookie(c), shade=50 * i)
            for i, c in enumerate((organizer, invitee, cohost))
        ]
        knocking = ClientPeer(base, room_id, cookie(outsider))
        late = ClientPeer(base, room_id, cookie(invitee))
        try:
            for peer in peers:
                await peer.join()
                await asyncio.wait_for(peer.welcome.wait(), 30)
            hosts = {p["name"]: p["host"] for p in (await peers[2].event("welcome"))["participants"]}
            assert sorted(hosts.values()) == [False, True, True]  # everyone sees who hosts
            await knocking.join()  # uninvited staff wait even in a meeting without a lobby
            await knocking.event("lobby")

            await peers[2].send({"type": "end"})
            for peer in [*peers, knocking]:
                await peer.event("ended")
                await asyncio.wait_for(peer.gone.wait(), 10)
            await wait_until(lambda: room_id not in app.state.rtc.sfu.rooms, "the media room to close")

            await late.join()
            assert (await late.event("error"))["code"] == "ended"
        finally:
            await close_all(*peers, knocking, late)
    assert [(a, after) for a, _, after in await audited(db, room_id)] == [
        ("rtc.room.end", {"meeting_id": meeting.id})
    ]


async def test_a_locked_room_refuses_newcomers_but_not_hosts(app, make_client):
    owner, head, hr = [await make_client(r) for r in ("employee", "unit_head", "hr_admin")]
    room_id = (await owner.post("/api/rooms", json={})).json()["id"]
    async with serve(app) as base:
        host = await ws_join(base, room_id, cookie(owner))
        await next_of(host, "welcome")
        inside = await ws_join(base, room_id, cookie(head))
        await next_of(inside, "welcome")
        await host.send('{"type": "lock"}')
        told = await next_of(inside, "locked")
        assert told["locked"] is True and told["by"]

        newcomer = await ws_join(base, room_id, cookie(hr))
        refused = await next_of(newcomer, "error")
        assert refused["code"] == "locked" and "ロック" in refused["message"]
        second_tab = await ws_join(base, room_id, cookie(owner))  # a host still comes in
        assert (await next_of(second_tab, "welcome"))["locked"] is True

        await host.send('{"type": "unlock"}')
        assert (await next_of(inside, "locked"))["locked"] is False
        newcomer = await ws_join(base, room_id, cookie(hr))
        assert (await next_of(newcomer, "welcome"))["host"] is False
        for ws in (host, inside, second_tab, newcomer):
            await ws.close()


async def test_a_scheduled_meetings_room_follows_the_meeting(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, attendees=(UNIT_HEAD,))
    invitee = await make_client("unit_head")
    page = await invitee.get(f"/rooms/{meeting.room_id}")
    assert page.status_code == 200 and "定例会議" in page.text and "/rtc/static/meeting.js" in page.text
    async with serve(app) as base:
        ws = await ws_join(base, meeting.room_id, cookie(invitee))
        welcome = await next_of(ws, "welcome")  # an invitee of a meeting without a lobby comes straight in
        assert welcome["host"] is False
        await ws.close()

        await db.execute(update(Meeting).where(Meeting.id == meeting.id).values(status="cancelled"))
        await db.commit()
        page = await invitee.get(f"/rooms/{meeting.room_id}")
        assert page.status_code == 410 and "中止" in page.text
        ws = await ws_join(base, meeting.room_id, cookie(invitee))
        assert (await next_of(ws, "error"))["code"] == "cancelled"
        await ws.close()
