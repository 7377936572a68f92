"""One participant's stay in a room, over any link that carries the JSON protocol (README, "RTC / meetings").

The link is the participant's WebSocket when the room lives on the worker that accepted the socket, or a relay
through Redis when it lives on another worker (`rtc.signalling`); this module does not know which.
Negotiation (offer/answer/ICE) stays between the link and this worker's SFU; what everyone in the room must
see (who came and went, mute and camera state, raised hands, chat, active speaker) is published on the room's
channel, so it also reaches links held by other workers. Media never goes through the channels.
A stay may begin in the lobby (`rtc.moderation`): the person waits, hears only what is addressed to them, and
joins the media room once a host admits them. Host commands for one person come on the channel with a ``to``
id; the stay acts on those addressed to it and never forwards them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from rtc import moderation, usage
from rtc.access import Identity
from rtc.sfu import CapacityExceeded, Participant, RoomFull

if TYPE_CHECKING:
    from litestar.channels import Subscriber

    from rtc.signalling import RtcService

CHAT_MAX = 1000
STATE_FLAGS = ("muted", "camera", "screen", "hand")
CLOSE_CODES = {"ended": 4410, "removed": 4403, "locked": 4423}


class Link(Protocol):
    """The participant's end: ``receive`` returns None once they are gone; sends after that are dropped."""

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any] | None: ...

    async def refuse(self, code: str, close_code: int) -> None: ...

    async def close(self) -> None: ...


class Stay:
    """One person's stay: their link, the room's events meant for them, and the commands addressed to them."""

    def __init__(self, service: RtcService, link: Link, room_id: str, who: Identity) -> None:
        self.service = service
        self.link = link
        self.room_id = room_id
        self.who = who
        self.id = secrets.token_hex(6)  # their lobby id, then their participant id
        self.in_meeting = False
        self.commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._receiving: asyncio.Future[dict[str, Any] | None] | None = None

    async def fan_out(self, subscriber: Subscriber) -> None:
        """Room events to the page (once in the meeting); commands for this stay to its queue."""
        async for raw in subscriber.iter_events():
            event = json.loads(raw)
            target = event.pop("to", None)
            if target is not None:
                if target == self.id:
                    await self.commands.put(event)
                continue
            if event.get("type") == "ended":
                await self.commands.put(event)
                continue
            if not self.in_meeting or (event.pop("for", None) == "hosts" and not self.who.host):
                continue
            await self.link.send(event)

    async def next(self) -> tuple[str, dict[str, Any] | None]:
        """The next ("page", message) from the participant (None: gone) or ("command", event) for them."""
        if self._receiving is None:
            self._receiving = asyncio.ensure_future(self.link.receive())
        getting = asyncio.ensure_future(self.commands.get())
        waiting: set[asyncio.Future[Any]] = {self._receiving, getting}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if getting in done:
            return "command", getting.result()
        getting.cancel()
        message = self._receiving.result()
        self._receiving = None
        return "page", message

    async def stop_receiving(self) -> None:
        if self._receiving is not None:
            self._receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiving

    async def told_to_leave(self, command: dict[str, Any]) -> bool:
        """Ended, denied or removed: tell the page and close; True when the stay is over."""
        kind = command.get("type")
        if kind not in ("ended", "deny", "remove"):
            return False
        told = {"ended": "ended", "deny": "denied", "remove": "removed"}[str(kind)]
        await self.link.send({"type": told, "by": command.get("by", "")})
        await self.link.close()
        return True


async def run(service: RtcService, link: Link, room_id: str, who: Identity, first: dict[str, Any]) -> None:
    """Join with the ``join`` message ``first`` (through the lobby if they must wait), serve, clean up."""
    room = moderation.control(service, room_id)
    await moderation.recall(service, room)
    refusal = room.refusal(who, time.monotonic())
    if refusal is not None:
        await link.refuse(refusal, CLOSE_CODES[refusal])
        return
    stay = Stay(service, link, room_id, who)
    try:
        async with service.channels.start_subscription([f"rtc.{room_id}"]) as subscriber:
            relay = asyncio.create_task(stay.fan_out(subscriber))
            try:
                if room.must_wait(who) and not await _wait_in_lobby(stay, room):
                    return
                await _meet(stay, first)
            finally:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
    finally:
        await stay.stop_receiving()


