"""業務開始・終了報告 (start/end reports) and the list of missing ones for unit heads."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit import record
from app.errors import Conflict, DomainError, NotFound
from app.security import Principal
from auth.models import User
from scheduling import schemas
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import TeleworkDay, WorkReport
from scheduling.rules import RuleContext
from scheduling.services import day_reads


async def today_days(db: AsyncSession, principal: Principal, today: date) -> list[schemas.DayRead]:
    """The person's approved telework today (for the home page's start/end buttons)."""
    rows = list(
        (
            await db.execute(
                select(TeleworkDay).where(
                    col(TeleworkDay.user_id) == principal.id,
                    col(TeleworkDay.day) == today,
                    col(TeleworkDay.state) == "approved",
                )
            )
        ).scalars()
    )
    return await day_reads(db, rows, principal.locale)


async def report(
    db: AsyncSession,
    principal: Principal,
    day_id: int,
    which: str,
    now: datetime,
    data: schemas.ReportIn,
    *,
    ip: str = "",
) -> WorkReport:
    """Record the start or end of work on one's own approved telework day, on that day."""
    day = await db.get(TeleworkDay, day_id)
    if day is None or day.user_id != principal.id:
        raise NotFound("telework.day_not_found")
    if day.state != "approved":
        raise Conflict("telework.report_needs_approved", state=day.state)
    at = data.at or now
    if at.tzinfo is None:
        at = at.replace(tzinfo=TOKYO)
    if at.astimezone(TOKYO).date() != day.day or day.day != now.astimezone(TOKYO).date():
        raise DomainError("telework.report_on_the_day", day=day.day.isoformat(), status_code=422)
    if at > now:
        raise DomainError("telework.report_in_future", status_code=422)
    existing = (
        await db.execute(select(WorkReport).where(col(WorkReport.day_id) == day_id))
    ).scalar_one_or_none()
    rep = existing or WorkReport(day_id=day_id, user_id=principal.id)
    before = {"started_at": str(rep.started_at or ""), "ended_at": str(rep.ended_at or "")}
    if which == "start":
        if rep.ended_at is not None and at > rep.ended_at:
            raise DomainError("telework.report_start_after_end", status_code=422)
        rep.started_at = at
    else:
        if rep.started_at is None:
            raise DomainError("telework.report_end_before_start", status_code=422)
        if at < rep.started_at:
            raise DomainError("telework.report_end_before_start", status_code=422)
        rep.ended_at = at
    if data.summary.strip():
        rep.summary = data.summary.strip()
    rep.updated_at = now
    db.add(rep)
    await db.flush()
    record(
        db,
        f"telework.report.{which}",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_day",
        entity_id=day_id,
        before=before,
        after={"started_at": str(rep.started_at or ""), "ended_at": str(rep.ended_at or "")},
        ip=ip,
    )
    return rep


async def missing(
    db: AsyncSession,
    config: TeleworkConfig,
    principal: Principal,
    day: date,
    unit_ids: set[int] | None = None,
) -> list[schemas.DayRead]:
    """Approved telework days without a complete report, in the units this person heads (or all for HR)."""
    scope = unit_ids if unit_ids is not None else set(principal.scope_unit_ids)
    query = (
        select(TeleworkDay)
        .outerjoin(WorkReport, col(WorkReport.day_id) == col(TeleworkDay.id))
        .where(
            col(TeleworkDay.day) == day,
            col(TeleworkDay.state) == "approved",
            (col(WorkReport.id).is_(None)) | (col(WorkReport.ended_at).is_(None)),
        )
        .order_by(col(TeleworkDay.unit_id), col(TeleworkDay.user_id))
    )
    if not principal.has("hr_admin", "auditor", "sysadmin"):
        if not scope:
            return []
        query = query.where(col(TeleworkDay.unit_id).in_(scope))
    rows = list((await db.execute(query)).scalars())
    if rows:
        ctx = await RuleContext.load(db, config, [r.user_id for r in rows], day, day)
        rows = [r for r in rows if ctx.policy(r.unit_id, day).require_reports]
    return await day_reads(db, rows, principal.locale)


async def staff_name(db: AsyncSession, user_id: int) -> str:
    user = await db.get(User, user_id)
    return user.name if user else ""
