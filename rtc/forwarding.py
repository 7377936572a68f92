"""The SFU's packet logic, free of I/O: rewriting, NACK history, keyframe pacing, reports, speaker.

Everything here works on bytes and integers so the unit tests can feed crafted packets; `rtc.sfu` wires it to
peer connections. RTCP packets are built with aiortc's public packet classes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)

HEADER = struct.Struct("!BBHLL")
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
HISTORY_SIZE = 1024  # ~1 s of 720p video; a NACK older than that cannot help any more


def seq_newer(a: int, b: int) -> bool:
    """RFC 3550 serial-number comparison: is sequence number `a` after `b`?"""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def ts_newer(a: int, b: int) -> bool:
    return a != b and ((a - b) & 0xFFFFFFFF) < 0x80000000


def ntp_time(now: float) -> int:
    """64-bit NTP timestamp for a Unix time."""
    seconds = int(now)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | int((now - seconds) * (1 << 32))


def abs_send_time(now: float) -> int:
    """The 24-bit 6.18 fixed-point seconds of the abs-send-time header extension."""
    return (ntp_time(now) >> 14) & 0xFFFFFF


def vp8_keyframe(payload: bytes) -> bool:
    """Does this VP8 RTP payload start a key frame (RFC 7741 payload descriptor + frame tag)?"""
    if not payload:
        return False
    first = payload[0]
    pos = 1
    if first & 0x80:  # X: extended control bits
        if len(payload) < 2:
            return False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id
            if len(payload) <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K
            pos += 1
    start = bool(first & 0x10) and (first & 0x07) == 0
    return start and len(payload) > pos and (payload[pos] & 0x01) == 0


@dataclass(frozen=True)
class RtpHeader:
    """The fields of an incoming packet the forwarder needs; the payload stays untouched."""

    payload_type: int
    marker: int
    sequence_number: int
    timestamp: int
    ssrc: int


@dataclass(frozen=True)
class ExtensionIds:
    """Negotiated header extension ids of one outgoing stream (0: not negotiated)."""

    mid: int = 0
    abs_send_time: int = 0
    audio_level: int = 0


class OutboundStream:
    """One forwarded stream towards one subscriber: its own SSRC, payload types, sequence and timestamp space.

    Sources may change (someone leaves, someone else takes the slot): numbering continues without a
    jump, so the
    subscriber's jitter buffer sees one continuous stream.
    """

    def __init__(
        self,
        *,
        ssrc: int,
        payload_types: dict[int, int],
        clock_rate: int,
        mid: str,
        extensions: ExtensionIds,
        rtx_ssrc: int | None = None,
        rtx_payload_type: int | None = None,
        first_sequence: int = 0,
        first_timestamp: int = 0,
        is_video: bool = False,
    ) -> None:
        self.ssrc = ssrc
        self.payload_types = payload_types  # source payload type -> ours
        self.clock_rate = clock_rate
        self.mid = mid
        self.extensions = extensions
        # Header extension elements pre-encoded once (RFC 8285 one-byte form): only values change per packet.
        self._mid_element = (
            bytes([(extensions.mid << 4) | (len(mid) - 1)]) + mid.encode() if extensions.mid else b""
        )
        self._send_time_id = bytes([(extensions.abs_send_time << 4) | 2]) if extensions.abs_send_time else b""
        self._level_id = bytes([extensions.audio_level << 4]) if extensions.audio_level else b""
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_type = rtx_payload_type
        self.is_video = is_video
        self.source_ssrc: int | None = None
        self.seq_offset = 0
        self.ts_offset = 0
        self.last_seq = (first_sequence - 1) & 0xFFFF
        self.last_ts = first_timestamp & 0xFFFFFFFF
        self.last_ts_time = 0.0
        self.rtx_seq = first_sequence ^ 0x5555
        self.started = False
        self.waiting_for_keyframe = is_video
        self.packets_sent = 0
        self.octets_sent = 0
        self.history = PacketHistory()
        self.paused = False

    def switch_source(self) -> None:
        """Forget the current source; the next packet from any source continues the numbering."""
        self.source_ssrc = None
        self.waiting_for_keyframe = self.is_video

    def rewrite(
        self,
        header: RtpHeader,
        payload: bytes,
        now: float,
        *,
        audio_level: int | None = None,
        keyframe: bool = False,
        send_time: bytes | None = None,
    ) -> bytes | None:
        """The packet as this subscriber gets it; None for an unknown payload type or before a key frame."""
        pt = self.payload_types.get(header.payload_type)
        if pt is None or self.paused:
            return None
        if header.ssrc != self.source_ssrc:
            if self.waiting_for_keyframe and not keyframe:
                return None
            self._rebase(header, now)
        elif self.waiting_for_keyframe:
            if not keyframe:
                return None
        self.waiting_for_keyframe = False
        seq = (header.sequence_number + self.seq_offset) & 0xFFFF
        ts = (header.timestamp + self.ts_offset) & 0xFFFFFFFF
        if seq_newer(seq, self.last_seq):
            self.last_seq = seq
        if ts_newer(ts, self.last_ts) or ts == self.last_ts:
            self.last_ts = ts
            self.last_ts_time = now
        body = self._mid_element
        if self._send_time_id:
            body += self._send_time_id + (send_time or abs_send_time(now).to_bytes(3, "big"))
        if audio_level is not None and self._level_id:
            body += self._level_id + bytes((audio_level & 0xFF,))
        if body:
            body += b"\x00" * (-len(body) % 4)
            first = 0x90
            body = b"\xbe\xde" + (len(body) >> 2).to_bytes(2, "big") + body
        else:
            first = 0x80
        data = HEADER.pack(first, (header.marker << 7) | pt, seq, ts, self.ssrc) + body + payload
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self.history.add(seq, data)
        return data

    def _rebase(self, header: RtpHeader, now: float) -> None:
        next_seq = (self.last_seq + 1) & 0xFFFF
        self.seq_offset = (next_seq - header.sequence_number) & 0xFFFF
        if self.started:
            # Keep the subscriber's clock running: the new source starts where wall time says we are.
            elapsed = max(1, int((now - self.last_ts_time) * self.clock_rate))
            next_ts = (self.last_ts + elapsed) & 0xFFFFFFFF
        else:
            next_ts = self.last_ts
        self.ts_offset = (next_ts - header.timestamp) & 0xFFFFFFFF
        self.source_ssrc = header.ssrc
        self.started = True

    def to_source_timestamp(self, ts: int) -> int:
        return (ts - self.ts_offset) & 0xFFFFFFFF

    def from_source_timestamp(self, ts: int) -> int:
        return (ts + self.ts_offset) & 0xFFFFFFFF

    def to_source_sequence(self, seq: int) -> int:
        return (seq - self.seq_offset) & 0xFFFF

    def retransmission(self, seq: int) -> bytes | None:
        """What to send for a NACKed sequence number: RTX (RFC 4588) when negotiated, else the original."""
        data = self.history.get(seq)
        if data is None:
            return None
        if self.rtx_ssrc is None or self.rtx_payload_type is None:
            return data
        rtx_seq = self.rtx_seq
        self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        return wrap_rtx_bytes(data, self.rtx_payload_type, rtx_seq, self.rtx_ssrc)


def header_length(data: bytes) -> int:
    """Length of an RTP packet's fixed header, CSRCs and header extension."""
    pos = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        (words,) = struct.unpack_from("!H", data, pos + 2)
        pos += 4 + 4 * words
    return pos


