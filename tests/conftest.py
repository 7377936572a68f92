"""Fixtures shared by every test: a migrated database per test, the app, signed-in clients.

Backends follow the environment, as in production: SQLite and memory stores by default,
PostgreSQL when DATABASE_URL is set and Redis when REDIS_URL is set (.ci/run runs both ways).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text

from app.db import make_engine, migrate
from app.main import create_app, shutdown, startup
from app.settings import Settings
from app.tables import metadata

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
USE_POSTGRES = DATABASE_URL.startswith(("postgres", "postgresql"))
DEMO_PASSWORD = "telework-demo-2026"

# Demo people by role (see app/demo.py).
LOGIN_BY_ROLE = {
    "employee": "100012",
    "unit_head": "100006",
    "it_admin": "100009",
    "hr_admin": "100008",
    "auditor": "100010",
    "sysadmin": "100011",
}


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"database: {'PostgreSQL' if USE_POSTGRES else 'SQLite'}; "
        f"stores: {'Redis' if REDIS_URL else 'memory'}",
    ]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per run: a SQLite file to copy per test, or the PostgreSQL database itself."""
    if USE_POSTGRES:
        url = Settings.from_env(database_url=DATABASE_URL, secret_key="t").database_url
    else:
        path = tmp_path_factory.mktemp("db") / "template.db"
        url = f"sqlite+aiosqlite:///{path}"

    async def _go() -> None:
        engine = make_engine(url)
        await migrate(engine)
        await engine.dispose()

    asyncio.run(_go())
    return url


def _truncate_sql() -> str:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    return f"TRUNCATE {tables} RESTART IDENTITY CASCADE"


@pytest.fixture
async def database_url(template_db: str, tmp_path: Path) -> str:
    """A clean, migrated database for this test."""
    if USE_POSTGRES:
        engine = make_engine(template_db)
        async with engine.begin() as conn:
            await conn.execute(text(_truncate_sql()))
        await engine.dispose()
        return template_db
    src = Path(template_db.split(":///", 1)[1])
    dst = tmp_path / "test.db"
    shutil.copyfile(src, dst)
    return f"sqlite+aiosqlite:///{dst}"


@pytest.fixture
async def redis_clean() -> AsyncIterator[None]:
    if REDIS_URL:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        await client.flushdb()
        await client.aclose()
    yield


@pytest.fixture
def settings(database_url: str, tmp_path: Path, redis_clean: None) -> Settings:
    return Settings.from_env(
        app_env="test",
        var_dir=tmp_path / "var",
        database_url=database_url,
        secret_key="test-secret-" + uuid.uuid4().hex,
        seed_demo=True,
        migrate_on_start=False,
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        redis_url=REDIS_URL or None,
        mail_poll_seconds=0,  # tests deliver mail explicitly with app.mail.deliver_due
        jobs_interval_seconds=0,  # tests run jobs explicitly
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    await startup(application)
    yield application
    await shutdown(application)


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(app: Litestar) -> AsyncIterator[ClientFactory]:
    """Clients that keep cookies and send the CSRF header, optionally signed in as a demo role or login."""
    clients: list[httpx.AsyncClient] = []

    async def _make(
        role: str | None = None, *, login: str | None = None, ip: str = "127.0.0.1"
    ) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://testserver"
        )
        clients.append(client)
        await prime_csrf(client)
        who = login or (LOGIN_BY_ROLE[role] if role else None)
        if who:
            r = await client.post("/api/auth/login", json={"login": who, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.text
        return client

    yield _make
    for c in clients:
        await c.aclose()


async def prime_csrf(client: httpx.AsyncClient) -> None:
    """A GET hands out the CSRF cookie; every later unsafe request echoes it in the header."""
    await client.get("/health/live")
    token = client.cookies.get("csrftoken")
    assert token, "the app must set a CSRF cookie on safe requests"
    client.headers["x-csrftoken"] = token


@pytest.fixture
async def anon(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


@pytest.fixture
async def employee(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client("employee")


@pytest.fixture
async def sysadmin(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client("sysadmin")


@pytest.fixture
async def hr(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client("hr_admin")


@pytest.fixture
async def db(app: Litestar, settings: Settings) -> AsyncIterator[object]:
    """A session for arranging and checking state directly.

    Its own engine, with deferred transactions on SQLite, so a test that reads does not hold the
    write lock the app needs. Commit after writing through it; roll back before re-reading what
    the app changed since (a transaction keeps its snapshot).
    """
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = make_engine(settings.database_url, sqlite_immediate=False)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session
    await engine.dispose()
