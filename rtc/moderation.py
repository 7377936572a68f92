"""What the hosts decide about a room while it runs: the lobby, the lock, who was removed, whether it ended.

This state lives per room on the worker that holds the room (one room is on one worker; `rtc.signalling`),
next to the rosters in `RtcService`. Host commands aimed at one person (admit, deny, mute, remove) travel on
the room's channel with a ``to`` id, and each session acts on what is addressed to it (`rtc.session`), so no
session ever holds a reference to another.

Rules (README, "RTC / meetings"):
- Hosts (an instant room's creator; a scheduled meeting's organizer and co-hosts) always come straight in,
  even into a locked room.
- Locked: nobody else new enters (they are told "locked"); people already in the lobby may still be admitted.
- A person removed by a host may not come back for ``BAN_SECONDS`` (the rest of any meeting day).
- Ended: everyone in the room and the lobby is told and closed; a scheduled meeting's room refuses everyone
  for ``ENDED_SECONDS`` (its next occurrence opens it again), an instant room for the rest of its life.
- Lock and "already admitted" are forgotten when the room is empty.
- Bans and an end are also written to Redis (``rtc:moderation:<room>``, wall-clock expiry) when there is one,
  so a worker that takes the room over from a dead one keeps refusing the removed and the ended room.
Every host decision writes an audit event (``rtc.lobby.admit``, ``rtc.participant.remove``, ``rtc.room.end``,
see ``AUDIT_ACTIONS``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app import audit
from rtc.access import Identity

if TYPE_CHECKING:
    from rtc.signalling import RtcService

log = logging.getLogger("telework.rtc.moderation")

BAN_SECONDS = 12 * 3600
ENDED_SECONDS = 10 * 60
INSTANT_ROOM_SECONDS = 24 * 3600  # rooms.ROOM_TTL_SECONDS: an ended instant room never opens again
HOST_ACTIONS = ("admit", "deny", "lock", "unlock", "mute", "remove", "end")
AUDIT_ACTIONS = {
    "admit": "rtc.lobby.admit",
    "deny": "rtc.lobby.deny",
    "lock": "rtc.room.lock",
    "unlock": "rtc.room.unlock",
    "mute": "rtc.participant.mute",
    "remove": "rtc.participant.remove",
    "end": "rtc.room.end",
}


@dataclass
class RoomControl:
    """One room's lobby, lock, ban list and end, on the worker holding the room."""

    room_id: str
    locked: bool = False
    ended_until: float = 0.0
    lobby: dict[str, dict[str, Any]] = field(default_factory=dict)  # waiting id → {id, name, guest, since}
    banned: dict[str, float] = field(default_factory=dict)  # identity key → until (monotonic)
    admitted: set[str] = field(
        default_factory=set
    )  # identity keys a host let in (a reconnect skips the lobby)
    keys: dict[str, str] = field(default_factory=dict)  # participant id → identity key
    recalled: bool = False  # bans and end recorded by other workers are loaded (see ``recall``)

    def refusal(self, who: Identity, now: float) -> str | None:
        """Why this person may not come to the room now (an ``rtc.error`` code), or None."""
        if now < self.ended_until:
            return "ended"
        if self.banned.get(who.key, 0.0) > now:
            return "removed"
        if self.locked and not who.host:
            return "locked"
        return None

    def must_wait(self, who: Identity) -> bool:
        return who.lobby and not who.host and who.key not in self.admitted

    def waiting(self) -> list[dict[str, Any]]:
        return sorted(self.lobby.values(), key=lambda p: p["since"])

    def knock(self, waiting_id: str, who: Identity) -> None:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        self.lobby[waiting_id] = {"id": waiting_id, "name": who.name, "guest": who.guest, "since": since}

    def end(self, instant: bool, now: float) -> None:
        self.ended_until = now + (INSTANT_ROOM_SECONDS if instant else ENDED_SECONDS)
        self.lobby.clear()
        self.locked = False
        self.admitted.clear()

    def idle(self, now: float) -> bool:
        """Nothing left to remember: no lobby, no end or ban in force."""
        return (
            not self.lobby and now >= self.ended_until and all(until <= now for until in self.banned.values())
        )


def controls(service: RtcService) -> dict[str, RoomControl]:
    """This worker's room controls (kept on the service, beside its rosters)."""
    found: dict[str, RoomControl] | None = getattr(service, "moderation", None)
    if found is None:
        found = {}
        service.moderation = found  # type: ignore[attr-defined]
    return found


def control(service: RtcService, room_id: str) -> RoomControl:
    """The room's control, made on first use; rooms with nothing left to remember are forgotten meanwhile."""
    every = controls(service)
    now = time.monotonic()
    for other_id in [
        k for k, c in every.items() if k != room_id and c.idle(now) and k not in service.rosters
    ]:
        every.pop(other_id, None)
    found = every.get(room_id)
    if found is None:
        found = every[room_id] = RoomControl(room_id)
    return found


