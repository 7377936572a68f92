"""The indicator リモートワーク実施回数（月間）: counted by an explicit, versioned rule, closed monthly.

The count runs in the database (one grouped query per month), with the rule's conditions written out in
SQL: a telework day counts when it is approved (cancelled days are no longer approved) and, where the
unit's policy requires start/end reports on that day, when its start was reported. A half day counts one.
Units are the ones recorded on each day (the person's unit when they booked), so people who move
between units mid-month are counted where they worked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, func, insert, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import record
from app.errors import DomainError, NotFound
from app.security import Principal
from auth.models import OrgUnit, User
from scheduling.config import TeleworkConfig
from scheduling.models import IndicatorMonth, IndicatorTarget, Policy, TeleworkDay, WorkReport
from scheduling.rules import DEFAULT_POLICY, RuleContext

BASELINE = 1200  # September 2020, the action plan's starting point
TARGET = 15000  # a month


@dataclass(frozen=True)
class CountingRule:
    version: int
    ja: str
    en: str


COUNTING_RULES = {
    1: CountingRule(
        1,
        "承認済み（取消を除く）の在宅勤務1日を1回と数える（半日も1回）。所属の要領で業務開始・終了報告が"
        "必要な日は、開始報告があるものだけを数える。所属は申請時の所属。",
        "One approved (not cancelled) telework day of one person is one instance (a half day counts one). "
        "Where the unit's policy requires start/end reports that day, only days with a start report count. "
        "The unit is the person's unit when they booked.",
    ),
}
CURRENT_RULE = max(COUNTING_RULES)


def month_start(value: date) -> date:
    return value.replace(day=1)


def month_end(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def parse_month(text: str) -> date:
    try:
        year, month = text.strip().split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise DomainError("indicator.bad_month", value=text[:20], status_code=400) from exc


def fiscal_year(month: date) -> int:
    return month.year if month.month >= 4 else month.year - 1


@dataclass
class UnitFigure:
    unit_id: int | None
    count: int
    staff: int


@dataclass
class MonthFigures:
    month: date
    count: int
    staff: int
    headcount: int
    rule_version: int
    units: list[UnitFigure]
    until: date


# ---------------------------------------------------------------- counting


async def _report_conditions(db: AsyncSession, config: TeleworkConfig, first: date, last: date) -> Any:
    """SQL for 'this day needs no report, or it has a start report' under the policies of the month."""
    ctx = RuleContext(config)
    ctx.parents = dict((await db.execute(select(OrgUnit.id, OrgUnit.parent_id))).all())  # type: ignore
    for policy in (await db.execute(select(Policy).order_by(col(Policy.valid_from)))).scalars():
        ctx.policies[policy.unit_id].append(policy)
    reported = exists().where(
        col(WorkReport.day_id) == col(TeleworkDay.id), col(WorkReport.started_at).is_not(None)
    )
    if not ctx.policies:  # no policy anywhere: the default requires reports
        return reported if DEFAULT_POLICY.require_reports else true()
    # Days where the policy changes inside the month, per unit; usually there are none.
    boundaries = sorted(
        {p.valid_from for ps in ctx.policies.values() for p in ps if first < p.valid_from <= last}
        | {
            p.valid_to + timedelta(days=1)
            for ps in ctx.policies.values()
            for p in ps
            if p.valid_to and first < p.valid_to + timedelta(days=1) <= last
        }
    )
    spans = []
    start = first
    for b in [*boundaries, last + timedelta(days=1)]:
        spans.append((start, b - timedelta(days=1)))
        start = b
    needs: list[Any] = []
    free: list[Any] = []
    for lo, hi in spans:
        need_units = [u for u in ctx.parents if ctx.policy(u, lo).require_reports]
        free_units = [u for u in ctx.parents if not ctx.policy(u, lo).require_reports]
        in_span = and_(col(TeleworkDay.day) >= lo, col(TeleworkDay.day) <= hi)
        if free_units:
            free.append(and_(in_span, col(TeleworkDay.unit_id).in_(free_units)))
        if need_units:
            needs.append(and_(in_span, col(TeleworkDay.unit_id).in_(need_units)))
        if DEFAULT_POLICY.require_reports:
            needs.append(and_(in_span, col(TeleworkDay.unit_id).is_(None)))
        else:
            free.append(and_(in_span, col(TeleworkDay.unit_id).is_(None)))
    return or_(or_(*free) if free else false(), and_(or_(*needs) if needs else false(), reported))


async def count_month(
    db: AsyncSession, config: TeleworkConfig, month: date, *, until: date | None = None
) -> MonthFigures:
    """The month's figures from the requests as they are now (up to `until` for the running month)."""
    first = month_start(month)
    last = month_end(first)
    if until is not None:
        last = min(last, until)
    condition = and_(
        col(TeleworkDay.state) == "approved",
        col(TeleworkDay.day) >= first,
        col(TeleworkDay.day) <= last,
        await _report_conditions(db, config, first, last),
    )
    per_unit = (
        await db.execute(
            select(TeleworkDay.unit_id, func.count(), func.count(func.distinct(TeleworkDay.user_id)))  # type: ignore
            .where(condition)
            .group_by(col(TeleworkDay.unit_id))
        )
    ).all()
    staff = (
        await db.execute(select(func.count(func.distinct(TeleworkDay.user_id))).where(condition))
    ).scalar_one()
    headcount = (
        await db.execute(select(func.count()).select_from(User).where(col(User.active).is_(True)))
    ).scalar_one()
    units = sorted(
        (UnitFigure(unit_id=u, count=n, staff=s) for u, n, s in per_unit),
        key=lambda f: (-f.count, f.unit_id or 0),
    )
    return MonthFigures(
        month=first,
        count=sum(f.count for f in units),
        staff=staff,
        headcount=headcount,
        rule_version=CURRENT_RULE,
        units=units,
        until=last,
    )


