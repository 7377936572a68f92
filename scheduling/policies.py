"""HR's side: policy versions per unit, custom closures, emergency mode, and the working calendar view."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit import record
from app.errors import Conflict, DomainError, NotFound
from app.security import Principal
from auth.models import OrgUnit
from scheduling import schemas
from scheduling.calendar import WorkingCalendar
from scheduling.config import TeleworkConfig
from scheduling.models import Closure, EmergencyPeriod, Policy
from scheduling.rules import RuleContext
from scheduling.services import unit_names


def policy_read(p: Policy, unit_name: str, inherited_from: int | None = None) -> schemas.PolicyRead:
    return schemas.PolicyRead(
        id=p.id or 0,
        unit_id=p.unit_id,
        unit_name=unit_name,
        valid_from=p.valid_from,
        valid_to=p.valid_to,
        weekly_cap=p.weekly_cap,
        monthly_cap=p.monthly_cap,
        notice_days=p.notice_days,
        notice_cutoff=p.notice_cutoff,
        max_consecutive=p.max_consecutive,
        min_onsite_count=p.min_onsite_count,
        min_onsite_ratio=p.min_onsite_ratio,
        eligible_types=[t for t in p.eligible_types.split(",") if t],
        blackout_dates=[date.fromisoformat(d) for d in p.blackout_dates.split(",") if d],
        require_reports=p.require_reports,
        note=p.note,
        inherited_from=inherited_from,
    )


async def list_policies(
    db: AsyncSession, locale: str, unit_id: int | None = None
) -> list[schemas.PolicyRead]:
    query = select(Policy).order_by(col(Policy.unit_id), col(Policy.valid_from).desc())
    if unit_id is not None:
        query = query.where(col(Policy.unit_id) == unit_id)
    rows = list((await db.execute(query.limit(1000))).scalars())
    units = await unit_names(db, [r.unit_id for r in rows], locale)
    return [policy_read(r, units.get(r.unit_id, "")) for r in rows]


async def effective(
    db: AsyncSession, config: TeleworkConfig, unit_id: int, day: date, locale: str
) -> schemas.PolicyRead | None:
    if await db.get(OrgUnit, unit_id) is None:
        raise NotFound("telework.unit_unknown")
    ctx = await RuleContext.load(db, config, [], day, day)
    policy = ctx.policy(unit_id, day)
    if policy.id is None:
        return None
    units = await unit_names(db, [policy.unit_id], locale)
    return policy_read(
        policy, units.get(policy.unit_id, ""), None if policy.unit_id == unit_id else policy.unit_id
    )


async def add_policy(
    db: AsyncSession, principal: Principal, data: schemas.PolicyIn, today: date, *, ip: str = ""
) -> Policy:
    """A new version from `valid_from` on; the version it follows ends the day before. History stays."""
    if await db.get(OrgUnit, data.unit_id) is None:
        raise DomainError("telework.unit_unknown", status_code=422)
    if data.valid_from < today:
        raise DomainError("telework.policy_not_retroactive", status_code=422)
    later = (
        (
            await db.execute(
                select(Policy).where(
                    col(Policy.unit_id) == data.unit_id, col(Policy.valid_from) >= data.valid_from
                )
            )
        )
        .scalars()
        .first()
    )
    if later is not None:
        raise Conflict("telework.policy_version_exists", day=later.valid_from.isoformat())
    previous = (
        (
            await db.execute(
                select(Policy)
                .where(col(Policy.unit_id) == data.unit_id, col(Policy.valid_from) < data.valid_from)
                .order_by(col(Policy.valid_from).desc())
            )
        )
        .scalars()
        .first()
    )
    if previous is not None and (previous.valid_to is None or previous.valid_to >= data.valid_from):
        previous.valid_to = data.valid_from - timedelta(days=1)
        db.add(previous)
    row = Policy(
        unit_id=data.unit_id,
        valid_from=data.valid_from,
        weekly_cap=data.weekly_cap,
        monthly_cap=data.monthly_cap,
        notice_days=data.notice_days,
        notice_cutoff=data.notice_cutoff,
        max_consecutive=data.max_consecutive,
        min_onsite_count=data.min_onsite_count,
        min_onsite_ratio=data.min_onsite_ratio,
        eligible_types=",".join(t.strip() for t in data.eligible_types if t.strip()),
        blackout_dates=",".join(sorted({d.isoformat() for d in data.blackout_dates})),
        require_reports=data.require_reports,
        note=data.note.strip(),
        created_by=principal.id,
    )
    db.add(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("telework.policy_version_exists", day=data.valid_from.isoformat()) from exc
    record(
        db,
        "telework.policy.created",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_policy",
        entity_id=row.id,
        after={k: v for k, v in row.model_dump().items() if k not in ("created_at",)}
        | {"valid_from": str(row.valid_from)},
        ip=ip,
    )
    return row


async def list_closures(db: AsyncSession, first: date, last: date) -> list[Closure]:
    return list(
        (
            await db.execute(
                select(Closure)
                .where(col(Closure.day) >= first, col(Closure.day) <= last)
                .order_by(col(Closure.day))
            )
        ).scalars()
    )


async def add_closure(
    db: AsyncSession, principal: Principal, data: schemas.ClosureIn, *, ip: str = ""
) -> Closure:
    exists = (await db.execute(select(Closure).where(col(Closure.day) == data.day))).scalar_one_or_none()
    if exists is not None:
        raise Conflict("telework.closure_exists", day=data.day.isoformat())
    row = Closure(day=data.day, name=data.name.strip(), name_en=data.name_en.strip(), created_by=principal.id)
    db.add(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("telework.closure_exists", day=data.day.isoformat()) from exc
    record(
        db,
        "telework.closure.created",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_closure",
        entity_id=row.id,
        after={"day": data.day.isoformat(), "name": row.name},
        ip=ip,
    )
    return row


async def remove_closure(db: AsyncSession, principal: Principal, closure_id: int, *, ip: str = "") -> None:
    row = await db.get(Closure, closure_id)
    if row is None:
        raise NotFound("telework.closure_not_found")
    record(
        db,
        "telework.closure.removed",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_closure",
        entity_id=row.id,
        before={"day": row.day.isoformat(), "name": row.name},
        ip=ip,
    )
    await db.delete(row)


async def list_emergencies(db: AsyncSession) -> list[EmergencyPeriod]:
    return list(
        (
            await db.execute(select(EmergencyPeriod).order_by(col(EmergencyPeriod.starts).desc()).limit(100))
        ).scalars()
    )


async def start_emergency(
    db: AsyncSession, principal: Principal, data: schemas.EmergencyIn, *, ip: str = ""
) -> EmergencyPeriod:
    """Emergency mode for a period (city-wide or one subtree): caps, notice and run limits are lifted."""
    if data.ends < data.starts:
        raise DomainError("telework.range_backwards", status_code=422)
    if (data.ends - data.starts).days > 366:
        raise DomainError("telework.range_too_long", days=366, status_code=422)
    if data.unit_id is not None and await db.get(OrgUnit, data.unit_id) is None:
        raise DomainError("telework.unit_unknown", status_code=422)
    row = EmergencyPeriod(
        starts=data.starts,
        ends=data.ends,
        reason=data.reason.strip(),
        unit_id=data.unit_id,
        created_by=principal.id,
    )
    db.add(row)
    await db.flush()
    record(
        db,
        "telework.emergency.started",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_emergency",
        entity_id=row.id,
        after={
            "starts": data.starts.isoformat(),
            "ends": data.ends.isoformat(),
            "reason": row.reason,
            "unit_id": data.unit_id,
        },
        ip=ip,
    )
    return row


async def end_emergency(
    db: AsyncSession, principal: Principal, emergency_id: int, today: date, now: datetime
) -> EmergencyPeriod:
    row = await db.get(EmergencyPeriod, emergency_id)
    if row is None:
        raise NotFound("telework.emergency_not_found")
    if row.ends >= today:
        before = row.ends.isoformat()
        row.ends = max(today, row.starts) - timedelta(days=1)  # before its start: it never applies
        row.ended_early_at = now
        db.add(row)
        record(
            db,
            "telework.emergency.ended",
            actor_id=principal.id,
            actor_label=principal.name,
            entity_type="telework_emergency",
            entity_id=row.id,
            before={"ends": before},
            after={"ends": row.ends.isoformat()},
        )
    return row


async def calendar_days(
    db: AsyncSession, config: TeleworkConfig, first: date, last: date, locale: str
) -> list[schemas.CalendarDayRead]:
    if last < first:
        raise DomainError("telework.range_backwards", status_code=422)
    if (last - first).days > 400:
        raise DomainError("telework.range_too_long", days=400, status_code=422)
    calendar = await WorkingCalendar.load(db, config, first, last)
    out = []
    day = first
    while day <= last:
        off = calendar.day_off(day)
        out.append(
            schemas.CalendarDayRead(
                day=day,
                working=off is None,
                kind=off.kind if off else "working",
                name=off.label(locale) if off else "",
            )
        )
        day += timedelta(days=1)
    return out
