"""Two checkouts racing for the same item: exactly one wins, on whichever database the tests run.

On PostgreSQL (DATABASE_URL set) the two transactions really overlap: each has its own connection, and
both have begun before either writes. On SQLite writers queue, which must give the same outcome.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import make_engine
from app.errors import Conflict
from devices import loans, schemas
from devices.models import Device, Loan, LoanItem
from tests.conftest import USE_POSTGRES
from tests.devices.helpers import EMPLOYEE, IT, device, principal

pytestmark = pytest.mark.usefixtures("app")


async def both_open(session: AsyncSession, started: asyncio.Barrier) -> None:
    """On PostgreSQL both transactions begin before either writes; SQLite's writers queue at BEGIN."""
    if USE_POSTGRES:
        await session.execute(select(1))
        await started.wait()


async def test_concurrent_double_checkout_lends_the_item_once(db, settings):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 1)
    spare = await device(db, it, 2)
    await db.commit()
    pc_id, spare_id = pc.id, spare.id
    engine = make_engine(settings.database_url)
    started = asyncio.Barrier(2)

    async def attempt(holder_id: int, device_ids: list[int]) -> str:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            await both_open(session, started)
            try:
                await loans.checkout(session, it, schemas.LoanIn(holder_id=holder_id, device_ids=device_ids))
                await session.commit()
                return "ok"
            except Conflict as exc:
                await session.rollback()
                return exc.key

    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(attempt(emp.id, [pc_id]), attempt(it.id, [spare_id, pc_id])), timeout=30
        )
    finally:
        await engine.dispose()
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) - {"ok"} <= {"devices.already_on_loan", "devices.already_on_loan_race"}
    await db.rollback()
    open_items = (
        await db.execute(
            select(func.count()).select_from(LoanItem).where(LoanItem.open_key == f"device:{pc_id}")
        )
    ).scalar_one()
    assert open_items == 1
    assert (await db.execute(select(func.count()).select_from(Loan))).scalar_one() == 1
    statuses = dict((await db.execute(select(Device.id, Device.status))).all())
    winner_took_spare = "ok" == outcomes[1]
    assert statuses[spare_id] == ("on_loan" if winner_took_spare else "in_stock")  # nothing half written


async def test_the_unique_open_key_alone_stops_overlapping_writers(db, settings):
    """No row locks, no status checks: two transactions insert an open item for one device at once."""
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 1)
    await db.commit()
    pc_id = pc.id
    engine = make_engine(settings.database_url)
    started = asyncio.Barrier(2)

    async def insert() -> str:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            await both_open(session, started)
            loan = Loan(holder_id=emp.id)
            session.add(loan)
            await session.flush()
            session.add(LoanItem(loan_id=loan.id, device_id=pc_id, open_key=f"device:{pc_id}"))
            try:
                await session.flush()
                await session.commit()
                return "ok"
            except IntegrityError:
                await session.rollback()
                return "refused"

    try:
        outcomes = await asyncio.wait_for(asyncio.gather(insert(), insert()), timeout=30)
    finally:
        await engine.dispose()
    assert sorted(outcomes) == ["ok", "refused"]