# ---------------------------------------------------------------- closing


def _breakdown(figures: MonthFigures) -> str:
    return json.dumps([{"unit_id": f.unit_id, "count": f.count, "staff": f.staff} for f in figures.units])


async def close_month(
    db: AsyncSession, config: TeleworkConfig, month: date, *, today: date, actor: str = "job"
) -> IndicatorMonth | None:
    """Record a finished month once. Safe to run from many workers at once: one row results.

    Returns the new row, or None when the month was already closed (or is not over yet).
    """
    first = month_start(month)
    if month_end(first) >= today:
        raise DomainError("indicator.month_not_over", month=f"{first:%Y-%m}", status_code=409)
    if await _latest(db, first) is not None:
        return None
    figures = await count_month(db, config, first)
    try:
        async with db.begin_nested():
            result = await db.execute(
                insert(IndicatorMonth).values(
                    month=first,
                    revision=1,
                    count=figures.count,
                    staff=figures.staff,
                    headcount=figures.headcount,
                    rule_version=figures.rule_version,
                    breakdown_json=_breakdown(figures),
                    closed_at=config.now(),
                )
            )
    except IntegrityError:  # another worker closed it a moment ago: the unique (month, revision) decides
        return None
    row = await db.get(IndicatorMonth, result.inserted_primary_key[0])  # type: ignore
    record(
        db,
        "indicator.month_closed",
        actor_label=actor,
        entity_type="indicator_month",
        entity_id=f"{first:%Y-%m}",
        after={"count": figures.count, "staff": figures.staff, "rule_version": figures.rule_version},
    )
    return row


