"""Reports, reminders through the outbox (once per week per loan, once per deadline) and home notices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.mail import OutboxMessage
from devices import loans, reports, schemas, services
from devices.models import Loan, UsageRecord
from tests.devices.helpers import EMPLOYEE, IT, device, line, principal

pytestmark = pytest.mark.usefixtures("app")


async def overdue_loan(db):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 1)
    ln = await line(db, it, 1)
    plan = await services.create_plan(db, it, schemas.PlanIn(name="データ30GB", monthly_fee=2980, data_gb=30))
    ln.plan_id = plan.id
    await db.commit()
    loan = await loans.checkout(
        db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[pc.id], line_ids=[ln.id])
    )
    await db.commit()
    await db.execute(
        update(Loan).where(Loan.id == loan.id).values(expected_return=services.today() - timedelta(days=2))
    )
    await db.commit()
    return it, emp, loan.id, ln.id


async def test_overdue_returns_are_reminded_once_a_week(db, app):
    _it, _emp, loan_id, _line = await overdue_loan(db)
    sent = await reports.run_jobs(app.state)
    assert sent["overdue"] == 1
    assert (await reports.run_jobs(app.state))["overdue"] == 0  # same week: the dedupe key holds
    await db.rollback()
    mails = (
        (await db.execute(select(OutboxMessage).where(OutboxMessage.subject.contains("返却期限"))))
        .scalars()
        .all()
    )
    assert [m.to_addr for m in mails] == ["sakura.yamamoto@example.lg.jp"]
    assert "/devices/mine" in mails[0].body_text
    report = await reports.report(db)
    assert [r.id for r in report.overdue] == [loan_id] and report.overdue[0].overdue
    emp = await principal(db, EMPLOYEE)
    keys = {n.key for n in await reports.home_notices(db, emp)}
    assert keys == {"devices.home_accept", "devices.home_overdue"}


async def test_notice_deadlines_reach_it_admins_once(db, app):
    it = await principal(db, IT)
    soon = services.today() + timedelta(days=40)
    await services.create_line(
        db, it, schemas.LineIn(number="+819011110000", min_term_end=soon, notice_days=30)
    )
    await services.create_line(
        db,
        it,
        schemas.LineIn(number="+819022220000", min_term_end=soon + timedelta(days=300), notice_days=30),
    )
    await db.commit()
    assert [r.number for r in await reports.deadlines(db, 30)] == ["+819011110000"]
    assert (await reports.run_jobs(app.state))["deadlines"] == 2  # two IT admins in the demo org
    assert (await reports.run_jobs(app.state))["deadlines"] == 0
    await db.rollback()
    to = sorted(m.to_addr for m in (await db.execute(select(OutboxMessage))).scalars())
    assert to == ["kenta.tanaka@example.lg.jp", "shota.kobayashi@example.lg.jp"]
    keys = {n.key for n in await reports.home_notices(db, it)}
    assert "devices.home_deadlines" in keys


async def test_monthly_cost_by_unit_and_idle_lines(db):
    it, _emp, _loan, line_id = await overdue_loan(db)
    spare = await line(db, it, 2)
    this_month = services.today().replace(day=1)
    for n in (1, 2, 3):
        month = reports.months_back(this_month, n)
        db.add(UsageRecord(line_id=line_id, month=month, data_mb=0))
        db.add(UsageRecord(line_id=spare.id, month=month, data_mb=0 if n > 1 else 2048))
    await db.commit()
    report = await reports.report(db, idle_months=3)
    jinji = next(c for c in report.costs if c.unit == "人事課")
    assert (jinji.lines, jinji.monthly_fee) == (1, 2980)
    assert [(i.line_id, i.holder) for i in report.idle] == [(line_id, "山本 さくら")]
    assert {(c.kind, c.status, c.count) for c in report.counts} == {("laptop", "on_loan", 1)}
    assert report.open_loans == 1
