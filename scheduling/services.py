"""Telework requests: expand, preview, submit, withdraw, cancel, decide. Business rules only, no HTTP.

Concurrency: every write that a cap or the on-site minimum depends on first takes a lock per unit
(`pg_advisory_xact_lock` on PostgreSQL; SQLite transactions are already serialised by BEGIN IMMEDIATE),
then reads committed state. A decision is a conditional UPDATE (… WHERE state = 'submitted'): of two
approvers deciding the same day at once, exactly one changes a row; the other gets a conflict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit import record
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.i18n import translate
from app.security import Principal
from auth.models import OrgUnit, RoleAssignment, User
from scheduling import schemas
from scheduling.calendar import WorkingCalendar
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import ApprovalStep, Delegation, TeleworkDay, TeleworkRequest
from scheduling.notify import Notifier
from scheduling.rules import Candidate, RuleContext, Violation

MAX_SPAN_DAYS = 366
MAX_DAYS_PER_REQUEST = 260


# ---------------------------------------------------------------- helpers


async def lock_units(db: AsyncSession, keys: Iterable[int | None], user_id: int | None = None) -> None:
    """Serialise writers per unit (and per person without a unit) until the transaction ends."""
    bind = db.get_bind()
    if bind.dialect.name != "postgresql":
        return
    wanted = sorted({("u", k) for k in keys if k is not None} | ({("p", user_id)} if user_id else set()))
    for kind, key in wanted:
        await db.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": 7301 if kind == "u" else 7302, "key": key}
        )


def violation_read(locale: str, v: Violation) -> schemas.ViolationRead:
    params = dict(v.params)
    if "name" in params and locale == "en":
        params["name"] = params.get("name_en") or params["name"]
    return schemas.ViolationRead(
        code=v.code,
        hard=v.hard,
        message=translate(locale, f"telework.rule.{v.code}", **params),
        params=v.params,
    )


async def names(db: AsyncSession, user_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    return dict((await db.execute(select(User.id, User.name).where(col(User.id).in_(ids)))).all())  # type: ignore[arg-type]


async def unit_names(db: AsyncSession, unit_ids: Iterable[int | None], locale: str = "ja") -> dict[int, str]:
    ids = {i for i in unit_ids if i is not None}
    if not ids:
        return {}
    rows = await db.execute(select(OrgUnit.id, OrgUnit.name, OrgUnit.name_en).where(col(OrgUnit.id).in_(ids)))
    return {uid: (en if locale == "en" and en else ja) for uid, ja, en in rows.all()}


# ---------------------------------------------------------------- expanding a request


def expand(
    data: schemas.RequestIn, calendar: WorkingCalendar
) -> tuple[list[date], list[tuple[date, str, str]], date]:
    """The working days a request asks for, the non-working days skipped (with names), and its last day."""
    last = data.last_day or data.first_day
    if data.kind == "single":
        if data.last_day not in (None, data.first_day):
            raise DomainError("telework.single_has_one_day", status_code=422)
        last = data.first_day
    if last < data.first_day:
        raise DomainError("telework.range_backwards", status_code=422)
    if (last - data.first_day).days >= MAX_SPAN_DAYS:
        raise DomainError("telework.range_too_long", days=MAX_SPAN_DAYS, status_code=422)
    if data.kind == "pattern" and not data.weekdays:
        raise DomainError("telework.pattern_needs_weekdays", status_code=422)
    if data.place == "other" and not data.place_note.strip():
        raise DomainError("telework.place_note_required", status_code=422)
    weekdays = set(data.weekdays)
    days: list[date] = []
    skipped: list[tuple[date, str, str]] = []
    cursor = data.first_day
    while cursor <= last:
        if data.kind != "pattern" or cursor.isoweekday() in weekdays:
            off = calendar.day_off(cursor)
            if off is None:
                days.append(cursor)
            elif data.kind == "single" or off.kind != "weekend":
                skipped.append((cursor, off.name, off.name_en))
        cursor += timedelta(days=1)
    if data.kind == "single" and skipped:
        day, name, name_en = skipped[0]
        raise DomainError(
            "telework.rule.non_working", day=day.isoformat(), name=name, name_en=name_en, status_code=422
        )
    if not days:
        raise DomainError("telework.no_working_day", status_code=422)
    if len(days) > MAX_DAYS_PER_REQUEST:
        raise DomainError("telework.too_many_days", days=MAX_DAYS_PER_REQUEST, status_code=422)
    return days, skipped, last


# ---------------------------------------------------------------- routing


async def heads_of(db: AsyncSession, unit_ids: Sequence[int]) -> dict[int, list[int]]:
    """Active unit heads per unit."""
    if not unit_ids:
        return {}
    rows = await db.execute(
        select(RoleAssignment.unit_id, RoleAssignment.user_id)
        .join(User, col(User.id) == col(RoleAssignment.user_id))
        .where(
            col(RoleAssignment.role) == "unit_head",
            col(RoleAssignment.unit_id).in_(unit_ids),
            col(User.active).is_(True),
        )
        .order_by(col(RoleAssignment.user_id))
    )
    out: dict[int, list[int]] = defaultdict(list)
    for unit_id, user_id in rows.all():
        if unit_id is not None:
            out[unit_id].append(user_id)
    return out


async def route(
    db: AsyncSession, ctx: RuleContext, requester_id: int, unit_id: int | None, above: int | None = None
) -> int | None:
    """The approver: the head of the requester's unit, or the next head up; never the requester.

    With `above`, start from the unit above the one `above` heads (escalation).
    """
    chain = ctx.chain(unit_id)
    heads = await heads_of(db, chain)
    start = 0
    if above is not None:
        for index, unit in enumerate(chain):
            if above in heads.get(unit, []):
                start = index + 1
                break
    for unit in chain[start:]:
        for head in heads.get(unit, []):
            if head != requester_id and head != above:
                return head
    return None


# ---------------------------------------------------------------- preview and submit


async def _context_for(
    db: AsyncSession, config: TeleworkConfig, user_id: int, days: list[date]
) -> RuleContext:
    return await RuleContext.load(db, config, [user_id], min(days), max(days))


def _check_all(
    ctx: RuleContext, user_id: int, days: list[date], part: str, now: datetime
) -> list[tuple[Candidate, list[Violation]]]:
    # In date order, each day counts the earlier days of the same request: the first days of a
    # request that crosses a cap stay clean and the days beyond the cap carry the warning.
    batch = [Candidate(user_id, d, part) for d in days]
    return [(c, ctx.check(c, now, batch=batch[:i])) for i, c in enumerate(batch)]


async def preview(
    db: AsyncSession, config: TeleworkConfig, principal: Principal, data: schemas.RequestIn, now: datetime
) -> schemas.PreviewRead:
    """What submitting would do: each day's rule results, remaining days, who will decide."""
    calendar = await WorkingCalendar.load(db, config, data.first_day, data.last_day or data.first_day)
    days, skipped, _ = expand(data, calendar)
    ctx = await _context_for(db, config, principal.id, days)
    checked = _check_all(ctx, principal.id, days, data.part, now)
    locale = principal.locale
    out_days = [
        schemas.PreviewDay(
            day=c.day,
            part=data.part,
            violations=[violation_read(locale, v) for v in vs],
        )
        for c, vs in checked
    ]
    periods: dict[tuple[int, int, int], date] = {}  # one entry per ISO week and month touched
    for d in days:
        periods.setdefault((d.isocalendar()[0], d.isocalendar()[1], d.month), d)
    remaining = [ctx.remaining(principal.id, d, [c for c, _ in checked]) for d in list(periods.values())[:12]]
    approver_id = await route(db, ctx, principal.id, principal.unit_id)
    approver = (await names(db, [approver_id])).get(approver_id) if approver_id else None  # type: ignore[arg-type]
    return schemas.PreviewRead(
        days=out_days,
        skipped=[{"day": d.isoformat(), "name": en if locale == "en" else ja} for d, ja, en in skipped],
        refused=any(v.hard for _, vs in checked for v in vs),
        warnings=sum(1 for _, vs in checked for v in vs if not v.hard),
        remaining=remaining,
        emergency=any(ctx.emergency(principal.unit_id, d) is not None for d in days),
        approver=approver,
    )


