"""The approver's side: inbox, on-site coverage grid, delegation, timed jobs (remind, escalate, expire)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, or_, select

from app.audit import record
from app.errors import DomainError, Forbidden, NotFound
from app.security import Principal
from auth.models import OrgUnit, User
from scheduling import schemas
from scheduling.calendar import WorkingCalendar
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import ApprovalStep, Delegation, TeleworkDay, TeleworkRequest
from scheduling.notify import Notifier
from scheduling.rules import RuleContext
from scheduling.services import day_reads, delegators, names, route, unit_names

# ---------------------------------------------------------------- inbox


async def inbox(
    db: AsyncSession,
    config: TeleworkConfig,
    principal: Principal,
    *,
    today: date,
    unit_id: int | None = None,
    first: date | None = None,
    last: date | None = None,
    flagged_only: bool = False,
    page: int = 1,
    per_page: int = 50,
) -> schemas.InboxRead:
    """Undecided days waiting for this person, or for someone they act for, with the day's coverage."""
    delegated = await delegators(db, principal.id, on=today)
    approvers = [principal.id, *delegated]
    conditions = [col(TeleworkDay.state) == "submitted", col(TeleworkDay.user_id) != principal.id]
    owner: Any = col(TeleworkDay.approver_id).in_(approvers)
    if principal.has("hr_admin"):
        owner = or_(owner, col(TeleworkDay.approver_id).is_(None))
    conditions.append(owner)
    if unit_id is not None:
        conditions.append(col(TeleworkDay.unit_id) == unit_id)
    if first is not None:
        conditions.append(col(TeleworkDay.day) >= first)
    if last is not None:
        conditions.append(col(TeleworkDay.day) <= last)
    rows = list(
        (
            await db.execute(
                select(TeleworkDay).where(*conditions).order_by(col(TeleworkDay.day), col(TeleworkDay.id))
            )
        ).scalars()
    )
    # Delegations limited to a unit subtree only cover that subtree.
    scoped: dict[int, set[int]] = {}
    for head, delegation in delegated.items():
        if delegation.unit_id is not None:
            from auth.services import subtree_ids

            scoped[head] = await subtree_ids(db, [delegation.unit_id])
    rows = [r for r in rows if r.approver_id not in scoped or r.unit_id in scoped[r.approver_id]]
    items: list[schemas.InboxItem] = []
    if rows:
        ctx = RuleContext(config)
        lo, hi = min(r.day for r in rows), max(r.day for r in rows)
        ctx.parents = dict((await db.execute(select(OrgUnit.id, OrgUnit.parent_id))).all())  # type: ignore[arg-type]
        from scheduling.models import Policy

        for policy in (await db.execute(select(Policy).order_by(col(Policy.valid_from)))).scalars():
            ctx.policies[policy.unit_id].append(policy)
        await ctx._load_staffing(db, {r.unit_id for r in rows if r.unit_id is not None}, lo, hi)
        judged = []
        for r in rows:
            onsite: float = 0
            members = 0
            minimum = None
            breaks = False
            if r.unit_id is not None:
                minimum = ctx.minimum(r.unit_id, r.day)
                onsite_now, members = ctx.onsite(r.unit_id, r.day)
                onsite_after, _ = ctx.onsite(r.unit_id, r.day, r.part)
                onsite = onsite_now
                breaks = minimum is not None and onsite_after < minimum
            judged.append((r, onsite, members, minimum, breaks))
        if flagged_only:
            judged = [j for j in judged if j[4] or j[0].warnings]
        total = len(judged)
        window = judged[(page - 1) * per_page : page * per_page]
        reads = await day_reads(db, [j[0] for j in window], principal.locale)
        req_ids = {j[0].request_id for j in window}
        # Only the columns shown, not a whole request object per row.
        reqs = {
            r.id: r
            for r in await db.execute(
                select(
                    TeleworkRequest.id,
                    TeleworkRequest.place,
                    TeleworkRequest.place_note,
                    TeleworkRequest.plan,
                ).where(col(TeleworkRequest.id).in_(req_ids))
            )
        }
        acting_names = await names(db, list(delegated))
        for read, (r, onsite, members, minimum, breaks) in zip(reads, window, strict=True):
            req = reqs.get(r.request_id)
            items.append(
                schemas.InboxItem(
                    day=read,
                    place=req.place if req else "home",
                    place_note=req.place_note if req else "",
                    plan=req.plan if req else "",
                    acting_for_name=acting_names.get(r.approver_id, "") if r.approver_id in delegated else "",
                    onsite=onsite,
                    members=members,
                    minimum=minimum,
                    would_break_coverage=breaks,
                )
            )
        return schemas.InboxRead(items=items, total=total, page=page, per_page=per_page)
    return schemas.InboxRead(items=[], total=0, page=page, per_page=per_page)


