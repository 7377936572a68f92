"""Three aiortc participants meet through the real WebSocket and the SFU; one leaves, the others go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.rtc.peers import ClientPeer, serve

KINDS = ("audio", "video")


async def wait_until(condition: Callable[[], bool], what: str, seconds: float = 90.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_three_participants_receive_each_other_and_one_leaves(app, make_client):
    clients = [await make_client(role) for role in ("employee", "unit_head", "hr_admin")]
    room = (await clients[0].post("/api/rooms", json={"title": "定例"})).json()
    async with serve(app) as base:
        peers = [
            ClientPeer(base, room["id"], c.cookies["th_session"], shade=60 * i) for i, c in enumerate(clients)
        ]
        try:
            for peer in peers:
                await peer.join()
                await asyncio.wait_for(peer.welcome.wait(), 30)

            def everyone_receives(
                group: list[ClientPeer], at_least: dict | None = None, more: int = 0
            ) -> bool:
                return all(
                    p.received(q.me, kind) >= (at_least or {}).get((p.me, q.me, kind), 0) + max(more, 10)
                    for p in group
                    for q in group
                    if q is not p
                    for kind in KINDS
                )

            await wait_until(
                lambda: everyone_receives(peers), "each of three to receive the other two's audio+video"
            )
            sfu = app.state.rtc.sfu
            assert sfu.forwarded_packets > 0
            # Each publisher's RTX SSRC (from its answer) is routed to the forwarder, for upstream repairs.
            assert all(p.sources["video"].rtx_ssrc for p in sfu.rooms[room["id"]].participants.values())
            # Forwarding takes the synchronous send path on these plain-UDP pairs.
            assert all(p.fast_send is not None for p in sfu.rooms[room["id"]].participants.values())
            assert (await clients[0].get(f"/api/rooms/{room['id']}")).json()["participants"] == 3

            leaver, stay = peers[2], peers[:2]
            await leaver.leave()
            await wait_until(
                lambda: all(
                    any(e.get("type") == "left" and e["participant"] == leaver.me for e in p.events)
                    for p in stay
                ),
                "the others to hear that one left",
            )
            # The stayers' track maps drop the leaver (a late first packet once gave them slots for good).
            await wait_until(
                lambda: all(leaver.me not in {s["participant"] for s in p.tracks.values()} for p in stay),
                "the leaver's slots to be freed",
            )
            before = {
                (p.me, q.me, k): p.received(q.me, k) for p in stay for q in stay if q is not p for k in KINDS
            }
            await wait_until(
                lambda: everyone_receives(stay, before, more=20), "the two who stayed to keep receiving"
            )
            assert len(sfu.rooms[room["id"]].participants) == 2
        finally:
            for peer in peers:
                await peer.close()
        await wait_until(
            lambda: not app.state.rtc.sfu.rooms, "the room to empty after everyone left", seconds=30
        )


async def test_a_late_joiner_reuses_a_free_slot_and_numbering_continues(app, make_client):
    """Someone leaves and someone else arrives: the existing participant needs no renegotiation for them."""
    clients = [await make_client(role) for role in ("employee", "unit_head", "hr_admin")]
    room = (await clients[0].post("/api/rooms", json={})).json()
    async with serve(app) as base:
        first = ClientPeer(base, room["id"], clients[0].cookies["th_session"])
        second = ClientPeer(base, room["id"], clients[1].cookies["th_session"], shade=200)
        third = ClientPeer(base, room["id"], clients[2].cookies["th_session"], shade=30)
        try:
            for peer in (first, second):
                await peer.join()
                await asyncio.wait_for(peer.welcome.wait(), 30)
            await wait_until(lambda: first.received(second.me, "video") >= 10, "first to see second")
            media = app.state.rtc.sfu.rooms[room["id"]]
            participant = media.participants[first.me]
            negotiations = participant.negotiations
            video_slot = next(
                s for s in participant.slots if s.source is not None and s.source.name == "video"
            )
            sent_before = video_slot.stream.last_seq
            await second.leave()
            await wait_until(lambda: video_slot.source is None, "second's slot to be freed")
            await third.join()
            await asyncio.wait_for(third.welcome.wait(), 30)
            await wait_until(
                lambda: first.received(third.me, "video") >= 10, "first to see third on the reused slot"
            )
            assert video_slot.source is not None and video_slot.source.owner.id == third.me
            assert participant.negotiations == negotiations  # the slot was reused: no new offer to `first`
            assert 0 < (video_slot.stream.last_seq - sent_before) & 0xFFFF < 5000  # one continuous sequence
        finally:
            for peer in (first, second, third):
                await peer.close()