async def submit(
    db: AsyncSession,
    config: TeleworkConfig,
    principal: Principal,
    data: schemas.RequestIn,
    now: datetime,
    *,
    ip: str = "",
    base_url: str = "",
) -> TeleworkRequest:
    """Book the days: refused whole when a hard rule is broken; soft rules are recorded for the approver."""
    calendar = await WorkingCalendar.load(db, config, data.first_day, data.last_day or data.first_day)
    days, _, last = expand(data, calendar)
    await lock_units(db, [principal.unit_id], principal.id)
    ctx = await _context_for(db, config, principal.id, days)
    checked = _check_all(ctx, principal.id, days, data.part, now)
    hard = [(c, v) for c, vs in checked for v in vs if v.hard]
    if hard:
        errors = [
            {"field": c.day.isoformat(), "message": violation_read(principal.locale, v).message}
            for c, v in hard[:50]
        ]
        first = hard[0][1]
        raise DomainError(f"telework.rule.{first.code}", status_code=422, errors=errors, **first.params)
    approver_id = await route(db, ctx, principal.id, principal.unit_id)
    req = TeleworkRequest(
        user_id=principal.id,
        unit_id=principal.unit_id,
        kind=data.kind,
        first_day=data.first_day,
        last_day=last,
        weekdays=",".join(str(w) for w in sorted(set(data.weekdays))) if data.kind == "pattern" else "",
        part=data.part,
        place=data.place,
        place_note=data.place_note.strip(),
        plan=data.plan.strip(),
        contact=data.contact.strip(),
        created_at=now,
    )
    db.add(req)
    await db.flush()
    assert req.id is not None
    rows = [
        TeleworkDay(
            request_id=req.id,
            user_id=principal.id,
            unit_id=principal.unit_id,
            day=c.day,
            part=c.part,
            state="submitted",
            approver_id=approver_id,
            warnings=",".join(v.code for v in vs),
            updated_at=now,
        )
        for c, vs in checked
    ]
    db.add_all(rows)
    try:
        await db.flush()
    except IntegrityError as exc:  # a booking for the same day committed in between (unique index)
        raise Conflict("telework.rule.already_booked", day=days[0].isoformat()) from exc
    record(
        db,
        "telework.request.submitted",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_request",
        entity_id=req.id,
        after={
            "kind": req.kind,
            "first_day": req.first_day.isoformat(),
            "last_day": last.isoformat(),
            "part": req.part,
            "days": len(rows),
            "warnings": sorted({w for r in rows for w in r.warnings.split(",") if w}),
        },
        ip=ip,
    )
    notifier = Notifier(db, base_url)
    notifier.add(
        approver_id,
        "telework.notify.submitted",
        {
            "name": principal.name,
            "first": req.first_day.isoformat(),
            "last": last.isoformat(),
            "days": len(rows),
        },
        "/telework/inbox",
    )
    await notifier.flush()
    return req


