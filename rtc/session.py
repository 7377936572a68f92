"""One participant's stay in a room, over any link that carries the JSON protocol (README, "RTC / meetings").

The link is the participant's WebSocket when the room lives on the worker that accepted the socket, or a relay
through Redis when it lives on another worker (`rtc.signalling`); this module does not know which.
Negotiation (offer/answer/ICE) stays between the link and this worker's SFU; what everyone in the room must
see (who came and went, mute and camera state, raised hands, chat, active speaker) is published on the room's
channel, so it also reaches links held by other workers. Media never goes through the channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from rtc import usage
from rtc.access import Identity
from rtc.sfu import CapacityExceeded, RoomFull

if TYPE_CHECKING:
    from rtc.signalling import RtcService

CHAT_MAX = 1000
STATE_FLAGS = ("muted", "camera", "screen", "hand")


class Link(Protocol):
    """The participant's end: ``receive`` returns None once they are gone; sends after that are dropped."""

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any] | None: ...

    async def refuse(self, code: str, close_code: int) -> None: ...

    async def close(self) -> None: ...


async def run(service: RtcService, link: Link, room_id: str, who: Identity, first: dict[str, Any]) -> None:
    """Join with the ``join`` message ``first``, serve the participant until they leave, then clean up."""
    media = service.media_room(room_id)
    pid = secrets.token_hex(6)
    try:
        participant = await media.join(pid, link.send, audio_only=bool(first.get("audioOnly")))
    except RoomFull:
        await link.refuse("room_full", 4409)
        return
    except CapacityExceeded:
        await link.refuse("capacity", 4503)
        return

    roster = service.rosters.setdefault(room_id, {})
    me = {
        "id": pid,
        "name": who.name,
        "user": who.user_id,
        "guest": who.guest,
        "muted": bool(first.get("muted", False)),
        "camera": bool(first.get("camera", True)),
        "screen": False,
        "hand": False,
    }
    roster[pid] = me
    stay = await usage.joined(service.db_sessions, room_id, who, worker=service.worker_id)
    try:
        async with service.channels.start_subscription([f"rtc.{room_id}"]) as subscriber:

            async def fan_out() -> None:
                async for raw in subscriber.iter_events():
                    await link.send(json.loads(raw))

            relay = asyncio.create_task(fan_out())
            try:
                await link.send(
                    {
                        "type": "welcome",
                        "you": pid,
                        "participants": list(roster.values()),
                        "iceServers": service.ice_servers,
                        "maxParticipants": service.sfu.max_participants,
                    }
                )
                service.publish(room_id, {"type": "joined", "participant": me})
                service.sfu.spawn(participant.negotiate)
                await _serve(link, service, room_id, participant, me)
            finally:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
    finally:
        roster.pop(pid, None)
        if not roster:
            service.rosters.pop(room_id, None)
        await media.leave(pid)
        service.publish(room_id, {"type": "left", "participant": pid})
        await usage.left(service.db_sessions, stay)


async def _serve(link: Link, service: RtcService, room_id: str, participant: Any, me: dict[str, Any]) -> None:
    """Handle the participant's messages until they leave or the link drops."""
    while True:
        message = await link.receive()
        if message is None:
            return
        kind = message.get("type")
        if kind == "answer" and isinstance(message.get("sdp"), str):
            participant.answer(message["sdp"])
        elif kind == "ice" and isinstance(message.get("candidate"), dict):
            with contextlib.suppress(Exception):  # a malformed or late candidate must not end the meeting
                await participant.add_ice_candidate(message["candidate"])
        elif kind == "state":
            changes = {k: bool(message[k]) for k in STATE_FLAGS if k in message}
            me.update(changes)
            service.publish(room_id, {"type": "state", "participant": me["id"], **changes})
        elif kind == "chat" and isinstance(message.get("text"), str) and message["text"].strip():
            service.publish(
                room_id,
                {
                    "type": "chat",
                    "from": me["id"],
                    "name": me["name"],
                    "text": message["text"].strip()[:CHAT_MAX],
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
        elif kind == "audio-only":
            await participant.set_audio_only(bool(message.get("on")))
        elif kind == "keyframe":
            for slot in participant.slots:
                if slot.source is not None:
                    await slot.source.request_keyframe()
        elif kind == "ping":
            await link.send({"type": "pong"})
        elif kind == "leave":
            await link.close()
            return
