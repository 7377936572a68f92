"""Devices' figure beside the telework indicator: devices and lines on loan at the end of a month."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from devices.models import Loan, LoanItem


async def on_loan(db: AsyncSession, first: date, last: date) -> list[tuple[str, int]]:
    """Items out at the end of the period (or now, for the running month)."""
    end = min(datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC), datetime.now(UTC))
    out = (col(Loan.out_at) < end) & or_(
        col(LoanItem.returned_at).is_(None), col(LoanItem.returned_at) >= end
    )
    devices, lines = (
        await db.execute(
            select(
                func.count(col(LoanItem.device_id)),
                func.count(col(LoanItem.line_id)),
            )
            .join(Loan, col(Loan.id) == col(LoanItem.loan_id))
            .where(out)
        )
    ).one()
    return [("ind.measure.devices_on_loan", int(devices)), ("ind.measure.lines_on_loan", int(lines))]