async def correct_month(
    db: AsyncSession, config: TeleworkConfig, principal: Principal, month: date, reason: str
) -> IndicatorMonth:
    """A new revision of a closed month, counted again now, with the reason; earlier revisions stay."""
    first = month_start(month)
    if not reason.strip():
        raise DomainError("indicator.reason_required", status_code=422)
    latest = await _latest(db, first)
    if latest is None:
        raise NotFound("indicator.month_not_closed", month=f"{first:%Y-%m}")
    figures = await count_month(db, config, first)
    row = IndicatorMonth(
        month=first,
        revision=latest.revision + 1,
        count=figures.count,
        staff=figures.staff,
        headcount=figures.headcount,
        rule_version=figures.rule_version,
        breakdown_json=_breakdown(figures),
        reason=reason.strip()[:500],
        closed_by=principal.id,
        closed_at=config.now(),
    )
    db.add(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise DomainError("indicator.corrected_concurrently", status_code=409) from exc
    record(
        db,
        "indicator.month_corrected",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="indicator_month",
        entity_id=f"{first:%Y-%m}",
        before={"revision": latest.revision, "count": latest.count, "staff": latest.staff},
        after={"revision": row.revision, "count": row.count, "staff": row.staff, "reason": row.reason},
    )
    return row


async def _latest(db: AsyncSession, first: date) -> IndicatorMonth | None:
    return (
        await db.execute(
            select(IndicatorMonth)
            .where(col(IndicatorMonth.month) == first)
            .order_by(col(IndicatorMonth.revision).desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def close_due(db: AsyncSession, config: TeleworkConfig, today: date) -> int:
    """The job: close every finished month since the first telework day that has no row yet (≤ 36)."""
    earliest = (await db.execute(select(func.min(TeleworkDay.day)))).scalar_one()
    if earliest is None:
        return 0
    current = month_start(today)
    month = max(month_start(earliest), date(current.year - 3, current.month, 1))
    closed = set((await db.execute(select(col(IndicatorMonth.month)).distinct())).scalars())
    done = 0
    while month < current:
        if month not in closed and await close_month(db, config, month, today=today) is not None:
            done += 1
        month = (month + timedelta(days=32)).replace(day=1)
    return done


# ---------------------------------------------------------------- targets and the series


async def target_for(db: AsyncSession, month: date) -> tuple[int, int]:
    row = await db.get(IndicatorTarget, fiscal_year(month))
    return (row.monthly_target, row.baseline) if row else (TARGET, BASELINE)


async def set_target(
    db: AsyncSession, principal: Principal, year: int, monthly_target: int, baseline: int, note: str = ""
) -> IndicatorTarget:
    row = await db.get(IndicatorTarget, year)
    before = {"monthly_target": row.monthly_target, "baseline": row.baseline} if row else None
    if row is None:
        row = IndicatorTarget(fiscal_year=year, monthly_target=monthly_target, baseline=baseline)
    row.monthly_target, row.baseline, row.note = monthly_target, baseline, note.strip()[:500]
    row.updated_by = principal.id
    db.add(row)
    record(
        db,
        "indicator.target_set",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="indicator_target",
        entity_id=year,
        before=before,
        after={"monthly_target": monthly_target, "baseline": baseline, "note": row.note},
    )
    return row


@dataclass
class SeriesPoint:
    month: date
    count: int
    staff: int
    headcount: int
    rule_version: int
    revision: int
    closed: bool
    target: int
    baseline: int
    closed_at: datetime | None
    units: list[dict[str, Any]]
    history: list[dict[str, Any]]


async def series(
    db: AsyncSession, config: TeleworkConfig, first: date, last: date, *, live: bool = True
) -> list[SeriesPoint]:
    """Closed months (latest revision, with earlier ones as history) and, if asked, the running month live."""
    rows = list(
        (
            await db.execute(
                select(IndicatorMonth)
                .where(col(IndicatorMonth.month) >= month_start(first), col(IndicatorMonth.month) <= last)
                .order_by(col(IndicatorMonth.month), col(IndicatorMonth.revision))
            )
        ).scalars()
    )
    targets = {t.fiscal_year: t for t in (await db.execute(select(IndicatorTarget))).scalars()}

    def goal(month: date) -> tuple[int, int]:
        t = targets.get(fiscal_year(month))
        return (t.monthly_target, t.baseline) if t else (TARGET, BASELINE)

    by_month: dict[date, list[IndicatorMonth]] = {}
    for r in rows:
        by_month.setdefault(r.month, []).append(r)
    out = []
    for month, revisions in sorted(by_month.items()):
        latest = revisions[-1]
        target, baseline = goal(month)
        out.append(
            SeriesPoint(
                month=month,
                count=latest.count,
                staff=latest.staff,
                headcount=latest.headcount,
                rule_version=latest.rule_version,
                revision=latest.revision,
                closed=True,
                target=target,
                baseline=baseline,
                closed_at=latest.closed_at,
                units=json.loads(latest.breakdown_json),
                history=[
                    {"revision": r.revision, "count": r.count, "reason": r.reason, "closed_at": r.closed_at}
                    for r in revisions[:-1]
                ],
            )
        )
    today = config.today()
    current = month_start(today)
    if live and first <= current <= last and current not in by_month:
        figures = await count_month(db, config, current, until=today)
        target, baseline = goal(current)
        out.append(
            SeriesPoint(
                month=current,
                count=figures.count,
                staff=figures.staff,
                headcount=figures.headcount,
                rule_version=figures.rule_version,
                revision=0,
                closed=False,
                target=target,
                baseline=baseline,
                closed_at=None,
                units=[{"unit_id": f.unit_id, "count": f.count, "staff": f.staff} for f in figures.units],
                history=[],
            )
        )
    return out
