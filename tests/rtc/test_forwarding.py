"""The SFU's packet logic with crafted packets: rewriting, NACK history, keyframe pacing, reports, speaker."""

from __future__ import annotations

import struct

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpRrPacket,
    RtpPacket,
    unpack_remb_fci,
    unwrap_rtx,
)

from rtc.forwarding import (
    ExtensionIds,
    OutboundStream,
    PacketHistory,
    RateLimit,
    ReceiveStats,
    RtpHeader,
    SourceClock,
    SpeakerDetector,
    nack,
    ntp_time,
    pli,
    receiver_report,
    remb,
    sender_report,
    vp8_keyframe,
    wrap_rtx_bytes,
)

KEY = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])  # S=1, partition 0; frame tag P=0 (key frame)
DELTA = bytes([0x10, 0x01, 0x00])  # P=1
CONT = bytes([0x00, 0x01, 0x00])  # continuation packet of a frame
EXT = ExtensionIds(mid=1, abs_send_time=2, audio_level=3)


def ext_map() -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
                RTCRtpHeaderExtensionParameters(id=3, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            ]
        )
    )
    return m


def video(**kw) -> OutboundStream:
    args = dict(
        ssrc=0xAABBCCDD,
        payload_types={96: 97},
        clock_rate=90000,
        mid="4",
        extensions=EXT,
        rtx_ssrc=0x11223344,
        rtx_payload_type=98,
        first_sequence=65530,
        first_timestamp=0xFFFFFF00,
        is_video=True,
    )
    args.update(kw)
    return OutboundStream(**args)


def hdr(seq: int, ts: int, ssrc: int = 1111, pt: int = 96, marker: int = 0) -> RtpHeader:
    return RtpHeader(payload_type=pt, marker=marker, sequence_number=seq, timestamp=ts, ssrc=ssrc)


def parse(data: bytes) -> RtpPacket:
    return RtpPacket.parse(data, ext_map())


def test_rewrites_ssrc_payload_type_sequence_timestamp_and_mid_without_touching_the_payload():
    out = video()
    data = out.rewrite(hdr(1000, 5000, marker=1), KEY + b"frame", now=1.0, keyframe=True)
    p = parse(data)
    assert (p.ssrc, p.payload_type, p.marker) == (0xAABBCCDD, 97, 1)
    assert p.sequence_number == 65530 and p.timestamp == 0xFFFFFF00
    assert p.extensions.mid == "4" and p.extensions.abs_send_time is not None
    assert p.payload == KEY + b"frame"
    # Numbering follows the source, wrapping at 16 and 32 bits.
    p2 = parse(out.rewrite(hdr(1010, 5000 + 3000), DELTA, now=1.033))
    assert p2.sequence_number == (65530 + 10) & 0xFFFF == 4
    assert p2.timestamp == (0xFFFFFF00 + 3000) & 0xFFFFFFFF


def test_video_waits_for_a_key_frame_and_drops_unknown_payload_types():
    out = video()
    assert out.rewrite(hdr(1, 0), DELTA, now=0.0) is None
    assert out.waiting_for_keyframe
    assert out.rewrite(hdr(2, 0, pt=98), KEY, now=0.0, keyframe=True) is None  # RTX/unknown pt
    assert out.rewrite(hdr(3, 0), KEY, now=0.0, keyframe=True) is not None
    assert out.rewrite(hdr(4, 0), CONT, now=0.0) is not None  # rest of the frame flows


def test_numbering_is_continuous_across_source_switches():
    out = video()
    for i in range(5):
        out.rewrite(hdr(100 + i, 9000 * i, ssrc=1), KEY if i == 0 else DELTA, now=i / 30, keyframe=i == 0)
    last = parse(out.history.get((65530 + 4) & 0xFFFF))
    out.switch_source()
    assert (
        out.rewrite(hdr(40000, 123456, ssrc=2), DELTA, now=0.5) is None
    )  # new source: wait for its key frame
    first = parse(out.rewrite(hdr(40001, 123456, ssrc=2), KEY, now=0.5, keyframe=True))
    assert first.sequence_number == (last.sequence_number + 1) & 0xFFFF
    elapsed = first.timestamp - last.timestamp
    assert 0 < elapsed <= int((0.5 - 4 / 30) * 90000) + 1  # the clock moved on by wall time, no jump back
    nxt = parse(out.rewrite(hdr(40002, 123456 + 3000, ssrc=2), DELTA, now=0.53))
    assert nxt.sequence_number == (first.sequence_number + 1) & 0xFFFF
    assert nxt.timestamp - first.timestamp == 3000


