"""Inventory rules: devices, carriers, plans, lines, SIM cards and their secrets, lost or stolen devices.

No HTTP here. Every change writes one audit event in the caller's transaction.
"""

from __future__ import annotations

import functools
import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import audit
from app.db import utcnow
from app.errors import Conflict, DomainError, NotFound
from app.security import Principal
from auth.models import User
from devices import checks, schemas
from devices.models import Carrier, Device, Incident, Line, Loan, LoanItem, Plan, SecretReveal, SimCard

TOKYO = ZoneInfo("Asia/Tokyo")
MAX_PER_PAGE = 100
SETTABLE = {"in_stock", "in_repair", "retired"}


def today(now: datetime | None = None) -> date:
    """Dates people see (return dates, contract deadlines) are Japan dates."""
    return (now or utcnow()).astimezone(TOKYO).date()


@functools.cache
def secret_box(secret_key: str) -> checks.SecretBox:
    return checks.SecretBox(secret_key)


def like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    return max(1, page), per_page


async def paged(
    db: AsyncSession, query: Any, order_by: Any, page: int, per_page: int, *, scan: bool = False
) -> tuple[list[Any], int]:
    """One page and the total. With a text search (scan=True) both come from one scan (count(*) OVER ());
    otherwise an index-ordered page and a separate count are cheaper than windowing every row."""
    window = query.order_by(order_by).limit(per_page).offset((page - 1) * per_page)
    if scan:
        rows = (await db.execute(window.add_columns(func.count().over()))).all()
        if rows:
            return [r[0] for r in rows], int(rows[0][1])
        items: list[Any] = []
    else:
        items = list((await db.execute(window)).scalars())
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    return items, int(total)


def record(
    db: AsyncSession,
    actor: Principal | None,
    action: str,
    entity_type: str,
    entity_id: object,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str = "",
) -> None:
    audit.record(
        db,
        action,
        actor_id=actor.id if actor else None,
        actor_label=actor.name if actor else "system",
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
        ip=ip,
    )


async def flush_unique(db: AsyncSession, key: str, **params: Any) -> None:
    """Flush; a unique constraint that still fires (a racing writer) becomes a 409 with words."""
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(key, **params) from exc


# ---------------------------------------------------------------- devices


def device_dict(d: Device) -> dict[str, Any]:
    return {
        "asset_tag": d.asset_tag,
        "kind": d.kind,
        "serial": d.serial,
        "imei": d.imei,
        "maker": d.maker,
        "model": d.model,
        "status": d.status,
        "purchase_date": d.purchase_date,
        "cost": d.cost,
        "warranty_end": d.warranty_end,
        "notes": d.notes,
    }


def search_text(values: dict[str, Any]) -> str:
    parts = (values.get(k) or "" for k in ("asset_tag", "serial", "imei", "maker", "model"))
    return " ".join(str(p) for p in parts if p).lower()[:400]


def device_read(d: Device, holder: tuple[int, str] | None = None) -> schemas.DeviceRead:
    return schemas.DeviceRead(
        id=d.id or 0,
        asset_tag=d.asset_tag,
        kind=d.kind,
        serial=d.serial,
        imei=d.imei,
        maker=d.maker,
        model=d.model,
        status=d.status,
        purchase_date=d.purchase_date,
        cost=d.cost,
        warranty_end=d.warranty_end,
        notes=d.notes,
        loan_id=holder[0] if holder else None,
        holder=holder[1] if holder else None,
    )


def _device_fields(data: schemas.DeviceIn) -> dict[str, Any]:
    if data.purchase_date and data.warranty_end and data.warranty_end < data.purchase_date:
        raise DomainError("devices.warranty_before_purchase", status_code=422, field="warranty_end")
    return {
        "asset_tag": checks.asset_tag(data.asset_tag),
        "kind": data.kind,
        "serial": data.serial.strip(),
        "imei": checks.imei(data.imei),
        "maker": data.maker.strip(),
        "model": data.model.strip(),
        "purchase_date": data.purchase_date,
        "cost": data.cost,
        "warranty_end": data.warranty_end,
        "notes": data.notes.strip(),
    }