def wrap_rtx_bytes(data: bytes, payload_type: int, sequence_number: int, ssrc: int) -> bytes:
    """RFC 4588 retransmission: same extensions and timestamp, the original sequence number first."""
    end = header_length(data)
    marker = data[1] & 0x80
    original_seq = data[2:4]
    head = bytes([data[0], marker | payload_type]) + struct.pack("!H", sequence_number) + data[4:8]
    head += struct.pack("!L", ssrc) + data[12:end]
    return head + original_seq + data[end:]


class PacketHistory:
    """Send-side history of what a subscriber was sent, indexed by our sequence number, for NACK answers."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self.size = size
        self._seqs: list[int] = [-1] * size
        self._data: list[bytes | None] = [None] * size

    def add(self, seq: int, data: bytes) -> None:
        slot = seq % self.size
        self._seqs[slot] = seq
        self._data[slot] = data

    def get(self, seq: int) -> bytes | None:
        slot = seq % self.size
        return self._data[slot] if self._seqs[slot] == seq else None


class RateLimit:
    """At most one event per interval (keyframe requests towards a publisher)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = float("-inf")
        self.allowed = 0
        self.suppressed = 0

    def __call__(self) -> bool:
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self.allowed += 1
            return True
        self.suppressed += 1
        return False


@dataclass
class SourceClock:
    """The publisher's NTP ↔ RTP mapping from its last sender report, anchored to our monotonic clock."""

    clock_rate: int
    ntp: int = 0
    rtp: int = 0
    received_at: float = 0.0
    known: bool = False

    def update(self, ntp: int, rtp: int, received_at: float) -> None:
        self.ntp, self.rtp, self.received_at, self.known = ntp, rtp, received_at, True

    def at(self, now: float) -> tuple[int, int]:
        """(NTP, source RTP timestamp) for `now`, extrapolated from the last report."""
        elapsed = now - self.received_at
        ntp = (self.ntp + int(elapsed * (1 << 32))) & 0xFFFFFFFFFFFFFFFF
        rtp = (self.rtp + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        return ntp, rtp


def sender_report(
    stream: OutboundStream, source: SourceClock | None, now: float, wall: float
) -> RtcpSrPacket | None:
    """An RTCP SR for one forwarded stream.

    With the publisher's report known, the NTP time is the publisher's clock and the RTP time is translated
    into
    our timestamp space, so the subscriber lines audio and video of one person up exactly as the publisher
    meant. Before that, our own wall clock and the last forwarded timestamp keep the report plausible.
    """
    if not stream.started:
        return None
    if source is not None and source.known:
        ntp, src_rtp = source.at(now)
        rtp = stream.from_source_timestamp(src_rtp)
    else:
        ntp = ntp_time(wall)
        rtp = (stream.last_ts + int((now - stream.last_ts_time) * stream.clock_rate)) & 0xFFFFFFFF
    return RtcpSrPacket(
        ssrc=stream.ssrc,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=rtp,
            packet_count=stream.packets_sent & 0xFFFFFFFF,
            octet_count=stream.octets_sent & 0xFFFFFFFF,
        ),
    )


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender_ssrc, media_ssrc=media_ssrc))


