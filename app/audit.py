"""Append-only audit trail, written in the same transaction as the change it describes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from app.db import utcnow

SECRET_KEYS = ("password", "secret", "token", "pin", "puk", "hash", "key")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    # An item's history page reads its events by entity: without this, it slows as the trail grows.
    __table_args__ = (Index("ix_audit_event_entity", "entity_type", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: int | None = Field(default=None, index=True)
    actor_label: str = Field(default="", max_length=200)
    action: str = Field(max_length=80, index=True)
    entity_type: str = Field(default="", max_length=60, index=True)
    entity_id: str = Field(default="", max_length=80)
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))
    ip: str = Field(default="", max_length=64)


def mask(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Replace secret-looking fields so the trail never holds a password, hash, PIN or token."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for key, value in values.items():
        if any(s in key.lower() for s in SECRET_KEYS):
            out[key] = "***" if value not in (None, "") else value
        elif isinstance(value, dict):
            out[key] = mask(value)
        else:
            out[key] = value
    return out


def _dump(values: dict[str, Any] | None) -> str | None:
    masked = mask(values)
    return None if masked is None else json.dumps(masked, ensure_ascii=False, default=str, sort_keys=True)


def record(
    db: AsyncSession,
    action: str,
    *,
    actor_id: int | None = None,
    actor_label: str = "",
    entity_type: str = "",
    entity_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str = "",
) -> AuditEvent:
    """Add one audit event to the caller's transaction (it commits or rolls back with the change)."""
    event = AuditEvent(
        action=action,
        actor_id=actor_id,
        actor_label=actor_label[:200],
        entity_type=entity_type,
        entity_id=str(entity_id)[:80],
        before=_dump(before),
        after=_dump(after),
        ip=ip[:64],
    )
    db.add(event)
    return event


async def search(
    db: AsyncSession,
    *,
    action: str | None = None,
    actor_id: int | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEvent], int]:
    """Newest first, with the total for pagination."""
    query = select(AuditEvent)
    if action:
        query = query.where(col(AuditEvent.action).startswith(action))
    if actor_id is not None:
        query = query.where(col(AuditEvent.actor_id) == actor_id)
    if entity_type:
        query = query.where(col(AuditEvent.entity_type) == entity_type)
    if entity_id:
        query = query.where(col(AuditEvent.entity_id) == entity_id)
    if since:
        query = query.where(col(AuditEvent.at) >= since)
    if until:
        query = query.where(col(AuditEvent.at) < until)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await db.execute(query.order_by(col(AuditEvent.id).desc()).limit(limit).offset(offset))).scalars()
    return list(rows), int(total)
