"""The SFU side of moderation, with crafted packets: a host's mute drops audio at the server; a leaver's late
first packet gives nobody a slot (the stayers' track maps would keep the leaver)."""

from __future__ import annotations

from rtc.sfu import Sfu
from tests.rtc.test_sfu import KEY, meeting, packet, recorded  # noqa: F401  (the fixture records sends)


async def test_a_host_mute_drops_the_audio_at_the_server_and_unmuting_continues_the_numbering():
    sfu = Sfu()
    try:
        alice, bob = await meeting(sfu, "alice", "bob")
        audio = alice.sources["audio"]
        pt = next(iter(audio.payload_types))
        for seq in range(3):
            await audio.on_rtp(packet(seq, seq * 960, b"\xfc\x01", ssrc=77, pt=pt), 0)
        assert len(bob.transport.rtp()) == 3
        alice.hold_audio(True)
        for seq in range(3, 10):
            await audio.on_rtp(packet(seq, seq * 960, b"\xfc\x01", ssrc=77, pt=pt), 0)
        assert audio.dropped == 7 and len(bob.transport.rtp()) == 3  # nothing went out
        alice.hold_audio(False)
        await audio.on_rtp(packet(10, 9600, b"\xfc\x01", ssrc=77, pt=pt), 0)
        sent = bob.transport.rtp()
        assert len(sent) == 4 and sent[3].sequence_number == (sent[2].sequence_number + 1) & 0xFFFF
        assert len({p.ssrc for p in sent}) == 1
    finally:
        await sfu.close()


async def test_a_track_whose_first_packet_comes_after_its_owner_left_gets_no_slots():
    sfu = Sfu()
    try:
        alice, bob, _carol = await meeting(sfu, "alice", "bob", "carol", publish=())
        screen = alice.sources["screen"]
        await sfu.rooms["r1"].leave("alice")
        await screen.on_rtp(packet(1, 0, KEY, ssrc=5, pt=next(iter(screen.payload_types))), 0)
        assert not screen.active and all(slot.source is None for slot in bob.slots)
        assert bob.track_map() == {}
    finally:
        await sfu.close()
