"""Stocktakes, reports, reminders and home-page notices for devices. No HTTP here."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import mail
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.pages import Notice
from app.security import Principal
from auth.models import OrgUnit, RoleAssignment, User
from devices import checks, schemas
from devices.loans import loan_reads
from devices.models import (
    Device,
    EquipmentRequest,
    Incident,
    Line,
    Loan,
    LoanItem,
    Plan,
    Stocktake,
    StocktakeScan,
    UsageRecord,
)
from devices.services import notice_deadline, open_holders, record, today

EXPECTED_ON_SITE = ("in_stock", "in_repair")
NOTICE_WINDOW_DAYS = 30
IT_ROLES = ("it_admin", "sysadmin")


# ---------------------------------------------------------------- stocktakes


async def open_stocktake(
    db: AsyncSession, actor: Principal, data: schemas.StocktakeIn, ip: str = ""
) -> Stocktake:
    """Start counting: every device expected on site (in stock or in repair) should be scanned."""
    take = Stocktake(name=data.name.strip(), opened_by=actor.id)
    db.add(take)
    await db.flush()
    record(db, actor, "devices.stocktake.open", "stocktake", take.id, after={"name": take.name}, ip=ip)
    return take


async def get_stocktake(db: AsyncSession, stocktake_id: int) -> Stocktake:
    take = await db.get(Stocktake, stocktake_id)
    if take is None:
        raise NotFound("devices.stocktake_not_found")
    return take


def tag_from_scan(text: str) -> str:
    """A scanned label holds a URL ending in the asset tag; a typed tag is taken as it is."""
    text = text.strip()
    if "://" in text:
        text = urlsplit(text).path.rstrip("/").rsplit("/", 1)[-1]
    return checks.asset_tag(text)


async def scan(
    db: AsyncSession, actor: Principal, stocktake_id: int, raw: str, ip: str = ""
) -> StocktakeScan:
    """Record one scanned or typed tag; scanning the same tag twice is harmless."""
    take = await get_stocktake(db, stocktake_id)
    if take.closed_at is not None:
        raise Conflict("devices.stocktake_closed")
    tag = tag_from_scan(raw)
    existing = (
        (
            await db.execute(
                select(StocktakeScan).where(
                    col(StocktakeScan.stocktake_id) == stocktake_id, col(StocktakeScan.asset_tag) == tag
                )
            )
        )
        .scalars()
        .first()
    )
    if existing is not None:
        return existing
    device_id = (
        (await db.execute(select(col(Device.id)).where(col(Device.asset_tag) == tag))).scalars().first()
    )
    entry = StocktakeScan(stocktake_id=stocktake_id, asset_tag=tag, device_id=device_id, scanned_by=actor.id)
    try:
        async with db.begin_nested():
            db.add(entry)
    except IntegrityError:  # the same tag scanned from two phones at once
        found = (
            (
                await db.execute(
                    select(StocktakeScan).where(
                        col(StocktakeScan.stocktake_id) == stocktake_id, col(StocktakeScan.asset_tag) == tag
                    )
                )
            )
            .scalars()
            .one()
        )
        return found
    record(db, actor, "devices.stocktake.scan", "stocktake", stocktake_id, after={"asset_tag": tag}, ip=ip)
    return entry


async def close_stocktake(db: AsyncSession, actor: Principal, stocktake_id: int, ip: str = "") -> Stocktake:
    take = await get_stocktake(db, stocktake_id)
    if take.closed_at is not None:
        raise Conflict("devices.stocktake_closed")
    take.closed_at = utcnow()
    summary = await stocktake_read(db, take)
    record(
        db,
        actor,
        "devices.stocktake.close",
        "stocktake",
        stocktake_id,
        after={
            "found": len(summary.found),
            "missing": len(summary.missing),
            "unexpected": len(summary.unexpected),
        },
        ip=ip,
    )
    await db.flush()
    return take


async def stocktake_read(db: AsyncSession, take: Stocktake) -> schemas.StocktakeRead:
    """Expected / found / missing / unexpected, against the devices expected on site now."""
    scans = list(
        (await db.execute(select(StocktakeScan).where(col(StocktakeScan.stocktake_id) == take.id))).scalars()
    )
    expected = {
        d.asset_tag: d
        for d in (await db.execute(select(Device).where(col(Device.status).in_(EXPECTED_ON_SITE)))).scalars()
    }
    scanned_ids = {s.device_id for s in scans if s.device_id}
    others = (
        {d.id: d for d in (await db.execute(select(Device).where(col(Device.id).in_(scanned_ids)))).scalars()}
        if scanned_ids
        else {}
    )

    def item(tag: str, d: Device | None) -> schemas.StocktakeItem:
        return schemas.StocktakeItem(
            asset_tag=tag,
            device_id=d.id if d else None,
            kind=d.kind if d else None,
            status=d.status if d else None,
        )

    seen = {s.asset_tag for s in scans}
    found = [item(s.asset_tag, expected[s.asset_tag]) for s in scans if s.asset_tag in expected]
    unexpected = [
        item(s.asset_tag, others.get(s.device_id or 0)) for s in scans if s.asset_tag not in expected
    ]
    missing = [item(tag, d) for tag, d in sorted(expected.items()) if tag not in seen]
    return schemas.StocktakeRead(
        id=take.id or 0,
        name=take.name,
        opened_at=take.opened_at,
        closed_at=take.closed_at,
        expected=len(expected),
        found=found,
        missing=missing,
        unexpected=unexpected,
    )


async def list_stocktakes(db: AsyncSession) -> list[Stocktake]:
    return list((await db.execute(select(Stocktake).order_by(col(Stocktake.id).desc()).limit(100))).scalars())


# ---------------------------------------------------------------- reports


def month_start(day: date) -> date:
    return day.replace(day=1)


def months_back(day: date, n: int) -> date:
    year, month = day.year, day.month - n
    while month <= 0:
        month += 12
        year -= 1
    return date(year, month, 1)


async def deadlines(db: AsyncSession, within_days: int) -> list[schemas.DeadlineRow]:
    """Lines whose notice deadline or contract end falls within the next N days (or has just passed)."""
    day = today()
    horizon = day + timedelta(days=within_days)
    rows = []
    plans = {p.id: p.name for p in (await db.execute(select(Plan))).scalars()}
    lines = (
        await db.execute(
            select(Line).where(
                col(Line.status) != "cancelled",
                (col(Line.min_term_end).is_not(None)) | (col(Line.contract_end).is_not(None)),
            )
        )
    ).scalars()
    for ln in lines:
        deadline = notice_deadline(ln)
        hits = [d for d in (deadline, ln.contract_end) if d is not None and day <= d <= horizon]
        if hits:
            rows.append(
                schemas.DeadlineRow(
                    line_id=ln.id or 0,
                    number=ln.number,
                    notice_deadline=deadline,
                    contract_end=ln.contract_end,
                    plan=plans.get(ln.plan_id),
                )
            )
    return sorted(rows, key=lambda r: min(d for d in (r.notice_deadline, r.contract_end) if d))


async def costs_by_unit(db: AsyncSession, locale: str = "ja") -> list[schemas.CostRow]:
    """Monthly plan fees of lines now on loan, by the holder's unit; lines in stock are the IT pool."""
    rows = await db.execute(
        select(
            col(Loan.holder_unit_id),
            func.count(col(LoanItem.id)),
            func.coalesce(func.sum(col(Plan.monthly_fee)), 0),
        )
        .join(LoanItem, col(LoanItem.loan_id) == col(Loan.id))
        .join(Line, col(Line.id) == col(LoanItem.line_id))
        .outerjoin(Plan, col(Plan.id) == col(Line.plan_id))
        .where(col(LoanItem.open_key).is_not(None))
        .group_by(col(Loan.holder_unit_id))
    )
    units = {
        u.id: (u.name_en if locale == "en" and u.name_en else u.name)
        for u in (await db.execute(select(OrgUnit))).scalars()
    }
    out = [
        schemas.CostRow(unit_id=unit_id, unit=units.get(unit_id, "—"), lines=int(n), monthly_fee=int(fee))
        for unit_id, n, fee in rows
    ]
    pool = (
        await db.execute(
            select(func.count(col(Line.id)), func.coalesce(func.sum(col(Plan.monthly_fee)), 0))
            .outerjoin(Plan, col(Plan.id) == col(Line.plan_id))
            .where(col(Line.status).in_(("in_stock", "suspended")))
        )
    ).one()
    if pool[0]:
        out.append(schemas.CostRow(unit_id=None, unit="IT", lines=int(pool[0]), monthly_fee=int(pool[1])))
    return sorted(out, key=lambda r: -r.monthly_fee)