def test_audio_switches_without_waiting_and_carries_the_audio_level():
    out = OutboundStream(
        ssrc=5, payload_types={111: 109}, clock_rate=48000, mid="3", extensions=EXT, first_sequence=10
    )
    a = parse(out.rewrite(hdr(7, 960, ssrc=1, pt=111), b"opus", now=0.0, audio_level=0x80 | 30))
    assert (a.payload_type, a.sequence_number, a.extensions.audio_level) == (109, 10, (True, 30))
    out.switch_source()
    b = parse(out.rewrite(hdr(60000, 1, ssrc=2, pt=111), b"opus", now=0.02))
    assert b.sequence_number == 11 and b.timestamp - a.timestamp == 960


def test_out_of_order_packets_keep_their_relative_order():
    out = video()
    out.rewrite(hdr(10, 0), KEY, now=0.0, keyframe=True)
    late = parse(out.rewrite(hdr(12, 0), CONT, now=0.0))
    early = parse(out.rewrite(hdr(11, 0), CONT, now=0.0))
    assert (late.sequence_number - early.sequence_number) & 0xFFFF == 1


def test_nack_answers_with_rtx_from_the_send_side_history():
    out = video()
    sent = [out.rewrite(hdr(500 + i, 0), KEY if i == 0 else CONT, now=0.0, keyframe=i == 0) for i in range(4)]
    lost = parse(sent[2])
    rtx_data = out.retransmission(lost.sequence_number)
    rtx = parse(rtx_data)
    assert (rtx.ssrc, rtx.payload_type) == (0x11223344, 98)
    restored = unwrap_rtx(rtx, payload_type=97, ssrc=0xAABBCCDD)
    assert restored.sequence_number == lost.sequence_number
    assert restored.payload == lost.payload and restored.timestamp == lost.timestamp
    again = parse(out.retransmission(lost.sequence_number))
    assert again.sequence_number == (rtx.sequence_number + 1) & 0xFFFF  # RTX has its own numbering
    assert out.retransmission((lost.sequence_number + 100) & 0xFFFF) is None  # never sent


def test_without_rtx_the_original_packet_is_resent():
    out = video(rtx_ssrc=None, rtx_payload_type=None)
    data = out.rewrite(hdr(1, 0), KEY, now=0.0, keyframe=True)
    assert out.retransmission(65530) == data


def test_history_forgets_what_was_overwritten():
    history = PacketHistory(size=4)
    for seq in range(6):
        history.add(seq, bytes([seq]))
    assert history.get(1) is None and history.get(5) == b"\x05" and history.get(2) == b"\x02"


def test_wrap_rtx_bytes_matches_aiortc():
    packet = RtpPacket(payload_type=97, marker=1, sequence_number=4242, timestamp=77, ssrc=9, payload=b"abc")
    packet.extensions.mid = "1"
    data = packet.serialize(ext_map())
    rtx = parse(wrap_rtx_bytes(data, 98, 7, 10))
    assert (rtx.payload_type, rtx.sequence_number, rtx.ssrc, rtx.marker) == (98, 7, 10, 1)
    assert rtx.payload == struct.pack("!H", 4242) + b"abc" and rtx.extensions.mid == "1"


def test_vp8_keyframe_detection():
    assert vp8_keyframe(KEY)
    assert not vp8_keyframe(DELTA)
    assert not vp8_keyframe(CONT)
    # Extended descriptor with a 15-bit picture id (X=1, I=1, M=1).
    assert vp8_keyframe(bytes([0x90, 0x80, 0x80 | 0x12, 0x34, 0x50]))
    assert not vp8_keyframe(bytes([0x90, 0x80, 0x80 | 0x12, 0x34, 0x51]))
    assert not vp8_keyframe(b"")


def test_keyframe_requests_are_rate_limited():
    now = [0.0]
    limit = RateLimit(0.5, clock=lambda: now[0])
    results = []
    for step in range(20):  # 20 requests over one second
        now[0] = step * 0.05
        results.append(limit())
    assert results.count(True) == 2 and limit.suppressed == 18