async def pending_count(db: AsyncSession, principal: Principal, today: date) -> int:
    delegated = await delegators(db, principal.id, on=today)
    return (
        await db.execute(
            select(func.count())
            .select_from(TeleworkDay)
            .where(
                col(TeleworkDay.state) == "submitted",
                col(TeleworkDay.approver_id).in_([principal.id, *delegated]),
                col(TeleworkDay.user_id) != principal.id,
            )
        )
    ).scalar_one()


# ---------------------------------------------------------------- coverage grid


async def coverage(
    db: AsyncSession, config: TeleworkConfig, principal: Principal, unit_id: int, month: date
) -> schemas.CoverageRead:
    """Who is remote each day of the month in one unit, and the on-site count against the minimum."""
    if unit_id not in principal.scope_unit_ids and not principal.has("hr_admin", "auditor", "sysadmin"):
        raise NotFound("telework.unit_not_in_scope")
    unit = await db.get(OrgUnit, unit_id)
    if unit is None:
        raise NotFound("telework.unit_not_in_scope")
    first = month.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    calendar = await WorkingCalendar.load(db, config, first, last)
    staff = list(
        (
            await db.execute(
                select(User.id, User.name)
                .where(col(User.unit_id) == unit_id, col(User.active).is_(True))
                .order_by(col(User.kana), col(User.id))
            )
        ).all()
    )
    ctx = await RuleContext.load(db, config, [], first, last, unit_ids=[unit_id])
    rows = await db.execute(
        select(TeleworkDay.user_id, TeleworkDay.day, TeleworkDay.part, TeleworkDay.state).where(  # type: ignore[call-overload]
            col(TeleworkDay.unit_id) == unit_id,
            col(TeleworkDay.day) >= first,
            col(TeleworkDay.day) <= last,
            col(TeleworkDay.state).in_(("submitted", "approved")),
        )
    )
    marks: dict[int, dict[str, str]] = defaultdict(dict)
    for uid, day, part, state in rows.all():
        marks[uid][day.isoformat()] = part + ("" if state == "approved" else "?")
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    onsite: dict[str, float] = {}
    minimum: dict[str, int | None] = {}
    short: list[date] = []
    names_off: dict[str, str] = {}
    working: dict[str, bool] = {}
    for d in days:
        key = d.isoformat()
        off = calendar.day_off(d)
        working[key] = off is None
        if off is not None:
            names_off[key] = off.label(principal.locale)
            continue
        count, _ = ctx.onsite(unit_id, d)
        onsite[key] = count
        minimum[key] = ctx.minimum(unit_id, d)
        need = minimum[key]
        if need is not None and count < need:
            short.append(d)
    label = unit.name_en if principal.locale == "en" and unit.name_en else unit.name
    return schemas.CoverageRead(
        unit_id=unit_id,
        unit_name=label,
        month=f"{first.year}-{first.month:02d}",
        days=days,
        working=working,
        day_off_names=names_off,
        rows=[schemas.CoverageRow(user_id=uid, name=name, days=marks.get(uid, {})) for uid, name in staff],
        onsite=onsite,
        minimum=minimum,
        short=short,
        members=len(staff),
    )


# ---------------------------------------------------------------- delegation


async def delegation_reads(
    db: AsyncSession, rows: list[Delegation], locale: str
) -> list[schemas.DelegationRead]:
    people = await names(db, [i for r in rows for i in (r.from_user_id, r.to_user_id)])
    units = await unit_names(db, [r.unit_id for r in rows], locale)
    return [
        schemas.DelegationRead(
            id=r.id or 0,
            from_user_id=r.from_user_id,
            from_name=people.get(r.from_user_id, ""),
            to_user_id=r.to_user_id,
            to_name=people.get(r.to_user_id, ""),
            starts=r.starts,
            ends=r.ends,
            unit_id=r.unit_id,
            unit_name=units.get(r.unit_id, "") if r.unit_id else "",
            revoked=r.revoked_at is not None,
        )
        for r in rows
    ]