# ---------------------------------------------------------------- reading


async def day_reads(
    db: AsyncSession, rows: Sequence[TeleworkDay], locale: str = "ja"
) -> list[schemas.DayRead]:
    from scheduling.models import WorkReport

    people = await names(
        db, [i for r in rows for i in (r.user_id, r.approver_id, r.decided_by, r.acting_for)]
    )
    units = await unit_names(db, [r.unit_id for r in rows], locale)
    ids = [r.id for r in rows if r.id is not None]
    reports: dict[int | None, WorkReport] = {}
    if ids:
        for found in (await db.execute(select(WorkReport).where(col(WorkReport.day_id).in_(ids)))).scalars():
            reports[found.day_id] = found
    out = []
    for r in rows:
        assert r.id is not None
        rep = reports.get(r.id)
        out.append(
            schemas.DayRead(
                id=r.id,
                request_id=r.request_id,
                user_id=r.user_id,
                user_name=people.get(r.user_id, ""),
                unit_id=r.unit_id,
                unit_name=units.get(r.unit_id, "") if r.unit_id else "",
                day=r.day,
                part=r.part,  # type: ignore[arg-type]
                state=r.state,
                warnings=[w for w in r.warnings.split(",") if w],
                approver_id=r.approver_id,
                approver_name=people.get(r.approver_id, "") if r.approver_id else "",
                decided_by_name=people.get(r.decided_by, "") if r.decided_by else "",
                acting_for_name=people.get(r.acting_for, "") if r.acting_for else "",
                decided_at=r.decided_at,
                override_reason=r.override_reason,
                started_at=rep.started_at if rep else None,
                ended_at=rep.ended_at if rep else None,
                summary=rep.summary if rep else "",
            )
        )
    return out


