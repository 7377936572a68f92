"""Server-side sessions in a Litestar Store (memory or Redis), with idle and absolute timeouts.

Only a random id travels in the cookie; the store holds who is signed in. A sign-in always issues a
new id, so a session id planted before sign-in is worthless afterwards.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass

from litestar.stores.base import Store

SESSION_PREFIX = "session:"
USER_INDEX_PREFIX = "user-sessions:"


@dataclass
class SessionRecord:
    sid: str
    user_id: int
    created: float
    auth_method: str = "password"


class SessionManager:
    def __init__(self, store: Store, idle_seconds: int, absolute_seconds: int) -> None:
        self.store = store
        self.idle = idle_seconds
        self.absolute = absolute_seconds

    async def create(self, user_id: int, auth_method: str = "password") -> SessionRecord:
        record = SessionRecord(
            sid=secrets.token_urlsafe(32), user_id=user_id, created=time.time(), auth_method=auth_method
        )
        await self.store.set(SESSION_PREFIX + record.sid, json.dumps(asdict(record)), expires_in=self.idle)
        await self._index_add(user_id, record.sid)
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

    async def destroy_all_for(self, user_id: int) -> int:
        """End every session of a user (deactivation, admin action); returns how many were live."""
        ended = 0
        for sid in await self._index(user_id):
            if await self.store.exists(SESSION_PREFIX + sid):
                ended += 1
            await self.store.delete(SESSION_PREFIX + sid)
        await self.store.delete(USER_INDEX_PREFIX + str(user_id))
        return ended

    async def _index(self, user_id: int) -> list[str]:
        raw = await self.store.get(USER_INDEX_PREFIX + str(user_id))
        return list(json.loads(raw)) if raw else []

    async def _index_add(self, user_id: int, sid: str) -> None:
        live = [s for s in await self._index(user_id) if await self.store.exists(SESSION_PREFIX + s)]
        live.append(sid)
        await self.store.set(
            USER_INDEX_PREFIX + str(user_id), json.dumps(live[-50:]), expires_in=self.absolute
        )