async def idle_lines(db: AsyncSession, months: int) -> list[schemas.IdleRow]:
    """Lines with usage imported for each of the last N months and 0 MB used in all of them."""
    first = months_back(month_start(today()), months)
    last = months_back(month_start(today()), 1)
    rows = await db.execute(
        select(col(UsageRecord.line_id), func.count(), func.sum(col(UsageRecord.data_mb)))
        .where(col(UsageRecord.month) >= first, col(UsageRecord.month) <= last)
        .group_by(col(UsageRecord.line_id))
    )
    idle_ids = [int(line_id) for line_id, n, used in rows if int(n) >= months and int(used or 0) == 0]
    if not idle_ids:
        return []
    numbers = dict(
        (await db.execute(select(col(Line.id), col(Line.number)).where(col(Line.id).in_(idle_ids)))).all()
    )
    holders = await open_holders(db, line_ids=idle_ids)
    return [
        schemas.IdleRow(
            line_id=i,
            number=numbers.get(i, ""),
            months=months,
            holder=holders[i][1] if i in holders else None,
        )
        for i in sorted(idle_ids)
    ]


async def report(
    db: AsyncSession, *, within_days: int = 60, idle_months: int = 3, locale: str = "ja"
) -> schemas.Report:
    counts = [
        schemas.CountRow(kind=kind, status=status, count=int(n))
        for kind, status, n in await db.execute(
            select(col(Device.kind), col(Device.status), func.count())
            .group_by(col(Device.kind), col(Device.status))
            .order_by(col(Device.kind), col(Device.status))
        )
    ]
    open_loans = (
        await db.execute(select(func.count()).select_from(Loan).where(col(Loan.status) != "returned"))
    ).scalar_one()
    overdue = list(
        (
            await db.execute(
                select(Loan)
                .where(col(Loan.status) != "returned", col(Loan.expected_return) < today())
                .order_by(col(Loan.expected_return))
                .limit(200)
            )
        ).scalars()
    )
    return schemas.Report(
        counts=counts,
        open_loans=int(open_loans),
        overdue=await loan_reads(db, overdue),
        deadlines=await deadlines(db, within_days),
        costs=await costs_by_unit(db, locale),
        idle=await idle_lines(db, idle_months),
        within_days=within_days,
        idle_months=idle_months,
    )


