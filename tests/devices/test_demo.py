"""The demo inventory: seeded once through the services, with history, a loan the demo unit head sees."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from devices import loans, reports
from devices.demo import seed_if_empty
from devices.models import Device, Loan
from tests.devices.helpers import UNIT_HEAD, principal

pytestmark = pytest.mark.usefixtures("app")


async def test_demo_inventory(db, settings):
    assert await seed_if_empty(db, settings.secret_key) == 12
    await db.commit()
    assert await seed_if_empty(db, settings.secret_key) == 0
    assert (await db.execute(select(func.count()).select_from(Device))).scalar_one() == 12
    assert (await db.execute(select(func.count()).select_from(Loan))).scalar_one() == 3
    head = await principal(db, UNIT_HEAD)
    assert {ln.holder_name for ln in (await loans.list_loans(db, head)).items} == {"山口 翼", "森 千尋"}
    report = await reports.report(db, idle_months=3)
    assert len(report.overdue) == 1 and len(report.idle) == 1 and report.deadlines
    actions = set((await db.execute(select(AuditEvent.action))).scalars())
    assert {"devices.loan.checkout", "devices.loan.accept", "devices.sim.create"} <= actions
