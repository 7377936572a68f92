"""Telling people: an in-app notification and an e-mail through the outbox, in the person's language."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app import mail
from app.i18n import translate
from auth.models import User
from scheduling.models import Notification


class Notifier:
    """Collects messages during one transaction and writes them together (one user lookup for all)."""

    def __init__(self, db: AsyncSession, base_url: str = "") -> None:
        self.db = db
        self.base_url = base_url.rstrip("/")
        self._pending: list[tuple[int, str, dict[str, Any], str, str | None]] = []

    def add(
        self, user_id: int | None, key: str, params: dict[str, Any], link: str, dedupe: str | None = None
    ) -> None:
        if user_id is not None:
            self._pending.append((user_id, key, params, link, dedupe))

    async def flush(self) -> int:
        if not self._pending:
            return 0
        ids = {p[0] for p in self._pending}
        users = {
            u.id: u
            for u in (await self.db.execute(select(User).where(col(User.id).in_(ids)))).scalars()
            if u.active
        }
        sent = 0
        for user_id, key, params, link, dedupe in self._pending:
            user = users.get(user_id)
            if user is None:
                continue
            self.db.add(Notification(user_id=user_id, key=key, params_json=json.dumps(params), link=link))
            locale = user.locale or "ja"
            subject = translate(locale, f"{key}.subject", **params)
            body = translate(locale, f"{key}.body", **params) + "\n\n" + self.base_url + link
            await mail.enqueue(self.db, user.email, subject, body, dedupe_key=dedupe)
            sent += 1
        self._pending.clear()
        return sent


def render(locale: str, key: str, params_json: str) -> str:
    try:
        params = json.loads(params_json)
    except ValueError:
        params = {}
    return translate(locale, f"{key}.subject", **params)


def user_ids(items: Iterable[Any], attr: str) -> set[int]:
    return {getattr(i, attr) for i in items if getattr(i, attr) is not None}
