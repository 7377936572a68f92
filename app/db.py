"""Database engine, per-request sessions and migrations."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from litestar.datastructures import State
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def utcnow() -> datetime:
    """Aware UTC now; SQLModel's UTCDateTime stores and returns UTC on SQLite and PostgreSQL alike."""
    return datetime.now(UTC)


def make_engine(url: str, *, sqlite_immediate: bool = True) -> AsyncEngine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout so concurrent writers wait.

    With sqlite_immediate every transaction takes SQLite's write lock at BEGIN: two requests that read
    then write queue up instead of one failing on lock upgrade. Read-only tools may pass False.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if sqlite_immediate else "BEGIN")

        # Let SQLAlchemy's 'begin' event issue BEGIN instead of pysqlite's implicit one.
        @event.listens_for(engine.sync_engine, "connect")
        def _no_implicit_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Apply every Alembic migration up to the heads on this engine (domains may branch; merges join)."""

    def _upgrade(sync_conn: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "heads")

    async with engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def provide_db(state: State) -> AsyncGenerator[AsyncSession, None]:
    """One session per request; committed when the handler returns, rolled back when it raises."""
    maker: async_sessionmaker[AsyncSession] = state.db_sessions
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            if session.in_transaction():
                await session.commit()