def room_emptied(service: RtcService, room_id: str) -> None:
    """The last participant left: the lock and admissions go; bans and an end stay while in force."""
    found = controls(service).get(room_id)
    if found is None:
        return
    found.locked = False
    found.admitted.clear()
    found.keys.clear()
    if found.idle(time.monotonic()):
        controls(service).pop(room_id, None)


def _shared_key(room_id: str) -> str:
    return f"rtc:moderation:{room_id}"


async def recall(service: RtcService, room: RoomControl) -> None:
    """Once per room control on this worker: take in the bans and end another worker recorded in Redis."""
    if room.recalled or service.redis is None:
        room.recalled = True
        return
    try:
        saved = await service.redis.hgetall(_shared_key(room.room_id))
    except Exception:  # Redis down: what this worker knows still applies
        log.exception("could not read moderation state of room %s", room.room_id)
        return
    room.recalled = True
    wall, mono = time.time(), time.monotonic()
    for raw_name, raw_until in saved.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        try:
            left = float(raw_until) - wall
        except ValueError:
            continue
        if left <= 0:
            continue
        if name == "ended":
            room.ended_until = max(room.ended_until, mono + left)
        elif name.startswith("ban:"):
            key = name.removeprefix("ban:")
            room.banned[key] = max(room.banned.get(key, 0.0), mono + left)


async def _share(service: RtcService, room_id: str, name: str, seconds: float) -> None:
    """Record a ban or an end for the workers that may hold this room later."""
    if service.redis is None:
        return
    try:
        key = _shared_key(room_id)
        await service.redis.hset(key, name, str(time.time() + seconds))
        ttl = await service.redis.ttl(key)
        if ttl < seconds:
            await service.redis.expire(key, int(seconds) + 1)
    except Exception:
        log.exception("could not share moderation state of room %s", room_id)


def publish_lobby(service: RtcService, room_id: str, room: RoomControl) -> None:
    """The lobby list, for hosts only (the sessions drop events marked ``for: hosts`` for everyone else)."""
    service.publish(room_id, {"type": "lobby-list", "for": "hosts", "waiting": room.waiting()})


async def act(
    service: RtcService, room_id: str, me: dict[str, Any], who: Identity, message: dict[str, Any]
) -> str | None:
    """A host's command from the page; the ``rtc.error`` code of a refusal, or None when done."""
    if not who.host:
        return "not_host"
    room = control(service, room_id)
    kind = message.get("type")
    roster = service.rosters.get(room_id, {})
    by = me["name"]
    whom: dict[str, Any] = {}
    if kind in ("admit", "deny"):
        waiting_id = message.get("id")
        waiting = room.lobby.pop(waiting_id, None) if isinstance(waiting_id, str) else None
        if waiting is None:
            return "not_waiting"
        whom = {"name": waiting["name"], "guest": waiting["guest"]}
        service.publish(room_id, {"type": kind, "to": waiting_id, "by": by})
        publish_lobby(service, room_id, room)
    elif kind in ("lock", "unlock"):
        room.locked = kind == "lock"
        service.publish(room_id, {"type": "locked", "locked": room.locked, "by": by})
    elif kind in ("mute", "remove"):
        target = message.get("participant")
        if not isinstance(target, str) or target not in roster:
            return "no_participant"
        whom = {k: roster[target].get(k) for k in ("name", "user", "guest")}
        if kind == "remove":
            if roster[target].get("host"):
                return "host_stays"
            key = room.keys.get(target, f"participant:{target}")
            room.banned[key] = time.monotonic() + BAN_SECONDS
            room.admitted.discard(key)
            await _share(service, room_id, f"ban:{key}", BAN_SECONDS)
        service.publish(room_id, {"type": kind, "to": target, "by": by})
    elif kind == "end":
        instant = who.meeting_id is None
        room.end(instant, time.monotonic())
        service.publish(room_id, {"type": "ended", "by": by})
        await _share(service, room_id, "ended", INSTANT_ROOM_SECONDS if instant else ENDED_SECONDS)
    await _audit(service, who, AUDIT_ACTIONS[str(kind)], room_id, whom)
    return None


async def _audit(service: RtcService, who: Identity, action: str, room_id: str, whom: dict[str, Any]) -> None:
    """One audit event per host decision; a failed write is logged and never stops the meeting."""
    if service.db_sessions is None:
        return
    try:
        async with service.db_sessions() as db:
            after: dict[str, Any] = {"participant": whom} if whom else {}
            if who.meeting_id is not None:
                after["meeting_id"] = who.meeting_id
            audit.record(
                db,
                action,
                actor_id=who.user_id,
                actor_label=who.name,
                entity_type="room",
                entity_id=room_id,
                after=after or None,
            )
            await db.commit()
    except Exception:
        log.exception("could not audit %s in room %s", action, room_id)
