"""Models and migrations never drift; the audit trail is append-only in the database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db import make_engine
from app.tables import metadata


async def test_models_match_migrations(database_url):
    engine = make_engine(database_url)

    def _diff(sync_conn):
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)

    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    await engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


async def test_audit_events_cannot_be_changed_or_deleted(app, db):
    from sqlalchemy import select

    from app.audit import AuditEvent

    event_id = (await db.execute(select(AuditEvent.id))).scalars().first()
    assert event_id is not None  # the demo seed wrote one
    await db.rollback()
    for statement in (
        f"UPDATE audit_event SET action = 'tampered' WHERE id = {event_id}",
        f"DELETE FROM audit_event WHERE id = {event_id}",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await db.execute(text(statement))
        await db.rollback()
    assert (
        await db.execute(select(AuditEvent.action).where(AuditEvent.id == event_id))
    ).scalar_one() != "tampered"