# ---------------------------------------------------------------- reminders and notices


async def it_admin_emails(db: AsyncSession) -> list[str]:
    rows = await db.execute(
        select(col(User.email))
        .join(RoleAssignment, col(RoleAssignment.user_id) == col(User.id))
        .where(col(RoleAssignment.role) == "it_admin", col(User.active))
        .distinct()
    )
    return sorted(str(e) for e in rows.scalars())


async def remind(db: AsyncSession, base_url: str = "") -> dict[str, int]:
    """Mail overdue holders (once a week per loan) and IT about notice deadlines (once per deadline)."""
    day = today()
    week = day.isocalendar()
    sent = {"overdue": 0, "deadlines": 0}
    overdue = await db.execute(
        select(Loan, User)
        .join(User, col(User.id) == col(Loan.holder_id))
        .where(col(Loan.status) != "returned", col(Loan.expected_return) < day)
    )
    for loan, user in overdue.all():
        queued = await mail.enqueue(
            db,
            user.email,
            "【返却期限超過】貸出機器の返却をお願いします / Please return your equipment",
            f"返却予定日 {loan.expected_return} を過ぎています。情報政策課へ返却してください。\n"
            f"The return date {loan.expected_return} has passed. Please return the equipment to IT.\n\n"
            f"{base_url}/devices/mine",
            dedupe_key=f"devices.overdue:{loan.id}:{week.year}-W{week.week}",
        )
        sent["overdue"] += queued is not None
    rows = await deadlines(db, NOTICE_WINDOW_DAYS)
    admins = await it_admin_emails(db)
    for row in rows:
        for to in admins:
            queued = await mail.enqueue(
                db,
                to,
                f"【回線契約】解約予告期限が近づいています {row.number}",
                f"回線 {row.number} の解約予告期限: {row.notice_deadline} / 契約終了: {row.contract_end}\n"
                f"Line {row.number}: notice by {row.notice_deadline}, contract ends {row.contract_end}\n\n"
                f"{base_url}/devices/lines/{row.line_id}",
                dedupe_key=f"devices.notice:{row.line_id}:{row.notice_deadline}:{to}",
            )
            sent["deadlines"] += queued is not None
    return sent