async def my_delegations(db: AsyncSession, principal: Principal) -> list[schemas.DelegationRead]:
    rows = list(
        (
            await db.execute(
                select(Delegation)
                .where(
                    or_(
                        col(Delegation.from_user_id) == principal.id,
                        col(Delegation.to_user_id) == principal.id,
                    )
                )
                .order_by(col(Delegation.starts).desc(), col(Delegation.id).desc())
                .limit(200)
            )
        ).scalars()
    )
    return await delegation_reads(db, rows, principal.locale)


async def delegate(
    db: AsyncSession, principal: Principal, data: schemas.DelegationIn, today: date, *, ip: str = ""
) -> Delegation:
    """A unit head names someone to decide in their place for a period (optionally one unit subtree)."""
    if not principal.scope_unit_ids:
        raise Forbidden("telework.delegation_heads_only")
    if data.ends < data.starts:
        raise DomainError("telework.range_backwards", status_code=422)
    if data.ends < today:
        raise DomainError("telework.delegation_in_past", status_code=422)
    if (data.ends - data.starts).days > 366:
        raise DomainError("telework.range_too_long", days=366, status_code=422)
    if data.to_user_id == principal.id:
        raise DomainError("telework.delegation_to_self", status_code=422)
    target = await db.get(User, data.to_user_id)
    if target is None or not target.active:
        raise DomainError("telework.delegate_unknown", status_code=422)
    if data.unit_id is not None and data.unit_id not in principal.scope_unit_ids:
        raise DomainError("telework.unit_not_in_scope", status_code=422)
    row = Delegation(
        from_user_id=principal.id,
        to_user_id=data.to_user_id,
        starts=data.starts,
        ends=data.ends,
        unit_id=data.unit_id,
    )
    db.add(row)
    await db.flush()
    record(
        db,
        "telework.delegation.created",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_delegation",
        entity_id=row.id,
        after={
            "to": target.name,
            "starts": data.starts.isoformat(),
            "ends": data.ends.isoformat(),
            "unit_id": data.unit_id,
        },
        ip=ip,
    )
    notifier = Notifier(db)
    notifier.add(
        data.to_user_id,
        "telework.notify.delegated",
        {"name": principal.name, "starts": data.starts.isoformat(), "ends": data.ends.isoformat()},
        "/telework/inbox",
    )
    await notifier.flush()
    return row


async def revoke_delegation(
    db: AsyncSession, principal: Principal, delegation_id: int, now: datetime
) -> Delegation:
    row = await db.get(Delegation, delegation_id)
    if row is None or row.from_user_id != principal.id:
        raise NotFound("telework.delegation_not_found")
    if row.revoked_at is None:
        row.revoked_at = now
        record(
            db,
            "telework.delegation.revoked",
            actor_id=principal.id,
            actor_label=principal.name,
            entity_type="telework_delegation",
            entity_id=row.id,
        )
    return row


# ---------------------------------------------------------------- timed jobs