async def _wait_in_lobby(stay: Stay, room: moderation.RoomControl) -> bool:
    """Wait until a host admits (True) or denies them, the meeting ends or they go (False)."""
    service, room_id = stay.service, stay.room_id
    room.knock(stay.id, stay.who)
    moderation.publish_lobby(service, room_id, room)
    try:
        await stay.link.send({"type": "lobby", "you": stay.id})
        while True:
            kind, message = await stay.next()
            if kind == "command":
                assert message is not None
                if await stay.told_to_leave(message):
                    return False
                if message.get("type") == "admit":
                    room.admitted.add(stay.who.key)
                    await stay.link.send({"type": "admitted", "by": message.get("by", "")})
                    return True
            elif message is None:
                return False
            elif message.get("type") == "ping":
                await stay.link.send({"type": "pong"})
            elif message.get("type") == "leave":
                await stay.link.close()
                return False
    finally:
        if room.lobby.pop(stay.id, None) is not None:
            moderation.publish_lobby(service, room_id, room)


async def _meet(stay: Stay, first: dict[str, Any]) -> None:
    """In the media room: welcome, serve until they leave or are told to, then free their place."""
    service, link, room_id, who, pid = stay.service, stay.link, stay.room_id, stay.who, stay.id
    room = moderation.control(service, room_id)
    refusal = room.refusal(who, time.monotonic())
    if refusal is not None and refusal != "locked":  # ended or removed meanwhile; admitted despite a lock
        await link.refuse(refusal, CLOSE_CODES[refusal])
        return
    media = service.media_room(room_id)
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
        "host": who.host,
        "muted": bool(first.get("muted", False)),
        "camera": bool(first.get("camera", True)),
        "screen": False,
        "hand": False,
    }
    roster[pid] = me
    room.keys[pid] = who.key
    stay_id = None
    try:
        welcome: dict[str, Any] = {
            "type": "welcome",
            "you": pid,
            "host": who.host,
            "locked": room.locked,
            "participants": list(roster.values()),
            "iceServers": service.ice_servers,
            "maxParticipants": service.sfu.max_participants,
        }
        if who.host:
            welcome["waiting"] = room.waiting()
        stay.in_meeting = True  # room events from here on; the welcome still goes first (sends are in order)
        await link.send(welcome)
        service.publish(room_id, {"type": "joined", "participant": me})
        service.sfu.spawn(participant.negotiate)
        # Recorded after the welcome: an offer (someone's camera starting) must not overtake it meanwhile.
        stay_id = await usage.joined(
            service.db_sessions, room_id, who, meeting_id=who.meeting_id, worker=service.worker_id
        )
        await _serve(stay, participant, me)
    finally:
        stay.in_meeting = False
        roster.pop(pid, None)
        room.keys.pop(pid, None)
        if not roster:
            service.rosters.pop(room_id, None)
            moderation.room_emptied(service, room_id)
        await media.leave(pid)
        service.publish(room_id, {"type": "left", "participant": pid})
        await usage.left(service.db_sessions, stay_id)


async def _serve(stay: Stay, participant: Participant, me: dict[str, Any]) -> None:
    """Handle the participant's messages and the commands addressed to them until they leave or must go."""
    service, link, room_id = stay.service, stay.link, stay.room_id
    while True:
        source, message = await stay.next()
        if source == "command":
            assert message is not None
            if await stay.told_to_leave(message):
                return
            if message.get("type") == "mute":
                participant.hold_audio(True)
                me["muted"] = True
                await link.send({"type": "muted-by-host", "by": message.get("by", "")})
                service.publish(room_id, {"type": "state", "participant": me["id"], "muted": True})
            continue
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
            if changes.get("muted") is False:  # unmuting oneself lifts a host's mute (one-shot, as in Teams)
                participant.hold_audio(False)
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
        elif kind in moderation.HOST_ACTIONS:
            refused = await moderation.act(service, room_id, me, stay.who, message)
            if refused is not None:
                await link.send({"type": "error", "code": refused, "for": kind})
        elif kind == "ping":
            await link.send({"type": "pong"})
        elif kind == "leave":
            await link.close()
            return