def test_sender_report_translates_the_publishers_clock_into_our_timestamps():
    out = video()
    out.rewrite(hdr(1, 1_000_000), KEY, now=10.0, keyframe=True)
    clock = SourceClock(clock_rate=90000)
    publisher_ntp = ntp_time(1_700_000_000.0)
    clock.update(publisher_ntp, 1_000_000, received_at=10.0)
    sr = sender_report(out, clock, now=11.0, wall=0.0)
    assert sr is not None and sr.ssrc == 0xAABBCCDD
    assert sr.sender_info.rtp_timestamp == out.from_source_timestamp(1_000_000 + 90000)
    assert sr.sender_info.ntp_timestamp == ntp_time(1_700_000_001.0)
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (1, len(KEY))
    # Parsable RTCP, round trip.
    assert RtcpPacket.parse(bytes(sr))[0].sender_info.rtp_timestamp == sr.sender_info.rtp_timestamp


def test_audio_and_video_reports_of_one_publisher_agree_on_time():
    """Lip sync: both reports map the same NTP instant to each stream's own timestamp of that instant."""
    a = OutboundStream(ssrc=1, payload_types={111: 111}, clock_rate=48000, mid="0", extensions=EXT)
    v = video()
    a.rewrite(hdr(1, 48000 * 5, pt=111), b"o", now=1.0)
    v.rewrite(hdr(1, 90000 * 5), KEY, now=1.0, keyframe=True)
    ntp = ntp_time(1_700_000_000.0)
    audio_clock, video_clock = SourceClock(48000), SourceClock(90000)
    audio_clock.update(ntp, 48000 * 5, 1.0)
    video_clock.update(ntp, 90000 * 5, 1.0)
    sa, sv = sender_report(a, audio_clock, 3.0, 0.0), sender_report(v, video_clock, 3.0, 0.0)
    assert sa.sender_info.ntp_timestamp == sv.sender_info.ntp_timestamp
    assert sa.sender_info.rtp_timestamp == a.from_source_timestamp(48000 * 7)
    assert sv.sender_info.rtp_timestamp == v.from_source_timestamp(90000 * 7)


def test_sender_report_before_the_publishers_report_uses_the_last_forwarded_timestamp():
    out = video()
    assert sender_report(out, None, now=0.0, wall=0.0) is None  # nothing sent yet
    out.rewrite(hdr(1, 0), KEY, now=5.0, keyframe=True)
    sr = sender_report(out, None, now=6.0, wall=1_700_000_000.0)
    assert sr.sender_info.rtp_timestamp == (out.last_ts + 90000) & 0xFFFFFFFF


def test_rtcp_feedback_packets_parse():
    (p,) = RtcpPacket.parse(pli(1, 2))
    assert (p.fmt, p.ssrc, p.media_ssrc) == (RTCP_PSFB_PLI, 1, 2)
    (r,) = RtcpPacket.parse(remb(1, 800_000, [2]))
    assert r.fmt == RTCP_PSFB_APP and unpack_remb_fci(r.fci)[1] == [2]
    assert abs(unpack_remb_fci(r.fci)[0] - 800_000) < 800_000 * 0.01
    (n,) = RtcpPacket.parse(nack(1, 2, [10, 11, 30]))
    assert n.fmt == RTCP_RTPFB_NACK and n.lost == [10, 11, 30]


def test_receiver_report_counts_loss():
    stats = ReceiveStats(ssrc=7)
    for seq in [65534, 65535, 0, 2, 3]:  # 1 lost, across the wrap
        stats.add(seq)
    (rr,) = RtcpPacket.parse(receiver_report(9, [stats]))
    assert isinstance(rr, RtcpRrPacket)
    report = rr.reports[0]
    assert report.packets_lost == 1 and report.highest_sequence == (1 << 16) + 3
    assert report.fraction_lost == 256 // 6


def test_active_speaker_needs_to_be_louder_for_a_moment():
    detector = SpeakerDetector(hold_seconds=0.5)
    for _ in range(20):
        detector.add("a", 20)
        detector.add("b", 120)
    assert detector.update(0.0) == "a"
    assert detector.update(0.1) is None
    for _ in range(30):
        detector.add("b", 10)
        detector.decay("a")
    assert detector.update(0.2) is None  # b must stay loudest for hold_seconds
    assert detector.update(0.8) == "b"
    detector.remove("b")
    assert detector.current is None


def test_silence_names_no_speaker():
    detector = SpeakerDetector()
    for _ in range(10):
        detector.add("a", 127)
    assert detector.update(0.0) is None
