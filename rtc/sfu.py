"""The pass-through SFU: one peer connection per participant; RTP is forwarded, never decoded or encoded.

Each participant may publish three tracks on the server's receive-only transceivers (audio, video, screen) and
receives the others' through send-only *slots*. A slot is made when a track first carries media (so a hundred
viewers who publish nothing cost nothing), and a slot freed by someone leaving is reused by the next person:
most joins and leaves need no renegotiation, and each slot's numbering runs on without a jump.
The server always makes the offer: there is never glare, and the browser only answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.exceptions import InvalidStateError
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from rtc import aiortc_glue as glue
from rtc.forwarding import (
    ExtensionIds,
    OutboundStream,
    RateLimit,
    ReceiveStats,
    RtpHeader,
    SourceClock,
    SpeakerDetector,
    abs_send_time,
    nack,
    pli,
    receiver_report,
    remb,
    sender_report,
    vp8_keyframe,
)

log = logging.getLogger("telework.rtc.sfu")

TRACKS = (("audio", "audio"), ("video", "video"), ("screen", "video"))  # published track name, kind
MID_EXT = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_EXT = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_EXT = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
KEYFRAME_INTERVAL = 0.5  # at most two keyframe requests per second reach a publisher
REMB_FRESH_SECONDS = 5.0
TICK_SECONDS = 0.25
STREAMS_PER_PERSON = 2  # audio + video; a screen share is occasional and not budgeted
ANSWER_TIMEOUT = 30.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
Event = Callable[[dict[str, Any]], Awaitable[None]]


class CapacityExceeded(Exception):
    """This worker would forward more streams than it may: refuse the room rather than degrade everyone."""


class RoomFull(Exception):
    """The room has reached its participant limit."""


def _ids(extensions: list[Any]) -> ExtensionIds:
    by_uri = {e.uri: e.id for e in extensions}
    return ExtensionIds(
        mid=by_uri.get(MID_EXT, 0),
        abs_send_time=by_uri.get(ABS_SEND_TIME_EXT, 0),
        audio_level=by_uri.get(AUDIO_LEVEL_EXT, 0),
    )


def _prefer(transceiver: Any, kind: str) -> None:
    """VP8 (+RTX) and Opus only: publishers and subscribers share one codec, so nothing is transcoded."""
    wanted = {"video": ("video/vp8", "video/rtx"), "audio": ("audio/opus",)}[kind]
    caps = RTCRtpSender.getCapabilities(kind)
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType.lower() in wanted])


@dataclass(eq=False)
class Source:
    """One published track of one participant, with the slots it is forwarded to."""

    owner: Participant
    name: str
    kind: str
    transceiver: Any
    ssrc: int | None = None
    clock_rate: int = 90000
    payload_types: set[int] = field(default_factory=set)
    slots: list[Slot] = field(default_factory=list)
    keyframes: RateLimit = field(default_factory=lambda: RateLimit(KEYFRAME_INTERVAL))
    clock: SourceClock | None = None
    stats: ReceiveStats | None = None
    packets: int = 0
    last_audio: float = 0.0
    active: bool = False  # has sent media: others get slots for it
    rtx_payload_type: int | None = None
    rtx_ssrc: int | None = None
    recovered: int = 0
    held: bool = False  # a host muted the owner: their packets go nowhere until they unmute themselves
    dropped: int = 0

    @property
    def feedback_ssrc(self) -> int:
        return glue.sender_ssrcs(self.transceiver.sender)[0]

    async def on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """The hot path: one incoming packet, rewritten and sent to every subscribed slot."""
        if self.held:
            self.dropped += 1
            return
        if packet.payload_type not in self.payload_types:
            if packet.payload_type != self.rtx_payload_type or self.ssrc is None or len(packet.payload) < 3:
                return  # unknown, or an RTX padding probe: nothing to forward
            # A retransmission we asked for (RFC 4588): the original sequence number leads the payload.
            original = RtpPacket(
                payload_type=next(iter(self.payload_types)),
                marker=packet.marker,
                sequence_number=int.from_bytes(packet.payload[:2], "big"),
                timestamp=packet.timestamp,
                ssrc=self.ssrc,
                payload=packet.payload[2:],
            )
            original.extensions = packet.extensions
            self.recovered += 1
            packet = original
        if self.ssrc != packet.ssrc:
            self.ssrc = packet.ssrc
            self.stats = ReceiveStats(packet.ssrc)
            self.clock = SourceClock(self.clock_rate)
            if not self.active:
                self.owner.room.activate(self)
        self.packets += 1
        assert self.stats is not None
        self.stats.add(packet.sequence_number)
        now = time.monotonic()
        level = None
        keyframe = False
        if self.kind == "audio":
            if packet.extensions.audio_level is not None:
                vad, level = packet.extensions.audio_level
                self.owner.room.speakers.add(self.owner.id, level)
                self.last_audio = now
                level = (0x80 if vad else 0) | level
        else:
            keyframe = vp8_keyframe(packet.payload)
        header = RtpHeader(
            packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc
        )
        send_time = abs_send_time(now).to_bytes(3, "big")  # computed once for every subscriber
        waiting = False
        forwarded = 0
        for slot in self.slots:
            stream = slot.stream
            if stream is None or slot.owner.transport.state != "connected":
                continue  # not connected yet: the stream keeps waiting, so its first packet is a key frame
            data = stream.rewrite(
                header, packet.payload, now, audio_level=level, keyframe=keyframe, send_time=send_time
            )
            if data is None:
                waiting = waiting or stream.waiting_for_keyframe
                continue
            owner = slot.owner
            send = owner.fast_send or owner.resolve_fast_send()
            if send is not None:
                send(data)
            else:
                with contextlib.suppress(ConnectionError):
                    await glue.send_rtp(owner.transport, data)
            forwarded += 1
        self.owner.room.sfu.forwarded_packets += forwarded
        if waiting:
            await self.request_keyframe()

    async def on_rtcp(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and self.clock is not None and packet.ssrc == self.ssrc:
            info = packet.sender_info
            self.clock.update(info.ntp_timestamp, info.rtp_timestamp, time.monotonic())

    async def request_keyframe(self) -> bool:
        """Ask the publisher for a key frame (PLI), at most once per KEYFRAME_INTERVAL."""
        if self.kind != "video" or self.ssrc is None or not self.keyframes():
            return False
        await self.owner.send_rtcp(pli(self.feedback_ssrc, self.ssrc))
        return True


@dataclass(eq=False)
class Slot:
    """A send-only transceiver towards one subscriber, carrying one source at a time (or none)."""

    owner: Participant
    kind: str
    transceiver: Any
    source: Source | None = None
    stream: OutboundStream | None = None
    remb_bps: int | None = None
    remb_at: float = 0.0
    nacks: int = 0
    retransmitted: int = 0
    keyframe_requests: int = 0

    @property
    def mid(self) -> str | None:
        return self.transceiver.mid  # type: ignore[no-any-return]

    def ready(self) -> None:
        """After negotiation: build the outgoing stream from what was agreed (payload types, SSRCs)."""
        if self.stream is not None:
            return
        codecs, extensions = glue.negotiated(self.transceiver)
        primary, rtx_pt = glue.primary_and_rtx(codecs)
        if primary is None or self.mid is None:
            return
        ssrc, rtx_ssrc = glue.sender_ssrcs(self.transceiver.sender)
        self.stream = OutboundStream(
            ssrc=ssrc,
            payload_types={},
            clock_rate=primary.clockRate,
            mid=self.mid,
            extensions=_ids(extensions),
            rtx_ssrc=rtx_ssrc if rtx_pt is not None else None,
            rtx_payload_type=rtx_pt,
            first_sequence=secrets.randbelow(1 << 16),
            first_timestamp=secrets.randbelow(1 << 32),
            is_video=self.kind == "video",
        )
        self.stream.paused = self.kind == "video" and self.owner.audio_only
        self._primary_pt = primary.payloadType
        if self.source is not None:
            self._bind(self.source)

    def assign(self, source: Source | None) -> None:
        if self.source is not None and self in self.source.slots:
            self.source.slots.remove(self)
        self.source = source
        if self.stream is not None:
            self.stream.switch_source()
        if source is not None and self.stream is not None:
            self._bind(source)

    def _bind(self, source: Source) -> None:
        assert self.stream is not None
        self.stream.payload_types = {pt: self._primary_pt for pt in source.payload_types}
        self.stream.clock_rate = source.clock_rate
        if self not in source.slots:
            source.slots.append(self)

    async def on_rtcp(self, packet: Any) -> None:
        """Feedback from the subscriber about this slot: NACK, PLI/FIR, REMB."""
        stream, source = self.stream, self.source
        if stream is None:
            return
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            missing: list[int] = []
            for seq in packet.lost:
                self.nacks += 1
                data = stream.retransmission(seq)
                if data is None:
                    missing.append(stream.to_source_sequence(seq))
                    continue
                self.retransmitted += 1
                with contextlib.suppress(ConnectionError):
                    await glue.send_rtp(self.owner.transport, data)
            if missing and source is not None and source.ssrc is not None:
                await source.owner.send_rtcp(nack(source.feedback_ssrc, source.ssrc, missing))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.keyframe_requests += 1
            if source is not None:
                await source.request_keyframe()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                self.remb_bps, _ = unpack_remb_fci(packet.fci)
                self.remb_at = time.monotonic()


class Participant:
    """One person in a room: their peer connection, what they publish and the slots they receive on."""

    def __init__(self, room: MediaRoom, participant_id: str, send: Send, *, audio_only: bool = False) -> None:
        self.room = room
        self.id = participant_id
        self.send = send
        self.audio_only = audio_only
        # One transport for everything (max-bundle): every slot sends through `self.transport`.
        config = RTCConfiguration(iceServers=room.sfu.ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = RTCPeerConnection(config)
        self.sources: dict[str, Source] = {}
        self.slots: list[Slot] = []
        self.transport: Any = None
        self.fast_send: Callable[[bytes], None] | None = None
        self._lock = asyncio.Lock()
        self._answer: asyncio.Future[RTCSessionDescription] | None = None
        self._dirty = False
        self.negotiations = 0
        for name, kind in TRACKS:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            _prefer(transceiver, kind)
            source = Source(owner=self, name=name, kind=kind, transceiver=transceiver)
            glue.hook_receiver(transceiver.receiver, source.on_rtp, source.on_rtcp)
            self.sources[name] = source
        self.transport = self.pc.getTransceivers()[0].sender.transport

    def add_slot(self, kind: str) -> Slot:
        transceiver = self.pc.addTransceiver(glue.SilentTrack(kind), direction="sendonly")
        _prefer(transceiver, kind)
        slot = Slot(owner=self, kind=kind, transceiver=transceiver)
        glue.hook_sender(transceiver.sender, slot.on_rtcp)
        self.slots.append(slot)
        self._dirty = True
        return slot

    def free_slot(self, kind: str) -> Slot:
        for slot in self.slots:
            if slot.kind == kind and slot.source is None:
                return slot
        return self.add_slot(kind)

    def track_map(self) -> dict[str, dict[str, str]]:
        """mid → whose track it carries, for the page to put each remote track on the right tile."""
        return {
            slot.mid: {"participant": slot.source.owner.id, "track": slot.source.name}
            for slot in self.slots
            if slot.mid is not None and slot.source is not None
        }

    def resolve_fast_send(self) -> Callable[[bytes], None] | None:
        self.fast_send = glue.fast_rtp_sender(self.transport)
        return self.fast_send

    async def send_tracks(self) -> None:
        await self.send({"type": "tracks", "tracks": self.track_map()})

    async def send_tracks_settled(self) -> None:
        """The map again once a negotiation in flight is over: its offer may carry an older map."""
        async with self._lock:
            with contextlib.suppress(Exception):  # they may have left too, meanwhile
                await self.send_tracks()

    async def send_rtcp(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await glue.send_rtp(self.transport, data)

    async def negotiate(self) -> None:
        """Offer, wait for the answer, bind what was agreed; repeat while something changed meanwhile."""
        self._dirty = True
        async with self._lock:
            while self._dirty and self.pc.connectionState != "closed":
                self._dirty = False
                offer = await self.pc.createOffer()
                await self.pc.setLocalDescription(offer)
                self._answer = asyncio.get_running_loop().create_future()
                await self.send(
                    {"type": "offer", "sdp": self.pc.localDescription.sdp, "tracks": self.track_map()}
                )
                answer = await asyncio.wait_for(self._answer, ANSWER_TIMEOUT)
                await self.pc.setRemoteDescription(answer)
                self.negotiations += 1
                self._bind_sources()
                for slot in self.slots:
                    slot.ready()
                    if slot.source is not None:
                        await slot.source.request_keyframe()

    def _bind_sources(self) -> None:
        rtx_ssrcs = self._remote_rtx_ssrcs()
        for source in self.sources.values():
            codecs, _ = glue.negotiated(source.transceiver)
            primary, rtx_pt = glue.primary_and_rtx(codecs)
            if primary is not None:
                source.payload_types = {primary.payloadType}
                source.clock_rate = primary.clockRate
                source.rtx_payload_type = rtx_pt
            rtx_ssrc = rtx_ssrcs.get(source.transceiver.mid)
            if rtx_ssrc is not None and rtx_ssrc != source.rtx_ssrc:
                source.rtx_ssrc = rtx_ssrc
                glue.route_ssrc(source.transceiver.receiver, rtx_ssrc)
                for slot in source.slots:
                    if slot.stream is not None:
                        slot._bind(source)

    def _remote_rtx_ssrcs(self) -> dict[str, int]:
        """mid → the RTX SSRC the browser announced (a=ssrc-group:FID), so its retransmissions reach us."""
        description = self.pc.remoteDescription
        if description is None:
            return {}
        found = {}
        for media in SessionDescription.parse(description.sdp).media:
            for group in media.ssrc_group:
                if group.semantic == "FID" and len(group.items) == 2 and media.rtp.muxId:
                    found[media.rtp.muxId] = int(group.items[1])
        return found

    def answer(self, sdp: str) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(RTCSessionDescription(sdp=sdp, type="answer"))

    async def add_ice_candidate(self, candidate: dict[str, Any]) -> None:
        text = str(candidate.get("candidate") or "")
        if not text:
            return
        parsed = candidate_from_sdp(text.removeprefix("candidate:"))
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    async def set_audio_only(self, on: bool) -> None:
        """Low-bandwidth mode: stop forwarding video to this person; resume with a fresh key frame."""
        self.audio_only = on
        for slot in self.slots:
            if slot.kind == "video" and slot.stream is not None:
                slot.stream.paused = on
                if not on:
                    slot.stream.waiting_for_keyframe = True
                    if slot.source is not None:
                        await slot.source.request_keyframe()

    def hold_audio(self, on: bool) -> None:
        """A host's mute: drop this person's audio at the server (not a flag the page could ignore).

        On release the next packet continues each subscriber's numbering (as when a slot changes hands).
        """
        source = self.sources["audio"]
        if source.held == on:
            return
        source.held = on
        if on:
            self.room.speakers.remove(self.id)
        else:
            for slot in source.slots:
                if slot.stream is not None:
                    slot.stream.switch_source()

    async def close(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        await self.pc.close()


class MediaRoom:
    """The participants of one meeting on this worker, and the periodic RTCP that keeps streams healthy."""

    def __init__(self, sfu: Sfu, room_id: str, on_event: Event | None = None) -> None:
        self.sfu = sfu
        self.id = room_id
        self.participants: dict[str, Participant] = {}
        self.speakers = SpeakerDetector()
        self.on_event = on_event
        self._task: asyncio.Task[None] | None = None

    def forwarded_streams(self) -> int:
        """Streams this room forwards now: each published track times the people receiving it."""
        return sum(len(source.slots) for p in self.participants.values() for source in p.sources.values())

    async def join(self, participant_id: str, send: Send, *, audio_only: bool = False) -> Participant:
        """Add a participant and give them slots for every track being published; refuse past the limits.

        The budget assumes the newcomer will publish audio and video, seen by everyone, and see everyone's.
        """
        if participant_id in self.participants:
            await self.leave(participant_id)
        n = len(self.participants)
        if n >= self.sfu.max_participants:
            raise RoomFull
        if self.sfu.forwarded_streams() + 2 * n * STREAMS_PER_PERSON > self.sfu.max_streams:
            raise CapacityExceeded
        newcomer = Participant(self, participant_id, send, audio_only=audio_only)
        for other in self.participants.values():
            for source in other.sources.values():
                if source.active:
                    newcomer.free_slot(source.kind).assign(source)
        self.participants[participant_id] = newcomer
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return newcomer

    def activate(self, source: Source) -> None:
        """A track started to flow: everyone else gets a slot for it (a free one if they have it)."""
        if self.participants.get(source.owner.id) is not source.owner:
            return  # a packet that arrived after its owner left: their slots are already freed for good
        source.active = True
        for other in self.participants.values():
            if other is source.owner or any(slot.source is source for slot in other.slots):
                continue
            other.free_slot(source.kind).assign(source)
            if other._dirty:
                self.sfu.spawn(other.negotiate)
            else:
                self.sfu.spawn(other.send_tracks)

    async def leave(self, participant_id: str) -> None:
        """Free the slots that carried the leaver's tracks (kept for the next person); close the peer."""
        leaver = self.participants.pop(participant_id, None)
        if leaver is None:
            return
        self.speakers.remove(participant_id)
        for other in self.participants.values():
            for slot in other.slots:
                if slot.source is not None and slot.source.owner is leaver:
                    slot.assign(None)
        for slot in leaver.slots:
            slot.assign(None)
        for other in self.participants.values():
            with contextlib.suppress(Exception):
                await other.send({"type": "tracks", "tracks": other.track_map()})
            self.sfu.spawn(other.send_tracks_settled)
        await leaver.close()
        if not self.participants:
            await self.close()
            self.sfu.rooms.pop(self.id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for participant in list(self.participants.values()):
            await participant.close()
        self.participants.clear()

    async def _run(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            ticks += 1
            try:
                await self._speaker_tick()
                if ticks % 4 == 0:
                    await self.rtcp_tick()
            except Exception:  # one bad report must not stop a meeting's RTCP
                log.exception("rtc room %s: periodic RTCP failed", self.id)

    async def _speaker_tick(self) -> None:
        now = time.monotonic()
        for participant in self.participants.values():
            audio = participant.sources["audio"]
            if now - audio.last_audio > 0.5:
                self.speakers.decay(participant.id)
        speaker = self.speakers.update(now)
        if speaker is not None and self.on_event is not None:
            await self.on_event({"type": "speaker", "participant": speaker})

    async def rtcp_tick(self) -> None:
        """Sender reports to subscribers; receiver reports and the REMB cap to publishers."""
        now, wall = time.monotonic(), time.time()
        for participant in self.participants.values():
            for slot in participant.slots:
                if slot.stream is None:
                    continue
                source = slot.source
                report = sender_report(slot.stream, source.clock if source else None, now, wall)
                if report is not None:
                    await participant.send_rtcp(bytes(report))
            for source in participant.sources.values():
                if source.ssrc is None or source.stats is None:
                    continue
                rr = receiver_report(source.feedback_ssrc, [source.stats])
                if rr is not None:
                    await participant.send_rtcp(rr)
                if source.kind == "video":
                    await participant.send_rtcp(
                        remb(source.feedback_ssrc, self.video_cap(source, now), [source.ssrc])
                    )

    def video_cap(self, source: Source, now: float) -> int:
        """The bitrate a publisher may send: our cap, lowered to what the slowest subscriber reports."""
        cap = self.sfu.screen_cap_bps if source.name == "screen" else self.sfu.video_cap_bps
        fresh = [s.remb_bps for s in source.slots if s.remb_bps and now - s.remb_at < REMB_FRESH_SECONDS]
        return min([cap, *fresh])


class Sfu:
    """The media plane of one worker: its rooms and the forwarded-stream budget they share."""

    def __init__(
        self,
        *,
        max_streams: int = 600,
        max_participants: int = 16,
        video_cap_bps: int = 800_000,
        screen_cap_bps: int = 1_500_000,
        ice_servers: list[Any] | None = None,
    ) -> None:
        self.max_streams = max_streams
        self.max_participants = max_participants
        self.video_cap_bps = video_cap_bps
        self.screen_cap_bps = screen_cap_bps
        self.ice_servers = ice_servers or []
        self.rooms: dict[str, MediaRoom] = {}
        self.forwarded_packets = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def room(self, room_id: str, on_event: Event | None = None) -> MediaRoom:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = MediaRoom(self, room_id, on_event)
        elif on_event is not None and room.on_event is None:
            room.on_event = on_event
        return room

    def forwarded_streams(self) -> int:
        return sum(room.forwarded_streams() for room in self.rooms.values())

    def spawn(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run a negotiation in the background; the task makes the coroutine, so a cancel never leaks it."""

        async def run() -> None:
            try:
                await job()
            except (TimeoutError, asyncio.CancelledError, ConnectionError):
                pass
            except InvalidStateError:  # the person left (their connection closed) while this was queued
                pass
            except Exception:
                log.exception("rtc: negotiation failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for room in list(self.rooms.values()):
            await room.close()
        self.rooms.clear()