async def run_jobs(state: Any) -> dict[str, int]:
    """The background job: reminders in one transaction (dedupe keys keep several workers from doubling)."""
    async with state.db_sessions() as db:
        done = await remind(db, state.settings.base_url)
        await db.commit()
    return done


async def home_notices(db: AsyncSession, principal: Principal) -> list[Notice]:
    """Loans waiting for my acceptance or overdue; for IT the request queue, incidents and deadlines."""
    notices: list[Notice] = []
    mine = list(
        (
            await db.execute(
                select(Loan).where(col(Loan.holder_id) == principal.id, col(Loan.status) != "returned")
            )
        ).scalars()
    )
    waiting = sum(1 for ln in mine if ln.status == "awaiting_acceptance")
    if waiting:
        notices.append(Notice(key="devices.home_accept", link="/devices/mine", params={"n": waiting}))
    late = sum(1 for ln in mine if ln.expected_return is not None and ln.expected_return < today())
    if late:
        notices.append(Notice(key="devices.home_overdue", link="/devices/mine", params={"n": late}))
    if principal.has(*IT_ROLES):
        queue = (
            await db.execute(
                select(func.count())
                .select_from(EquipmentRequest)
                .where(col(EquipmentRequest.status) == "open")
            )
        ).scalar_one()
        if queue:
            notices.append(Notice(key="devices.home_requests", link="/devices/requests", params={"n": queue}))
        incidents = (
            await db.execute(
                select(func.count()).select_from(Incident).where(col(Incident.closed_at).is_(None))
            )
        ).scalar_one()
        if incidents:
            notices.append(
                Notice(key="devices.home_incidents", link="/devices/incidents", params={"n": incidents})
            )
        soon = await deadlines(db, NOTICE_WINDOW_DAYS)
        if soon:
            notices.append(
                Notice(key="devices.home_deadlines", link="/devices/reports", params={"n": len(soon)})
            )
    return notices


async def home_panel(request: Any, db: AsyncSession, principal: Principal) -> tuple[str, dict[str, Any]]:
    """On everyone's home page: what I hold, and a quick way to ask IT for a laptop or a router."""
    held = (
        await db.execute(
            select(func.count())
            .select_from(LoanItem)
            .join(Loan, col(Loan.id) == col(LoanItem.loan_id))
            .where(col(Loan.holder_id) == principal.id, col(LoanItem.open_key).is_not(None))
        )
    ).scalar_one()
    waiting = (
        await db.execute(
            select(func.count())
            .select_from(EquipmentRequest)
            .where(col(EquipmentRequest.user_id) == principal.id, col(EquipmentRequest.status) == "open")
        )
    ).scalar_one()
    return "devices/home_panel.html", {"held": int(held), "waiting": int(waiting)}