async def _device_unique(db: AsyncSession, fields: dict[str, Any], exclude: int | None = None) -> None:
    query = select(Device).where(
        or_(col(Device.asset_tag) == fields["asset_tag"], col(Device.imei) == fields["imei"])
        if fields["imei"]
        else col(Device.asset_tag) == fields["asset_tag"]
    )
    if exclude is not None:
        query = query.where(col(Device.id) != exclude)
    clash = (await db.execute(query)).scalars().first()
    if clash is not None:
        if clash.asset_tag == fields["asset_tag"]:
            raise Conflict("devices.duplicate_tag", field="asset_tag", tag=fields["asset_tag"])
        raise Conflict("devices.duplicate_imei", field="imei", imei=fields["imei"])


async def create_device(db: AsyncSession, actor: Principal, data: schemas.DeviceIn, ip: str = "") -> Device:
    """Register a device in stock."""
    fields = _device_fields(data)
    await _device_unique(db, fields)
    device = Device(**fields, search=search_text(fields))
    db.add(device)
    await flush_unique(db, "devices.duplicate_tag", field="asset_tag", tag=fields["asset_tag"])
    record(db, actor, "devices.device.create", "device", device.id, after=device_dict(device), ip=ip)
    return device


async def get_device(db: AsyncSession, device_id: int) -> Device:
    device = await db.get(Device, device_id)
    if device is None:
        raise NotFound("devices.device_not_found")
    return device


async def device_by_tag(db: AsyncSession, tag: str) -> Device | None:
    return (
        (await db.execute(select(Device).where(col(Device.asset_tag) == tag.strip().upper())))
        .scalars()
        .first()
    )


async def update_device(
    db: AsyncSession, actor: Principal, device_id: int, data: schemas.DeviceIn, ip: str = ""
) -> Device:
    """Correct a device's details; its status changes only through loans, incidents and set_status."""
    device = await get_device(db, device_id)
    fields = _device_fields(data)
    await _device_unique(db, fields, exclude=device_id)
    before = device_dict(device)
    for key, value in fields.items():
        setattr(device, key, value)
    device.search, device.updated_at = search_text(fields), utcnow()
    await flush_unique(db, "devices.duplicate_tag", field="asset_tag", tag=fields["asset_tag"])
    after = device_dict(device)
    changed = {k: v for k, v in after.items() if before[k] != v}
    if changed:
        record(
            db,
            actor,
            "devices.device.update",
            "device",
            device_id,
            before={k: before[k] for k in changed},
            after=changed,
            ip=ip,
        )
    return device


async def set_device_status(
    db: AsyncSession, actor: Principal, device_id: int, data: schemas.StatusIn, ip: str = ""
) -> Device:
    """Send to repair, back to stock, or retire; a device on loan or lost must come back first."""
    device = await get_device(db, device_id)
    if device.status == "on_loan":
        raise Conflict("devices.status_on_loan")
    if device.status == data.status:
        return device
    before = device.status
    device.status = data.status
    device.updated_at = utcnow()
    record(
        db,
        actor,
        "devices.device.status",
        "device",
        device_id,
        before={"status": before},
        after={"status": data.status, "note": data.note},
        ip=ip,
    )
    await db.flush()
    return device


async def open_holders(
    db: AsyncSession, *, device_ids: list[int] | None = None, line_ids: list[int] | None = None
) -> dict[int, tuple[int, str]]:
    """Open loan id and holder name per device (or per line) id."""
    key = col(LoanItem.device_id) if device_ids is not None else col(LoanItem.line_id)
    ids = device_ids if device_ids is not None else line_ids or []
    if not ids:
        return {}
    rows = await db.execute(
        select(key, col(Loan.id), col(User.name))
        .join(Loan, col(Loan.id) == col(LoanItem.loan_id))
        .join(User, col(User.id) == col(Loan.holder_id))
        .where(key.in_(ids), col(LoanItem.open_key).is_not(None))
    )
    return {int(r[0] or 0): (int(r[1] or 0), str(r[2])) for r in rows}


