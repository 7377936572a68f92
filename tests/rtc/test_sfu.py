"""The SFU wiring with crafted packets: forward to subscribers, answer NACKs, relay PLI (paced), RTCP reports.

Peer connections are real aiortc objects (offers made, nothing connected); the transport is a recorder.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
)

from rtc import aiortc_glue
from rtc.forwarding import ntp_time
from rtc.sfu import CapacityExceeded, Participant, RoomFull, Sfu

KEY = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])
DELTA = bytes([0x10, 0x01, 0x00])


class Recorder:
    """Stands in for a connected DTLS transport."""

    state = "connected"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def rtp(self) -> list[RtpPacket]:
        return [RtpPacket.parse(d) for d in self.sent if not is_rtcp(d)]

    def rtcp(self) -> list[Any]:
        return [p for d in self.sent if is_rtcp(d) for p in RtcpPacket.parse(d)]


@pytest.fixture(autouse=True)
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    async def send_rtp(transport: Recorder, data: bytes) -> None:
        transport.sent.append(data)

    monkeypatch.setattr(aiortc_glue, "send_rtp", send_rtp)
    monkeypatch.setattr(Participant, "negotiate", offer_only)


async def nothing(message: dict[str, Any]) -> None:
    return None


async def offer_only(self: Participant) -> None:
    """Negotiation without a browser: the offer fixes mids and codecs, which is all the forwarder needs."""
    self._dirty = False
    self.negotiations += 1
    await self.pc.setLocalDescription(await self.pc.createOffer())
    self._bind_sources()
    for slot in self.slots:
        slot.ready()


async def meeting(sfu: Sfu, *names: str, publish: tuple[str, ...] = ("audio", "video")) -> list[Any]:
    """Participants joined, publishing audio and video, 'negotiated' (offer only), on recording transports."""
    room = sfu.room("r1")
    people = [await room.join(name, nothing) for name in names]
    for person in people:
        await offer_only(person)
        person.transport = Recorder()
    for person in people:
        for name in publish:
            room.activate(person.sources[name])
    await asyncio.gather(*sfu._tasks)
    return people


def packet(seq: int, ts: int, payload: bytes, ssrc: int = 1234, pt: int = 97) -> RtpPacket:
    return RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload)


async def test_forwards_video_to_each_subscriber_with_its_own_numbering(recorded):
    sfu = Sfu()
    try:
        alice, bob, carol = await meeting(sfu, "alice", "bob", "carol")
        video = alice.sources["video"]
        assert video.payload_types == {97}
        await video.on_rtp(packet(100, 9000, KEY), 0)
        await video.on_rtp(packet(101, 9000, DELTA), 0)
        for subscriber in (bob, carol):
            got = subscriber.transport.rtp()
            slot = next(s for s in subscriber.slots if s.source is video)
            assert [p.ssrc for p in got] == [slot.stream.ssrc] * 2
            assert got[1].sequence_number == (got[0].sequence_number + 1) & 0xFFFF
            assert got[0].payload == KEY
        assert bob.transport.rtp()[0].ssrc != carol.transport.rtp()[0].ssrc
        assert alice.transport.sent == []  # nobody receives themselves
        assert sfu.forwarded_packets == 4
    finally:
        await sfu.close()


async def test_a_new_subscriber_waits_for_a_key_frame_and_asks_the_publisher_for_one(recorded):
    sfu = Sfu()
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        video = alice.sources["video"]
        await video.on_rtp(packet(5, 0, DELTA), 0)
        assert bob.transport.rtp() == []
        (request,) = alice.transport.rtcp()
        assert (
            isinstance(request, RtcpPsfbPacket)
            and request.fmt == RTCP_PSFB_PLI
            and request.media_ssrc == 1234
        )
        for seq in range(6, 30):  # many more deltas: still one request per interval
            await video.on_rtp(packet(seq, 0, DELTA), 0)
        assert len(alice.transport.rtcp()) == 1
        await video.on_rtp(packet(30, 0, KEY), 0)
        assert len(bob.transport.rtp()) == 1
    finally:
        await sfu.close()


async def test_subscriber_feedback_nack_is_answered_from_history_and_pli_is_relayed_once(recorded):
    sfu = Sfu()
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        video = alice.sources["video"]
        for i in range(5):
            await video.on_rtp(packet(200 + i, 0, KEY if i == 0 else DELTA), 0)
        slot = next(s for s in bob.slots if s.source is video)
        sent = bob.transport.rtp()
        bob.transport.sent.clear()
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=slot.stream.ssrc)
        nack.lost = [sent[2].sequence_number, (sent[4].sequence_number + 50) & 0xFFFF]
        await slot.on_rtcp(nack)
        (rtx,) = bob.transport.rtp()
        assert rtx.ssrc == slot.stream.rtx_ssrc and rtx.payload[2:] == sent[2].payload
        # The packet we never had is asked of the publisher, in its own numbering.
        (upstream,) = [p for p in alice.transport.rtcp() if isinstance(p, RtcpRtpfbPacket)]
        assert upstream.media_ssrc == 1234 and upstream.lost == [204 + 50]

        before = len(alice.transport.rtcp())
        for _ in range(10):
            await slot.on_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=slot.stream.ssrc))
        plis = [p for p in alice.transport.rtcp()[before:] if p.fmt == RTCP_PSFB_PLI]
        assert len(plis) <= 1 and slot.keyframe_requests == 10
    finally:
        await sfu.close()


async def test_rtcp_tick_sends_reports_and_caps_the_publisher_with_remb(recorded):
    sfu = Sfu(video_cap_bps=700_000)
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        video = alice.sources["video"]
        await video.on_rtp(packet(1, 90000, KEY), 0)
        await video.on_rtp(packet(3, 93000, DELTA), 0)  # seq 2 lost upstream
        sr = RtcpSrPacket(ssrc=1234, sender_info=RtcpSenderInfo(ntp_time(1e9), 90000, 2, 10))
        await video.on_rtcp(sr)
        slot = next(s for s in bob.slots if s.source is video)
        await slot.on_rtcp(
            RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(300_000, [slot.stream.ssrc])
            )
        )
        room = sfu.rooms["r1"]
        await room.rtcp_tick()
        to_bob = [p for p in bob.transport.rtcp() if isinstance(p, RtcpSrPacket)]
        mine = [p for p in to_bob if p.ssrc == slot.stream.ssrc]
        assert len(mine) == 1 and mine[0].sender_info.packet_count == 2
        to_alice = alice.transport.rtcp()
        rr = next(p for p in to_alice if isinstance(p, RtcpRrPacket))
        assert rr.reports[0].ssrc == 1234 and rr.reports[0].packets_lost == 1
        remb = next(p for p in to_alice if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP)
        bitrate, ssrcs = unpack_remb_fci(remb.fci)
        assert ssrcs == [1234] and 290_000 < bitrate <= 300_000  # the slower subscriber's estimate wins
        assert room.video_cap(video, now=1e12) == 700_000  # stale estimates are forgotten: our cap
    finally:
        await sfu.close()


async def test_audio_levels_pick_the_active_speaker(recorded):
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    sfu = Sfu()
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        sfu.rooms["r1"].on_event = on_event
        audio = alice.sources["audio"]
        pt = next(iter(audio.payload_types))
        for seq in range(30):
            p = packet(seq, seq * 960, b"opus", ssrc=77, pt=pt)
            p.extensions.audio_level = (True, 20)
            await audio.on_rtp(p, 0)
        await sfu.rooms["r1"]._speaker_tick()
        assert events == [{"type": "speaker", "participant": "alice"}]
        assert len(bob.transport.rtp()) == 30
    finally:
        await sfu.close()


async def test_limits_refuse_the_join():
    sfu = Sfu(max_participants=2)
    try:
        await meeting(sfu, "a", "b")
        room = sfu.rooms["r1"]
        assert sfu.forwarded_streams() == 4  # two people, audio + video each way
        with pytest.raises(RoomFull):
            await room.join("c", nothing)
        sfu.max_participants, sfu.max_streams = 10, 11  # a third person would add 2 × 2 × 2 = 8
        with pytest.raises(CapacityExceeded):
            await room.join("c", nothing)
        sfu.max_streams = 12
        await room.join("c", nothing)
    finally:
        await sfu.close()


async def test_viewers_who_publish_nothing_get_no_slots_from_each_other():
    sfu = Sfu()
    try:
        people = await meeting(sfu, "speaker", *[f"viewer{i}" for i in range(5)], publish=())
        room = sfu.rooms["r1"]
        room.activate(people[0].sources["video"])
        await asyncio.gather(*sfu._tasks)
        assert [len(p.slots) for p in people] == [0, 1, 1, 1, 1, 1]
        assert sfu.forwarded_streams() == 5
    finally:
        await sfu.close()


async def test_a_freed_slot_is_reused_without_renegotiation():
    sfu = Sfu()
    try:
        alice, _bob = await meeting(sfu, "alice", "bob")
        room = sfu.rooms["r1"]
        negotiations = alice.negotiations
        await room.leave("bob")
        assert all(slot.source is None for slot in alice.slots)
        carol = await room.join("carol", nothing)
        await offer_only(carol)
        room.activate(carol.sources["video"])
        await asyncio.gather(*sfu._tasks)
        assert alice.negotiations == negotiations
        assert [s.source.owner.id for s in alice.slots if s.source is not None] == ["carol"]
    finally:
        await sfu.close()


async def test_audio_only_pauses_video_and_resumes_on_a_key_frame(recorded):
    sfu = Sfu()
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        video = alice.sources["video"]
        await bob.set_audio_only(True)
        await video.on_rtp(packet(1, 0, KEY), 0)
        assert bob.transport.rtp() == []
        await bob.set_audio_only(False)
        await video.on_rtp(packet(2, 0, DELTA), 0)
        assert bob.transport.rtp() == []
        await video.on_rtp(packet(3, 0, KEY), 0)
        assert len(bob.transport.rtp()) == 1
    finally:
        await sfu.close()


async def test_a_publishers_retransmission_fills_the_gap_for_subscribers():
    """Subscribers NACK what the server never had; the publisher's RTX answer goes out as the original."""
    sfu = Sfu()
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        video = alice.sources["video"]
        assert video.rtx_payload_type is not None
        await video.on_rtp(packet(10, 0, KEY), 0)
        await video.on_rtp(packet(12, 0, DELTA), 0)  # 11 lost on the way in
        sent = bob.transport.rtp()
        rtx = packet(500, 0, (11).to_bytes(2, "big") + b"late", ssrc=999, pt=video.rtx_payload_type)
        await video.on_rtp(rtx, 0)
        await video.on_rtp(packet(501, 0, b"\x00", ssrc=999, pt=video.rtx_payload_type), 0)  # padding probe
        got = bob.transport.rtp()
        assert len(got) == 3 and video.recovered == 1
        assert got[2].sequence_number == (sent[0].sequence_number + 1) & 0xFFFF
        assert got[2].payload == b"late" and got[2].ssrc == sent[0].ssrc
    finally:
        await sfu.close()