async def expire_due(db: AsyncSession, config: TeleworkConfig, now: datetime) -> int:
    """Undecided days whose date has passed expire (the requester is told)."""
    today = now.astimezone(TOKYO).date()
    rows = list(
        (
            await db.execute(
                select(TeleworkDay)
                .where(col(TeleworkDay.state) == "submitted", col(TeleworkDay.day) < today)
                .limit(2000)
            )
        ).scalars()
    )
    notifier = Notifier(db)
    done = 0
    for row in rows:
        result = await db.execute(
            update(TeleworkDay)
            .where(col(TeleworkDay.id) == row.id, col(TeleworkDay.state) == "submitted")
            .values(state="expired", sequence=TeleworkDay.sequence + 1, updated_at=now)  # type: ignore[operator]
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        done += 1
        db.add(ApprovalStep(day_id=row.id or 0, action="expire", at=now))
        record(
            db,
            "telework.day.expired",
            actor_label="system",
            entity_type="telework_day",
            entity_id=row.id,
            before={"state": "submitted"},
            after={"state": "expired"},
        )
        notifier.add(
            row.user_id,
            "telework.notify.expired",
            {"day": row.day.isoformat()},
            f"/telework/requests/{row.request_id}",
            dedupe=f"telework-expired-{row.id}",
        )
    await notifier.flush()
    return done


async def remind_due(db: AsyncSession, config: TeleworkConfig, now: datetime) -> int:
    """Approvers get one reminder for a request still pending close to its day."""
    horizon = (now + timedelta(hours=config.remind_hours)).astimezone(TOKYO).date()
    rows = list(
        (
            await db.execute(
                select(TeleworkDay)
                .where(
                    col(TeleworkDay.state) == "submitted",
                    col(TeleworkDay.reminded).is_(False),
                    col(TeleworkDay.day) <= horizon,
                    col(TeleworkDay.approver_id).is_not(None),
                )
                .limit(2000)
            )
        ).scalars()
    )
    due = [r for r in rows if now >= config.hours_before(r.day, config.remind_hours)]
    if not due:
        return 0
    await db.execute(
        update(TeleworkDay)
        .where(col(TeleworkDay.id).in_([r.id for r in due]))
        .values(reminded=True)
        .execution_options(synchronize_session=False)
    )
    per_approver: dict[int, list[TeleworkDay]] = defaultdict(list)
    for r in due:
        per_approver[r.approver_id or 0].append(r)
    notifier = Notifier(db)
    for approver, group in per_approver.items():
        first = min(r.day for r in group)
        notifier.add(
            approver,
            "telework.notify.reminder",
            {"count": len(group), "day": first.isoformat()},
            "/telework/inbox",
            dedupe=f"telework-remind-{approver}-{first.isoformat()}-{len(group)}-{now.date()}",
        )
    await notifier.flush()
    return len(due)


async def escalate_due(db: AsyncSession, config: TeleworkConfig, now: datetime) -> int:
    """A day still undecided N hours before it starts moves one level up; the original approver is told."""
    horizon = (now + timedelta(hours=config.escalate_hours)).astimezone(TOKYO).date()
    today = now.astimezone(TOKYO).date()
    rows = list(
        (
            await db.execute(
                select(TeleworkDay)
                .where(
                    col(TeleworkDay.state) == "submitted",
                    col(TeleworkDay.escalated_from_id).is_(None),
                    col(TeleworkDay.approver_id).is_not(None),
                    col(TeleworkDay.day) <= horizon,
                    col(TeleworkDay.day) >= today,
                )
                .limit(2000)
            )
        ).scalars()
    )
    due = [r for r in rows if now >= config.hours_before(r.day, config.escalate_hours)]
    if not due:
        return 0
    ctx = await RuleContext.load(db, config, [], today, horizon)
    notifier = Notifier(db)
    moved = 0
    for row in due:
        upper = await route(db, ctx, row.user_id, row.unit_id, above=row.approver_id)
        if upper is None or upper == row.approver_id:
            continue
        result = await db.execute(
            update(TeleworkDay)
            .where(
                col(TeleworkDay.id) == row.id,
                col(TeleworkDay.state) == "submitted",
                col(TeleworkDay.escalated_from_id).is_(None),
            )
            .values(approver_id=upper, escalated_from_id=row.approver_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        moved += 1
        db.add(
            ApprovalStep(
                day_id=row.id or 0, action="escalate", acting_for=row.approver_id, actor_id=upper, at=now
            )
        )
        record(
            db,
            "telework.day.escalated",
            actor_label="system",
            entity_type="telework_day",
            entity_id=row.id,
            before={"approver_id": row.approver_id},
            after={"approver_id": upper},
        )
        params = {"day": row.day.isoformat(), "hours": config.escalate_hours}
        notifier.add(
            upper,
            "telework.notify.escalated_to",
            params,
            "/telework/inbox",
            dedupe=f"telework-esc-to-{row.id}",
        )
        notifier.add(
            row.approver_id,
            "telework.notify.escalated_from",
            params,
            "/telework/inbox",
            dedupe=f"telework-esc-from-{row.id}",
        )
    await notifier.flush()
    return moved