def remb(sender_ssrc: int, bitrate: int, media_ssrcs: list[int]) -> bytes:
    return bytes(
        RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=sender_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, media_ssrcs)
        )
    )


def nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=sender_ssrc, media_ssrc=media_ssrc)
    packet.lost = lost
    return bytes(packet)


@dataclass
class ReceiveStats:
    """Reception statistics of one published stream, for the receiver reports rate control needs."""

    ssrc: int
    base_seq: int | None = None
    max_seq: int = 0
    cycles: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0

    def add(self, seq: int) -> None:
        self.received += 1
        if self.base_seq is None:
            self.base_seq = self.max_seq = seq
            return
        if seq_newer(seq, self.max_seq):
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq

    def report(self) -> RtcpReceiverInfo | None:
        if self.base_seq is None:
            return None
        extended = self.cycles + self.max_seq
        expected = extended - self.base_seq + 1
        lost = max(0, expected - self.received)
        interval_expected = expected - self.expected_prior
        interval_lost = interval_expected - (self.received - self.received_prior)
        self.expected_prior, self.received_prior = expected, self.received
        fraction = (
            (interval_lost << 8) // interval_expected if interval_expected > 0 and interval_lost > 0 else 0
        )
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=min(255, fraction),
            packets_lost=min(lost, (1 << 23) - 1),
            highest_sequence=extended & 0xFFFFFFFF,
            jitter=0,
            lsr=0,
            dlsr=0,
        )


def receiver_report(sender_ssrc: int, stats: list[ReceiveStats]) -> bytes | None:
    reports = [r for r in (s.report() for s in stats) if r is not None]
    return bytes(RtcpRrPacket(ssrc=sender_ssrc, reports=reports)) if reports else None


@dataclass
class SpeakerDetector:
    """Active speaker from the audio-level extension (RFC 6464: 0 loudest … 127 silent, in -dBov).

    Each participant's level is smoothed; the loudest above a threshold wins, and a new speaker must beat the
    current one for a moment before the highlight moves (no flicker on a cough).
    """

    threshold_dbov: int = 50  # quieter than -50 dBov counts as silence
    smoothing: float = 0.3
    hold_seconds: float = 0.8
    levels: dict[str, float] = field(default_factory=dict)
    current: str | None = None
    _candidate: str | None = None
    _candidate_since: float = 0.0

    def add(self, participant: str, level_dbov: int) -> None:
        loudness = max(0.0, 127.0 - level_dbov)
        previous = self.levels.get(participant, 0.0)
        self.levels[participant] = previous + self.smoothing * (loudness - previous)

    def decay(self, participant: str) -> None:
        self.levels[participant] = self.levels.get(participant, 0.0) * (1 - self.smoothing)

    def remove(self, participant: str) -> None:
        self.levels.pop(participant, None)
        if self.current == participant:
            self.current = None

    def update(self, now: float) -> str | None:
        """Return the new active speaker when it changes, else None."""
        floor = 127.0 - self.threshold_dbov
        loud = [(level, who) for who, level in self.levels.items() if level >= floor]
        if not loud:
            self._candidate = None
            return None
        _, best = max(loud)
        if best == self.current:
            self._candidate = None
            return None
        if best != self._candidate:
            self._candidate, self._candidate_since = best, now
            if self.current is not None:
                return None
        if self.current is None or now - self._candidate_since >= self.hold_seconds:
            self.current = best
            self._candidate = None
            return best
        return None