def request_read(req: TeleworkRequest, days: list[schemas.DayRead]) -> schemas.RequestRead:
    assert req.id is not None
    return schemas.RequestRead(
        id=req.id,
        user_id=req.user_id,
        kind=req.kind,  # type: ignore[arg-type]
        first_day=req.first_day,
        last_day=req.last_day,
        weekdays=[int(w) for w in req.weekdays.split(",") if w],
        part=req.part,  # type: ignore[arg-type]
        place=req.place,  # type: ignore[arg-type]
        place_note=req.place_note,
        plan=req.plan,
        contact=req.contact,
        created_at=req.created_at,
        days=days,
    )


async def my_days(db: AsyncSession, principal: Principal, first: date, last: date) -> list[schemas.DayRead]:
    rows = (
        (
            await db.execute(
                select(TeleworkDay)
                .where(
                    col(TeleworkDay.user_id) == principal.id,
                    col(TeleworkDay.day) >= first,
                    col(TeleworkDay.day) <= last,
                )
                .order_by(col(TeleworkDay.day), col(TeleworkDay.id))
            )
        )
        .scalars()
        .all()
    )
    return await day_reads(db, rows, principal.locale)


async def my_requests(
    db: AsyncSession, principal: Principal, *, page: int = 1, per_page: int = 20
) -> tuple[list[schemas.RequestRead], int]:
    from sqlalchemy import func

    total = (
        await db.execute(
            select(func.count())
            .select_from(TeleworkRequest)
            .where(col(TeleworkRequest.user_id) == principal.id)
        )
    ).scalar_one()
    reqs = (
        (
            await db.execute(
                select(TeleworkRequest)
                .where(col(TeleworkRequest.user_id) == principal.id)
                .order_by(col(TeleworkRequest.first_day).desc(), col(TeleworkRequest.id).desc())
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        )
        .scalars()
        .all()
    )
    ids = [r.id for r in reqs]
    days = (
        (
            await db.execute(
                select(TeleworkDay).where(col(TeleworkDay.request_id).in_(ids)).order_by(col(TeleworkDay.day))
            )
        )
        .scalars()
        .all()
        if ids
        else []
    )
    reads = await day_reads(db, days, principal.locale)
    by_req: dict[int, list[schemas.DayRead]] = defaultdict(list)
    for d in reads:
        by_req[d.request_id].append(d)
    return [request_read(r, by_req.get(r.id or 0, [])) for r in reqs], total


async def get_request(db: AsyncSession, principal: Principal, request_id: int) -> schemas.RequestRead:
    req = await db.get(TeleworkRequest, request_id)
    if req is None:
        raise NotFound("telework.request_not_found")
    days = (
        (
            await db.execute(
                select(TeleworkDay)
                .where(col(TeleworkDay.request_id) == request_id)
                .order_by(col(TeleworkDay.day))
            )
        )
        .scalars()
        .all()
    )
    if not await can_see(db, principal, req.user_id, req.unit_id, [d.approver_id for d in days]):
        raise NotFound("telework.request_not_found")
    return request_read(req, await day_reads(db, days, principal.locale))


async def steps(db: AsyncSession, principal: Principal, day_id: int) -> list[schemas.StepRead]:
    day = await _visible_day(db, principal, day_id)
    rows = (
        (
            await db.execute(
                select(ApprovalStep).where(col(ApprovalStep.day_id) == day.id).order_by(col(ApprovalStep.id))
            )
        )
        .scalars()
        .all()
    )
    people = await names(db, [i for r in rows for i in (r.actor_id, r.acting_for)])
    return [
        schemas.StepRead(
            action=r.action,
            actor_name=people.get(r.actor_id, "") if r.actor_id else "",
            acting_for_name=people.get(r.acting_for, "") if r.acting_for else "",
            comment=r.comment,
            at=r.at,
        )
        for r in rows
    ]


async def can_see(
    db: AsyncSession,
    principal: Principal,
    owner_id: int,
    unit_id: int | None,
    approvers: Iterable[int | None],
) -> bool:
    if principal.id == owner_id or principal.has("hr_admin", "auditor", "sysadmin"):
        return True
    if unit_id is not None and unit_id in principal.scope_unit_ids:
        return True
    approver_set = {a for a in approvers if a is not None}
    if principal.id in approver_set:
        return True
    return bool(await delegators(db, principal.id, approver_set))


async def _visible_day(db: AsyncSession, principal: Principal, day_id: int) -> TeleworkDay:
    day = await db.get(TeleworkDay, day_id)
    if day is None or not await can_see(db, principal, day.user_id, day.unit_id, [day.approver_id]):
        raise NotFound("telework.day_not_found")
    return day


# ---------------------------------------------------------------- delegation (who may act for whom)


async def delegators(
    db: AsyncSession, delegate_id: int, among: Iterable[int] | None = None, on: date | None = None
) -> dict[int, Delegation]:
    """Active delegations to this person (by the delegating head), valid on `on` (default: today)."""
    on = on or datetime.now(TOKYO).date()
    query = select(Delegation).where(
        col(Delegation.to_user_id) == delegate_id,
        col(Delegation.revoked_at).is_(None),
        col(Delegation.starts) <= on,
        col(Delegation.ends) >= on,
    )
    if among is not None:
        among = list(among)
        if not among:
            return {}
        query = query.where(col(Delegation.from_user_id).in_(among))
    out: dict[int, Delegation] = {}
    for d in (await db.execute(query)).scalars():
        out.setdefault(d.from_user_id, d)
    return out


async def acting_for(
    db: AsyncSession, principal: Principal, day: TeleworkDay, today: date, scope_cache: dict[int, set[int]]
) -> int | None:
    """None when the principal decides as the approver; else whom they act for. Raises when they may not."""
    if day.user_id == principal.id:
        raise Forbidden("telework.no_self_approval")
    if day.approver_id == principal.id:
        return None
    if day.approver_id is None and principal.has("hr_admin"):
        return None
    if day.approver_id is not None:
        found = await delegators(db, principal.id, [day.approver_id], today)
        delegation = found.get(day.approver_id)
        if delegation is not None:
            if delegation.unit_id is None:
                return day.approver_id
            if delegation.unit_id not in scope_cache:
                from auth.services import subtree_ids

                scope_cache[delegation.unit_id] = await subtree_ids(db, [delegation.unit_id])
            if day.unit_id in scope_cache[delegation.unit_id]:
                return day.approver_id
    raise Forbidden("telework.not_your_approval")


# ---------------------------------------------------------------- deciding


async def decide(
    db: AsyncSession,
    config: TeleworkConfig,
    principal: Principal,
    day_ids: Sequence[int],
    decision: str,
    now: datetime,
    *,
    comment: str = "",
    override_reason: str = "",
    ip: str = "",
    base_url: str = "",
) -> list[TeleworkDay]:
    """Approve or reject these days, all or none. Approving over a soft rule needs an override reason."""
    wanted = sorted(set(day_ids))
    rows = list(
        (
            await db.execute(
                select(TeleworkDay).where(col(TeleworkDay.id).in_(wanted)).order_by(col(TeleworkDay.day))
            )
        ).scalars()
    )
    if len(rows) != len(wanted):
        missing = sorted(set(wanted) - {r.id for r in rows if r.id is not None})
        raise NotFound("telework.day_not_found", ids=", ".join(map(str, missing[:10])))
    today = now.astimezone(TOKYO).date()
    scope_cache: dict[int, set[int]] = {}
    acting: dict[int, int | None] = {}
    for row in rows:
        assert row.id is not None
        acting[row.id] = await acting_for(db, principal, row, today, scope_cache)
        if row.state != "submitted":
            raise Conflict("telework.already_decided", day=row.day.isoformat(), state=row.state)
    state = "approved" if decision == "approve" else "rejected"
    if decision == "approve":
        await lock_units(db, [r.unit_id for r in rows])
        ctx = await RuleContext.load(
            db, config, [r.user_id for r in rows], min(r.day for r in rows), max(r.day for r in rows)
        )
        broken: list[tuple[TeleworkDay, Violation]] = []
        for row in rows:
            candidate = Candidate(row.user_id, row.day, row.part, day_id=row.id)
            for v in ctx.check(candidate, now, for_approval=True):
                if v.hard:
                    raise DomainError(f"telework.rule.{v.code}", status_code=422, **v.params)
                broken.append((row, v))
            ctx.add_approved(row.unit_id, row.day, row.part)
            ctx.mark_approved(row.user_id, row.id)
        if broken and not override_reason.strip():
            errors = [
                {"field": r.day.isoformat(), "message": violation_read(principal.locale, v).message}
                for r, v in broken[:50]
            ]
            raise DomainError(
                "telework.override_reason_required", status_code=422, errors=errors, count=len(broken)
            )
        if not broken:
            override_reason = ""
    # The conditional update is the arbiter between concurrent deciders.
    result = await db.execute(
        update(TeleworkDay)
        .where(col(TeleworkDay.id).in_(wanted), col(TeleworkDay.state) == "submitted")
        .values(
            state=state,
            decided_by=principal.id,
            decided_at=now,
            override_reason=override_reason.strip(),
            sequence=TeleworkDay.sequence + 1,  # type: ignore[operator]
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != len(wanted):  # type: ignore[attr-defined]
        raise Conflict("telework.already_decided_concurrently")
    steps_rows = []
    for row in rows:
        assert row.id is not None
        row_acting = acting[row.id]
        if row_acting is not None:
            await db.execute(
                update(TeleworkDay).where(col(TeleworkDay.id) == row.id).values(acting_for=row_acting)
            )
        steps_rows.append(
            ApprovalStep(
                day_id=row.id,
                actor_id=principal.id,
                acting_for=row_acting,
                action=decision,
                comment=comment.strip(),
                at=now,
            )
        )
    db.add_all(steps_rows)
    # Re-read what the UPDATEs changed in one query (a refresh per row was 500 round trips in bulk).
    await db.execute(
        select(TeleworkDay).where(col(TeleworkDay.id).in_(wanted)).execution_options(populate_existing=True)
    )
    by_request: dict[int, list[TeleworkDay]] = defaultdict(list)
    for row in rows:
        by_request[row.request_id].append(row)
    notifier = Notifier(db, base_url)
    for request_id, group in by_request.items():
        record(
            db,
            f"telework.day.{state}",
            actor_id=principal.id,
            actor_label=principal.name,
            entity_type="telework_request",
            entity_id=request_id,
            after={
                "days": [r.day.isoformat() for r in group],
                "day_ids": [r.id for r in group],
                "acting_for": sorted({a for r in group if (a := acting[r.id or 0]) is not None}),
                "override_reason": override_reason.strip(),
                "comment": comment.strip(),
            },
            ip=ip,
        )
        notifier.add(
            group[0].user_id,
            f"telework.notify.{state}",
            {
                "name": principal.name,
                "first": group[0].day.isoformat(),
                "last": group[-1].day.isoformat(),
                "days": len(group),
                "comment": comment.strip(),
            },
            f"/telework/requests/{request_id}",
        )
    await notifier.flush()
    return rows


async def undecided_days(db: AsyncSession, request_id: int) -> list[int]:
    """The days of a request still waiting for a decision (to decide a whole weekly pattern at once)."""
    ids = list(
        (
            await db.execute(
                select(TeleworkDay.id).where(
                    col(TeleworkDay.request_id) == request_id, col(TeleworkDay.state) == "submitted"
                )
            )
        ).scalars()
    )
    if not ids:
        if await db.get(TeleworkRequest, request_id) is None:
            raise NotFound("telework.request_not_found")
        raise Conflict("telework.nothing_to_decide")
    return [i for i in ids if i is not None]


async def add_comment(
    db: AsyncSession, principal: Principal, day_id: int, comment: str, now: datetime
) -> ApprovalStep:
    day = await _visible_day(db, principal, day_id)
    step = ApprovalStep(
        day_id=day_id, actor_id=principal.id, action="comment", comment=comment.strip(), at=now
    )
    db.add(step)
    record(
        db,
        "telework.day.commented",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="telework_day",
        entity_id=day_id,
        after={"comment": comment.strip()},
    )
    notifier = Notifier(db)
    target = day.approver_id if principal.id == day.user_id else day.user_id
    notifier.add(
        target,
        "telework.notify.comment",
        {"name": principal.name, "day": day.day.isoformat(), "comment": comment.strip()[:200]},
        f"/telework/requests/{day.request_id}",
    )
    await notifier.flush()
    return step


# ---------------------------------------------------------------- the requester changes their mind


async def withdraw(
    db: AsyncSession,
    principal: Principal,
    day_ids: Sequence[int],
    now: datetime,
    *,
    ip: str = "",
    base_url: str = "",
) -> list[TeleworkDay]:
    """Withdraw undecided days, or cancel approved days that have not started yet (the approver is told)."""
    rows = list(
        (await db.execute(select(TeleworkDay).where(col(TeleworkDay.id).in_(sorted(set(day_ids)))))).scalars()
    )
    if len(rows) != len(set(day_ids)) or any(r.user_id != principal.id for r in rows):
        raise NotFound("telework.day_not_found")
    today = now.astimezone(TOKYO).date()
    notifier = Notifier(db, base_url)
    changed = []
    for row in sorted(rows, key=lambda r: r.day):
        if row.state == "submitted":
            new = "withdrawn"
        elif row.state == "approved":
            if row.day <= today:
                raise Conflict("telework.cannot_cancel_started", day=row.day.isoformat())
            new = "cancelled"
        else:
            raise Conflict("telework.already_final", day=row.day.isoformat(), state=row.state)
        result = await db.execute(
            update(TeleworkDay)
            .where(col(TeleworkDay.id) == row.id, col(TeleworkDay.state) == row.state)
            .values(state=new, sequence=TeleworkDay.sequence + 1, updated_at=now)  # type: ignore[operator]
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("telework.already_decided_concurrently")
        db.add(
            ApprovalStep(
                day_id=row.id or 0,
                actor_id=principal.id,
                action="withdraw" if new == "withdrawn" else "cancel",
                at=now,
            )
        )
        record(
            db,
            f"telework.day.{new}",
            actor_id=principal.id,
            actor_label=principal.name,
            entity_type="telework_day",
            entity_id=row.id,
            before={"state": row.state},
            after={"state": new},
            ip=ip,
        )
        if new == "cancelled":
            notifier.add(
                row.decided_by or row.approver_id,
                "telework.notify.cancelled",
                {"name": principal.name, "day": row.day.isoformat()},
                "/telework/coverage",
            )
        await db.refresh(row)
        changed.append(row)
    await notifier.flush()
    return changed


async def withdraw_request(
    db: AsyncSession, principal: Principal, request_id: int, now: datetime, **kw: Any
) -> list[TeleworkDay]:
    """Withdraw or cancel every day of a request that still can be."""
    req = await db.get(TeleworkRequest, request_id)
    if req is None or req.user_id != principal.id:
        raise NotFound("telework.request_not_found")
    today = now.astimezone(TOKYO).date()
    ids = [
        d.id
        for d in (
            await db.execute(select(TeleworkDay).where(col(TeleworkDay.request_id) == request_id))
        ).scalars()
        if d.id is not None and (d.state == "submitted" or (d.state == "approved" and d.day > today))
    ]
    if not ids:
        raise Conflict("telework.nothing_to_withdraw")
    return await withdraw(db, principal, ids, now, **kw)
