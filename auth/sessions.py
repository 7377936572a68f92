"""Server-side sessions in a Litestar Store (memory or Redis), with idle and absolute timeouts.

Only a random id travels in the cookie; the store holds who is signed in. A sign-in always issues a
new id, so a session id planted before sign-in is worthless afterwards.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

from litestar.stores.base import Store

SESSION_PREFIX = "session:"
USER_INDEX_PREFIX = "user-sessions:"
MAX_SESSIONS_PER_USER = 20
OIDC_SID_PREFIX = "oidc-sid:"


@dataclass
class SessionRecord:
    sid: str
    user_id: int
    created: float
    auth_method: str = "password"
    oidc_sid: str = ""
    id_token: str = ""
    ip: str = ""  # where the sign-in came from, and the browser, so a person can tell their sessions apart
    agent: str = ""

    @property
    def handle(self) -> str:
        """A name for this session that is safe to show and post back: never the id itself."""
        return session_handle(self.sid)


def session_handle(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:20]


class SessionManager:
    def __init__(self, store: Store, idle_seconds: int, absolute_seconds: int) -> None:
        self.store = store
        self.idle = idle_seconds
        self.absolute = absolute_seconds

    async def create(
        self,
        user_id: int,
        auth_method: str = "password",
        *,
        oidc_sid: str = "",
        id_token: str = "",
        ip: str = "",
        agent: str = "",
    ) -> SessionRecord:
        record = SessionRecord(
            sid=secrets.token_urlsafe(32),
            user_id=user_id,
            created=time.time(),
            auth_method=auth_method,
            oidc_sid=oidc_sid,
            id_token=id_token,
            ip=ip[:64],
            agent=agent[:200],
        )
        await self.store.set(SESSION_PREFIX + record.sid, json.dumps(asdict(record)), expires_in=self.idle)
        await self._index_add(USER_INDEX_PREFIX + str(user_id), record.sid)
        if oidc_sid:
            await self._index_add(OIDC_SID_PREFIX + oidc_sid, record.sid)
        return record

    async def load(self, sid: str) -> SessionRecord | None:
        """The live session for this id, renewing its idle timer; None when unknown or expired."""
        if not sid or len(sid) > 128:
            return None
        raw = await self.store.get(SESSION_PREFIX + sid, renew_for=self.idle)
        if raw is None:
            return None
        try:
            record = SessionRecord(**json.loads(raw))
        except (TypeError, ValueError):
            await self.store.delete(SESSION_PREFIX + sid)
            return None
        if time.time() - record.created > self.absolute:
            await self.destroy(sid)
            return None
        return record

    async def destroy(self, sid: str) -> None:
        await self.store.delete(SESSION_PREFIX + sid)

    async def live_for(self, user_id: int) -> list[SessionRecord]:
        """A person's live sessions, newest first (without renewing their idle timers)."""
        found = []
        for sid in await self._index(USER_INDEX_PREFIX + str(user_id)):
            raw = await self.store.get(SESSION_PREFIX + sid)
            if raw is None:
                continue
            try:
                record = SessionRecord(**json.loads(raw))
            except (TypeError, ValueError):
                continue
            if record.user_id == user_id and time.time() - record.created <= self.absolute:
                found.append(record)
        return sorted(found, key=lambda r: r.created, reverse=True)

    async def destroy_handle(self, user_id: int, handle: str) -> bool:
        """End one of this person's sessions, named by its handle; False if they have no such session."""
        for record in await self.live_for(user_id):
            if secrets.compare_digest(record.handle, handle):
                await self.destroy(record.sid)
                return True
        return False

    async def destroy_all_for(self, user_id: int) -> int:
        """End every session of a user (deactivation, admin action); returns how many were live."""
        return await self._destroy_indexed(USER_INDEX_PREFIX + str(user_id))

    async def destroy_by_oidc_sid(self, oidc_sid: str) -> int:
        """End the sessions that one provider session (its `sid`) opened here: back-channel logout."""
        return await self._destroy_indexed(OIDC_SID_PREFIX + oidc_sid)

    async def _destroy_indexed(self, index_key: str) -> int:
        ended = 0
        for sid in await self._index(index_key):
            if await self.store.exists(SESSION_PREFIX + sid):
                ended += 1
            await self.store.delete(SESSION_PREFIX + sid)
        await self.store.delete(index_key)
        return ended

    async def _index(self, index_key: str) -> list[str]:
        raw = await self.store.get(index_key)
        return list(json.loads(raw)) if raw else []

    async def _index_add(self, index_key: str, sid: str) -> None:
        """Remember a session under an index; past the per-person limit the oldest sessions end."""
        live = [s for s in await self._index(index_key) if await self.store.exists(SESSION_PREFIX + s)]
        live.append(sid)
        for old in live[:-MAX_SESSIONS_PER_USER]:
            await self.store.delete(SESSION_PREFIX + old)
        await self.store.set(index_key, json.dumps(live[-MAX_SESSIONS_PER_USER:]), expires_in=self.absolute)