async def list_devices(
    db: AsyncSession,
    *,
    q: str = "",
    kind: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> schemas.DeviceList:
    """Devices matching a search (tag, serial, IMEI, maker, model), newest first, one page."""
    page, per_page = page_bounds(page, per_page)
    query = select(Device)
    q = q.strip()
    if q:
        query = query.where(col(Device.search).contains(q.lower(), autoescape=True))
    if kind:
        query = query.where(col(Device.kind) == kind)
    if status:
        query = query.where(col(Device.status) == status)
    rows, total = await paged(db, query, col(Device.asset_tag), page, per_page, scan=bool(q))
    holders = await open_holders(db, device_ids=[d.id or 0 for d in rows])
    return schemas.DeviceList(
        items=[device_read(d, holders.get(d.id or 0)) for d in rows],
        total=int(total),
        page=page,
        per_page=per_page,
    )


# ---------------------------------------------------------------- carriers and plans


async def create_carrier(
    db: AsyncSession, actor: Principal, data: schemas.CarrierIn, ip: str = ""
) -> Carrier:
    clash = (
        (await db.execute(select(Carrier).where(col(Carrier.mcc) == data.mcc, col(Carrier.mnc) == data.mnc)))
        .scalars()
        .first()
    )
    if clash is not None:
        raise Conflict("devices.duplicate_carrier", mcc=data.mcc, mnc=data.mnc, field="mnc")
    carrier = Carrier(name=data.name.strip(), mcc=data.mcc, mnc=data.mnc)
    db.add(carrier)
    await flush_unique(db, "devices.duplicate_carrier", mcc=data.mcc, mnc=data.mnc)
    record(db, actor, "devices.carrier.create", "carrier", carrier.id, after=msgspec_dict(data), ip=ip)
    return carrier


def msgspec_dict(data: Any) -> dict[str, Any]:
    return msgspec.to_builtins(data)  # type: ignore[no-any-return]


async def list_carriers(db: AsyncSession) -> list[schemas.CarrierRead]:
    rows = (await db.execute(select(Carrier).order_by(col(Carrier.name)))).scalars()
    return [schemas.CarrierRead(id=c.id or 0, name=c.name, mcc=c.mcc, mnc=c.mnc) for c in rows]


async def create_plan(db: AsyncSession, actor: Principal, data: schemas.PlanIn, ip: str = "") -> Plan:
    if data.carrier_id is not None and await db.get(Carrier, data.carrier_id) is None:
        raise DomainError("devices.carrier_not_found", status_code=422, field="carrier_id")
    name = data.name.strip()
    if (await db.execute(select(col(Plan.id)).where(col(Plan.name) == name))).first():
        raise Conflict("devices.duplicate_plan", field="name", name=name)
    plan = Plan(name=name, carrier_id=data.carrier_id, monthly_fee=data.monthly_fee, data_gb=data.data_gb)
    db.add(plan)
    await flush_unique(db, "devices.duplicate_plan", name=name)
    record(db, actor, "devices.plan.create", "plan", plan.id, after=msgspec_dict(data), ip=ip)
    return plan


def plan_read(p: Plan) -> schemas.PlanRead:
    return schemas.PlanRead(
        id=p.id or 0, name=p.name, carrier_id=p.carrier_id, monthly_fee=p.monthly_fee, data_gb=p.data_gb
    )


async def list_plans(db: AsyncSession) -> list[schemas.PlanRead]:
    return [plan_read(p) for p in (await db.execute(select(Plan).order_by(col(Plan.name)))).scalars()]


# ---------------------------------------------------------------- lines


def notice_deadline(line: Line) -> date | None:
    """Last day to give notice: notice days before the minimum-term end (else the contract end)."""
    end = line.min_term_end or line.contract_end
    return end - timedelta(days=line.notice_days) if end else None


def line_dict(line: Line) -> dict[str, Any]:
    return {
        "number": line.number,
        "carrier_id": line.carrier_id,
        "plan_id": line.plan_id,
        "status": line.status,
        "contract_start": line.contract_start,
        "min_term_end": line.min_term_end,
        "notice_days": line.notice_days,
        "contract_end": line.contract_end,
        "quarantine_until": line.quarantine_until,
        "notes": line.notes,
    }


async def _line_refs(db: AsyncSession, data: schemas.LineIn) -> None:
    if data.carrier_id is not None and await db.get(Carrier, data.carrier_id) is None:
        raise DomainError("devices.carrier_not_found", status_code=422, field="carrier_id")
    if data.plan_id is not None and await db.get(Plan, data.plan_id) is None:
        raise DomainError("devices.plan_not_found", status_code=422, field="plan_id")
    if data.contract_start and data.contract_end and data.contract_end < data.contract_start:
        raise DomainError("devices.contract_end_before_start", status_code=422, field="contract_end")


async def create_line(db: AsyncSession, actor: Principal, data: schemas.LineIn, ip: str = "") -> Line:
    """Register a line; the number is stored in E.164."""
    number = checks.e164(data.number)
    await _line_refs(db, data)
    if (await db.execute(select(col(Line.id)).where(col(Line.number) == number))).first():
        raise Conflict("devices.duplicate_number", field="number", number=number)
    line = Line(
        number=number,
        carrier_id=data.carrier_id,
        plan_id=data.plan_id,
        contract_start=data.contract_start,
        min_term_end=data.min_term_end,
        notice_days=data.notice_days,
        contract_end=data.contract_end,
        notes=data.notes.strip(),
    )
    db.add(line)
    await flush_unique(db, "devices.duplicate_number", field="number", number=number)
    record(db, actor, "devices.line.create", "line", line.id, after=line_dict(line), ip=ip)
    return line


async def get_line(db: AsyncSession, line_id: int) -> Line:
    line = await db.get(Line, line_id)
    if line is None:
        raise NotFound("devices.line_not_found")
    return line


async def update_line(
    db: AsyncSession, actor: Principal, line_id: int, data: schemas.LineIn, ip: str = ""
) -> Line:
    line = await get_line(db, line_id)
    number = checks.e164(data.number)
    await _line_refs(db, data)
    clash = await db.execute(select(col(Line.id)).where(col(Line.number) == number, col(Line.id) != line_id))
    if clash.first():
        raise Conflict("devices.duplicate_number", field="number", number=number)
    before = line_dict(line)
    line.number, line.carrier_id, line.plan_id = number, data.carrier_id, data.plan_id
    line.contract_start, line.min_term_end, line.contract_end = (
        data.contract_start,
        data.min_term_end,
        data.contract_end,
    )
    line.notice_days, line.notes, line.updated_at = data.notice_days, data.notes.strip(), utcnow()
    await flush_unique(db, "devices.duplicate_number", field="number", number=number)
    after = line_dict(line)
    changed = {k: v for k, v in after.items() if before[k] != v}
    if changed:
        record(
            db,
            actor,
            "devices.line.update",
            "line",
            line_id,
            before={k: before[k] for k in changed},
            after=changed,
            ip=ip,
        )
    return line


async def line_reads(db: AsyncSession, lines: list[Line]) -> list[schemas.LineRead]:
    carriers = {c.id: c.name for c in (await db.execute(select(Carrier))).scalars()}
    plans = {p.id: p for p in (await db.execute(select(Plan))).scalars()}
    holders = await open_holders(db, line_ids=[ln.id or 0 for ln in lines])
    out = []
    for ln in lines:
        plan = plans.get(ln.plan_id)
        holder = holders.get(ln.id or 0)
        out.append(
            schemas.LineRead(
                id=ln.id or 0,
                number=ln.number,
                carrier_id=ln.carrier_id,
                carrier=carriers.get(ln.carrier_id),
                plan_id=ln.plan_id,
                plan=plan.name if plan else None,
                monthly_fee=plan.monthly_fee if plan else None,
                status=ln.status,
                contract_start=ln.contract_start,
                min_term_end=ln.min_term_end,
                notice_days=ln.notice_days,
                contract_end=ln.contract_end,
                notice_deadline=notice_deadline(ln),
                quarantine_until=ln.quarantine_until,
                notes=ln.notes,
                loan_id=holder[0] if holder else None,
                holder=holder[1] if holder else None,
            )
        )
    return out


async def list_lines(
    db: AsyncSession, *, q: str = "", status: str | None = None, page: int = 1, per_page: int = 50
) -> schemas.LineList:
    page, per_page = page_bounds(page, per_page)
    query = select(Line)
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits:
        # People type 090-1234-5678; the number is stored as +819012345678.
        tail = digits[1:] if digits.startswith("0") else digits
        query = query.where(col(Line.number).like(like(tail), escape="\\"))
    if status:
        query = query.where(col(Line.status) == status)
    rows, total = await paged(db, query, col(Line.number), page, per_page, scan=bool(digits))
    return schemas.LineList(items=await line_reads(db, rows), total=int(total), page=page, per_page=per_page)


# ---------------------------------------------------------------- SIM cards and their secrets


async def _sim_refs(db: AsyncSession, line_id: int | None, device_id: int | None) -> None:
    if line_id is not None and await db.get(Line, line_id) is None:
        raise DomainError("devices.line_not_found", status_code=422, field="line_id")
    if device_id is not None and await db.get(Device, device_id) is None:
        raise DomainError("devices.device_not_found", status_code=422, field="device_id")


async def create_sim(
    db: AsyncSession, actor: Principal, box: checks.SecretBox, data: schemas.SimIn, ip: str = ""
) -> SimCard:
    """Register a SIM; its PIN and PUK are encrypted before they reach the database."""
    number = checks.iccid(data.iccid)
    pin = checks.sim_secret(data.pin, "pin")
    puk = checks.sim_secret(data.puk, "puk")
    await _sim_refs(db, data.line_id, data.device_id)
    if (await db.execute(select(col(SimCard.id)).where(col(SimCard.iccid) == number))).first():
        raise Conflict("devices.duplicate_iccid", field="iccid", iccid=number)
    sim = SimCard(
        iccid=number,
        form_factor=data.form_factor,
        line_id=data.line_id,
        device_id=data.device_id,
        pin_enc=box.seal(pin),
        puk_enc=box.seal(puk),
    )
    db.add(sim)
    await flush_unique(db, "devices.duplicate_iccid", field="iccid", iccid=number)
    record(db, actor, "devices.sim.create", "sim", sim.id, after=sim_dict(sim), ip=ip)
    return sim


def sim_dict(sim: SimCard) -> dict[str, Any]:
    """What the audit trail may know of a SIM: whether a PIN/PUK is set, never the value."""
    return {
        "iccid": sim.iccid,
        "form_factor": sim.form_factor,
        "line_id": sim.line_id,
        "device_id": sim.device_id,
        "has_pin": sim.pin_enc is not None,
        "has_puk": sim.puk_enc is not None,
    }


async def get_sim(db: AsyncSession, sim_id: int) -> SimCard:
    sim = await db.get(SimCard, sim_id)
    if sim is None:
        raise NotFound("devices.sim_not_found")
    return sim


async def update_sim(
    db: AsyncSession, actor: Principal, box: checks.SecretBox, sim_id: int, data: schemas.SimIn, ip: str = ""
) -> SimCard:
    """Move a SIM to another line or device, or set new PIN/PUK (omitted secrets are kept)."""
    sim = await get_sim(db, sim_id)
    number = checks.iccid(data.iccid)
    await _sim_refs(db, data.line_id, data.device_id)
    clash = await db.execute(
        select(col(SimCard.id)).where(col(SimCard.iccid) == number, col(SimCard.id) != sim_id)
    )
    if clash.first():
        raise Conflict("devices.duplicate_iccid", field="iccid", iccid=number)
    before = sim_dict(sim)
    sim.iccid, sim.form_factor, sim.line_id, sim.device_id = (
        number,
        data.form_factor,
        data.line_id,
        data.device_id,
    )
    secrets_changed = []
    if data.pin:
        sim.pin_enc = box.seal(checks.sim_secret(data.pin, "pin"))
        secrets_changed.append("pin")
    if data.puk:
        sim.puk_enc = box.seal(checks.sim_secret(data.puk, "puk"))
        secrets_changed.append("puk")
    sim.updated_at = utcnow()
    await flush_unique(db, "devices.duplicate_iccid", field="iccid", iccid=number)
    after = {**sim_dict(sim), "secrets_changed": ",".join(secrets_changed)}
    record(db, actor, "devices.sim.update", "sim", sim_id, before=before, after=after, ip=ip)
    return sim


async def sim_reads(db: AsyncSession, sims: list[SimCard]) -> list[schemas.SimRead]:
    line_ids = {s.line_id for s in sims if s.line_id}
    device_ids = {s.device_id for s in sims if s.device_id}
    numbers = (
        dict(
            (await db.execute(select(col(Line.id), col(Line.number)).where(col(Line.id).in_(line_ids)))).all()
        )
        if line_ids
        else {}
    )
    tags = (
        dict(
            (
                await db.execute(
                    select(col(Device.id), col(Device.asset_tag)).where(col(Device.id).in_(device_ids))
                )
            ).all()
        )
        if device_ids
        else {}
    )
    return [
        schemas.SimRead(
            id=s.id or 0,
            iccid=s.iccid,
            form_factor=s.form_factor,
            line_id=s.line_id,
            number=numbers.get(s.line_id or 0),
            device_id=s.device_id,
            asset_tag=tags.get(s.device_id or 0),
            has_pin=s.pin_enc is not None,
            has_puk=s.puk_enc is not None,
        )
        for s in sims
    ]


async def list_sims(db: AsyncSession, *, q: str = "", page: int = 1, per_page: int = 50) -> schemas.SimList:
    page, per_page = page_bounds(page, per_page)
    query = select(SimCard)
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits:
        query = query.where(col(SimCard.iccid).like(like(digits), escape="\\"))
    rows, total = await paged(db, query, col(SimCard.iccid), page, per_page, scan=bool(digits))
    return schemas.SimList(items=await sim_reads(db, rows), total=int(total), page=page, per_page=per_page)


async def reveal(
    db: AsyncSession, actor: Principal, box: checks.SecretBox, sim_id: int, reason: str, ip: str = ""
) -> schemas.RevealRead:
    """Show one SIM's PIN and PUK to IT, logging who asked, when and why (the values are never logged)."""
    reason = reason.strip()
    if len(reason) < 5:
        raise DomainError("devices.reveal_reason", status_code=422, field="reason")
    sim = await get_sim(db, sim_id)
    at = utcnow()
    db.add(SecretReveal(sim_id=sim_id, user_id=actor.id, at=at, reason=reason))
    record(
        db, actor, "devices.sim.reveal", "sim", sim_id, after={"iccid": sim.iccid, "reason": reason}, ip=ip
    )
    await db.flush()
    return schemas.RevealRead(
        sim_id=sim_id, iccid=sim.iccid, pin=box.open(sim.pin_enc), puk=box.open(sim.puk_enc), revealed_at=at
    )


async def reveal_log(
    db: AsyncSession, sim_id: int | None = None, limit: int = 200
) -> list[schemas.RevealLog]:
    query = (
        select(SecretReveal, col(SimCard.iccid), col(User.name))
        .join(SimCard, col(SimCard.id) == col(SecretReveal.sim_id))
        .join(User, col(User.id) == col(SecretReveal.user_id))
        .order_by(col(SecretReveal.id).desc())
        .limit(limit)
    )
    if sim_id is not None:
        query = query.where(col(SecretReveal.sim_id) == sim_id)
    return [
        schemas.RevealLog(
            id=r.id or 0,
            sim_id=r.sim_id,
            iccid=iccid,
            user_id=r.user_id,
            user_name=name,
            at=r.at,
            reason=r.reason,
        )
        for r, iccid, name in (await db.execute(query))
    ]


# ---------------------------------------------------------------- lost or stolen


async def report_lost(
    db: AsyncSession, actor: Principal, device_id: int, data: schemas.IncidentIn, ip: str = ""
) -> Incident:
    """One action: the device is marked lost, its line's suspension is requested, an incident is opened."""
    device = await get_device(db, device_id)
    if device.status in ("lost", "retired"):
        raise Conflict(
            "devices.already_lost" if device.status == "lost" else "devices.retired", tag=device.asset_tag
        )
    now = utcnow()
    item = (
        (
            await db.execute(
                select(LoanItem).where(
                    col(LoanItem.device_id) == device_id, col(LoanItem.open_key).is_not(None)
                )
            )
        )
        .scalars()
        .first()
    )
    line_id = (
        (
            await db.execute(
                select(col(SimCard.line_id)).where(
                    col(SimCard.device_id) == device_id, col(SimCard.line_id).is_not(None)
                )
            )
        )
        .scalars()
        .first()
    )
    if line_id is None and item is not None:
        line_id = (
            (
                await db.execute(
                    select(col(LoanItem.line_id)).where(
                        col(LoanItem.loan_id) == item.loan_id,
                        col(LoanItem.line_id).is_not(None),
                        col(LoanItem.open_key).is_not(None),
                    )
                )
            )
            .scalars()
            .first()
        )
    incident = Incident(
        device_id=device_id,
        line_id=line_id,
        loan_id=item.loan_id if item else None,
        kind=data.kind,
        description=data.description.strip(),
        reported_by=actor.id,
        reported_at=now,
        device_marked_at=now,
        line_suspension_requested_at=now if line_id else None,
    )
    db.add(incident)
    before = device.status
    device.status, device.updated_at = "lost", now
    if item is not None:
        item.open_key, item.returned_at, item.condition = None, now, "lost"
    await db.flush()
    record(
        db,
        actor,
        "devices.incident.open",
        "device",
        device_id,
        before={"status": before},
        after={
            "status": "lost",
            "incident_id": incident.id,
            "kind": data.kind,
            "loan_id": incident.loan_id,
            "line_id": line_id,
            "line_suspension_requested": line_id is not None,
        },
        ip=ip,
    )
    return incident


async def get_incident(db: AsyncSession, incident_id: int) -> Incident:
    incident = await db.get(Incident, incident_id)
    if incident is None:
        raise NotFound("devices.incident_not_found")
    return incident


async def incident_step(
    db: AsyncSession, actor: Principal, incident_id: int, step: str, ip: str = ""
) -> Incident:
    """Record the carrier's confirmation that the line is suspended, or close the incident."""
    incident = await get_incident(db, incident_id)
    if incident.closed_at is not None:
        raise Conflict("devices.incident_closed")
    now = utcnow()
    if step == "line_suspended":
        if incident.line_id is None:
            raise Conflict("devices.incident_no_line")
        if incident.line_suspended_at is not None:
            raise Conflict("devices.line_already_suspended")
        line = await get_line(db, incident.line_id)
        before = line.status
        incident.line_suspended_at = now
        # A suspended line stays in its open loan until the loan comes back, then stays suspended.
        line.status = "suspended"
        record(
            db,
            actor,
            "devices.line.suspend",
            "line",
            line.id,
            before={"status": before},
            after={"status": "suspended", "incident_id": incident_id},
            ip=ip,
        )
    elif step == "close":
        incident.closed_at = now
        record(
            db,
            actor,
            "devices.incident.close",
            "device",
            incident.device_id,
            after={"incident_id": incident_id},
            ip=ip,
        )
    else:
        raise DomainError("devices.bad_step", status_code=422)
    await db.flush()
    return incident


async def incident_reads(db: AsyncSession, incidents: list[Incident]) -> list[schemas.IncidentRead]:
    tags = (
        dict(
            (
                await db.execute(
                    select(col(Device.id), col(Device.asset_tag)).where(
                        col(Device.id).in_({i.device_id for i in incidents})
                    )
                )
            ).all()
        )
        if incidents
        else {}
    )
    line_ids = {i.line_id for i in incidents if i.line_id}
    numbers = (
        dict(
            (await db.execute(select(col(Line.id), col(Line.number)).where(col(Line.id).in_(line_ids)))).all()
        )
        if line_ids
        else {}
    )
    return [
        schemas.IncidentRead(
            id=i.id or 0,
            device_id=i.device_id,
            asset_tag=tags.get(i.device_id, ""),
            line_id=i.line_id,
            number=numbers.get(i.line_id or 0),
            loan_id=i.loan_id,
            kind=i.kind,
            description=i.description,
            reported_at=i.reported_at,
            device_marked_at=i.device_marked_at,
            line_suspension_requested_at=i.line_suspension_requested_at,
            line_suspended_at=i.line_suspended_at,
            closed_at=i.closed_at,
        )
        for i in incidents
    ]


async def list_incidents(
    db: AsyncSession, *, open_only: bool = False, device_id: int | None = None
) -> list[schemas.IncidentRead]:
    query = select(Incident).order_by(col(Incident.id).desc()).limit(200)
    if open_only:
        query = query.where(col(Incident.closed_at).is_(None))
    if device_id is not None:
        query = query.where(col(Incident.device_id) == device_id)
    return await incident_reads(db, list((await db.execute(query)).scalars()))


# ---------------------------------------------------------------- history


async def history(db: AsyncSession, entity_type: str, entity_id: int) -> list[schemas.HistoryEntry]:
    """Every audited change of a device or line, with the loans it was part of, oldest first."""
    key = LoanItem.device_id if entity_type == "device" else LoanItem.line_id
    loan_ids = [
        str(i)
        for i in (await db.execute(select(col(LoanItem.loan_id)).where(col(key) == entity_id))).scalars()
    ]
    query = select(audit.AuditEvent).where(
        or_(
            (col(audit.AuditEvent.entity_type) == entity_type)
            & (col(audit.AuditEvent.entity_id) == str(entity_id)),
            (col(audit.AuditEvent.entity_type) == "loan") & col(audit.AuditEvent.entity_id).in_(loan_ids),
        )
    )
    out = []
    for e in (await db.execute(query.order_by(col(audit.AuditEvent.id)))).scalars():
        detail: dict[str, object] = {}
        if e.after:
            detail = json.loads(e.after)
        out.append(schemas.HistoryEntry(at=e.at, action=e.action, actor=e.actor_label, detail=detail))
    return out


async def history_of_loan(db: AsyncSession, loan_id: int) -> list[schemas.HistoryEntry]:
    """Checkout, acceptance and return of one loan, oldest first."""
    query = select(audit.AuditEvent).where(
        col(audit.AuditEvent.entity_type) == "loan", col(audit.AuditEvent.entity_id) == str(loan_id)
    )
    return [
        schemas.HistoryEntry(
            at=e.at, action=e.action, actor=e.actor_label, detail=json.loads(e.after) if e.after else {}
        )
        for e in (await db.execute(query.order_by(col(audit.AuditEvent.id)))).scalars()
    ]
