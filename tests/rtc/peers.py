"""Test helpers: the app served in-process by uvicorn (WebSocket needs a server), aiortc client peers, and
scheduled meetings (rows as scheduling writes them) whose rooms the peers join."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
import websockets
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import VideoFrame


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """The (already started) app on a loopback port; yields its ws:// base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


class SmallVideo(VideoStreamTrack):
    """160x90 frames at 30 fps: enough for VP8 to produce real key and delta frames, cheap to encode."""

    def __init__(self, shade: int) -> None:
        super().__init__()
        self.shade = shade

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=160, height=90)
        for plane in frame.planes:
            plane.update(bytes([self.shade]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class ClientPeer:
    """An aiortc participant: joins over the WebSocket, publishes audio+video, counts what it gets."""

    def __init__(
        self, base_url: str, room_id: str, cookie: str, shade: int = 100, *, cookie_name: str = "th_session"
    ) -> None:
        self.url = f"{base_url}/rooms/{room_id}/ws"
        self.cookie = cookie
        self.cookie_name = cookie_name
        self.shade = shade
        self.pc: RTCPeerConnection | None = None
        self.ws: Any = None
        self.me: str | None = None
        self.tracks: dict[str, dict[str, str]] = {}
        self.frames: Counter[tuple[str, str]] = Counter()  # (participant, kind) -> frames decoded
        self.events: list[dict[str, Any]] = []
        self.welcome = asyncio.Event()
        self.gone = asyncio.Event()  # the server closed the socket
        self._offers: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._published = False

    async def join(self) -> None:
        self.ws = await websockets.connect(
            self.url, additional_headers={"Cookie": f"{self.cookie_name}={self.cookie}"}
        )
        await self.send({"type": "join"})
        self._tasks.append(asyncio.create_task(self._read()))
        self._tasks.append(asyncio.create_task(self._answer_offers()))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def event(self, kind: str, seconds: float = 30.0, **match: Any) -> dict[str, Any]:
        """The first message of this type (and these fields) received so far or within ``seconds``."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            for message in self.events:
                if message.get("type") == kind and all(message.get(k) == v for k, v in match.items()):
                    return message
            if asyncio.get_running_loop().time() > deadline:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {kind} {match} within {seconds}s; got {seen}")
            await asyncio.sleep(0.05)

    async def _read(self) -> None:
        try:
            await self._read_messages()
        finally:
            self.gone.set()

    async def _read_messages(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                self.events.append(message)
                kind = message.get("type")
                if kind == "welcome":
                    self.me = message["you"]
                    # max-bundle, like browsers: aiortc's default policy leaves video receivers of a bundled
                    # first offer on a transport that never connects.
                    config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
                    self.pc = RTCPeerConnection(config)
                    self.pc.on("track", self._on_track)
                    self.welcome.set()
                elif kind == "offer":
                    # Answered beside the reading (an answer may take a while): a reader stuck in it would
                    # leave later messages, and the server's close, unread.
                    self.tracks = message["tracks"]
                    self._offers.put_nowait(message["sdp"])
                elif kind == "tracks":
                    self.tracks = message["tracks"]

    async def _answer_offers(self) -> None:
        while True:
            sdp = await self._offers.get()
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._answer(sdp)

    async def _answer(self, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid in ("0", "1", "2"):
                transceiver.direction = "sendonly"
                if not self._published and transceiver.mid == "0":
                    transceiver.sender.replaceTrack(AudioStreamTrack())
                elif not self._published and transceiver.mid == "1":
                    transceiver.sender.replaceTrack(SmallVideo(self.shade))
            else:
                transceiver.direction = "recvonly"
        self._published = True
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    def _on_track(self, track: Any) -> None:
        assert self.pc is not None
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._tasks.append(asyncio.create_task(self._count(mid, track)))

    async def _count(self, mid: str, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                slot = self.tracks.get(mid)
                if slot is not None:
                    self.frames[(slot["participant"], track.kind)] += 1

    def received(self, participant: str, kind: str) -> int:
        return self.frames[(participant, kind)]

    async def leave(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pc is not None:
            await self.pc.close()


async def user_id(db: Any, employee_number: str) -> int:
    from sqlalchemy import select

    from auth.models import User

    return int(
        (await db.execute(select(User.id).where(User.employee_number == employee_number))).scalar_one()
    )


async def scheduled_meeting(
    db: Any,
    organizer: str,
    *,
    attendees: tuple[str, ...] = (),
    cohosts: tuple[str, ...] = (),
    guests: tuple[str, ...] = (),
    lobby: bool = False,
) -> Any:
    """A scheduled meeting as scheduling stores it (people by employee number, guests by address)."""
    from scheduling.models import Meeting, MeetingAttendee

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    meeting = Meeting(
        uid=f"{secrets.token_hex(8)}@test",
        room_id=secrets.token_urlsafe(12),
        organizer_id=await user_id(db, organizer),
        title="定例会議",
        start_at=start,
        end_at=start + timedelta(hours=1),
        lobby=lobby,
    )
    db.add(meeting)
    await db.flush()
    for number, role in [(n, "attendee") for n in attendees] + [(n, "cohost") for n in cohosts]:
        db.add(
            MeetingAttendee(
                meeting_id=meeting.id,
                user_id=await user_id(db, number),
                email=f"{number}@city.example",
                role=role,
            )
        )
    for address in guests:
        db.add(MeetingAttendee(meeting_id=meeting.id, email=address, name="来訪 花子"))
    await db.commit()
    return meeting
