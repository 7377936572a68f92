"""Loans as bundles: checkout, one online acceptance for the whole bundle, return; and equipment requests.

The database keeps an item in at most one open loan (LoanItem.open_key is unique); the row locks taken
here only turn the race's loser into a clear "already on loan" instead of a constraint error.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import mail
from app.db import utcnow
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.security import Principal
from auth.models import User
from devices import schemas
from devices.models import Device, EquipmentRequest, Line, Loan, LoanItem
from devices.services import flush_unique, page_bounds, paged, record, today

TERMS_VERSION = "2026-04"
QUARANTINE_DAYS = 30
MAX_LOAN_DAYS = 366
IT_ROLES = ("it_admin", "sysadmin")
LOAN_READERS = ("it_admin", "sysadmin", "auditor")


def loan_dict(loan: Loan) -> dict[str, Any]:
    return {
        "holder_id": loan.holder_id,
        "status": loan.status,
        "expected_return": loan.expected_return,
        "telework_request_id": loan.telework_request_id,
    }


def is_overdue(loan: Loan) -> bool:
    return loan.status != "returned" and loan.expected_return is not None and loan.expected_return < today()


async def _lock(db: AsyncSession, model: Any, ids: list[int]) -> dict[int, Any]:
    """Rows in id order, locked FOR UPDATE on PostgreSQL (SQLite serialises writers anyway)."""
    if not ids:
        return {}
    rows = await db.execute(
        select(model).where(col(model.id).in_(ids)).order_by(col(model.id)).with_for_update()
    )
    return {r.id: r for r in rows.scalars()}


async def checkout(db: AsyncSession, actor: Principal, data: schemas.LoanIn, ip: str = "") -> Loan:
    """Lend devices and lines to one person as a single bundle, waiting for their online acceptance."""
    device_ids, line_ids = sorted(set(data.device_ids)), sorted(set(data.line_ids))
    if not device_ids and not line_ids:
        raise DomainError("devices.loan_empty", status_code=422, field="device_ids")
    if len(device_ids) != len(data.device_ids) or len(line_ids) != len(data.line_ids):
        raise DomainError("devices.loan_repeated_item", status_code=422, field="device_ids")
    day = today()
    if data.expected_return is not None and not (
        day <= data.expected_return <= day + timedelta(days=MAX_LOAN_DAYS)
    ):
        raise DomainError(
            "devices.bad_return_date", status_code=422, field="expected_return", days=MAX_LOAN_DAYS
        )
    holder = await db.get(User, data.holder_id)
    if holder is None or not holder.active:
        raise DomainError("devices.holder_not_found", status_code=422, field="holder_id")
    devices = await _lock(db, Device, device_ids)
    lines = await _lock(db, Line, line_ids)
    for device_id in device_ids:
        device = devices.get(device_id)
        if device is None:
            raise DomainError("devices.device_not_found", status_code=422, field="device_ids")
        if device.status == "on_loan":
            raise Conflict("devices.already_on_loan", field="device_ids", label=device.asset_tag)
        if device.status in ("lost", "retired", "in_repair"):
            raise Conflict(f"devices.cannot_lend_{device.status}", field="device_ids", label=device.asset_tag)
    for line_id in line_ids:
        line = lines.get(line_id)
        if line is None:
            raise DomainError("devices.line_not_found", status_code=422, field="line_ids")
        if line.status == "on_loan":
            raise Conflict("devices.already_on_loan", field="line_ids", label=line.number)
        if line.status in ("suspended", "cancelled"):
            raise Conflict(f"devices.cannot_lend_{line.status}", field="line_ids", label=line.number)
        if line.quarantine_until is not None and line.quarantine_until > day:
            raise Conflict(
                "devices.line_quarantined", field="line_ids", label=line.number, until=line.quarantine_until
            )
    request = None
    if data.request_id is not None:
        request = await db.get(EquipmentRequest, data.request_id)
        if request is None or request.status != "open":
            raise DomainError("devices.request_not_open", status_code=422, field="request_id")
        if request.user_id != holder.id:
            raise DomainError("devices.request_other_holder", status_code=422, field="request_id")
    now = utcnow()
    expected_return = data.expected_return
    telework_request_id = data.telework_request_id
    if request is not None:
        telework_request_id = telework_request_id or request.telework_request_id
        if expected_return is None and request.needed_until and request.needed_until >= day:
            expected_return = request.needed_until  # the telework period suggests the return date
    loan = Loan(
        holder_id=holder.id or 0,
        holder_unit_id=holder.unit_id,
        telework_request_id=telework_request_id,
        expected_return=expected_return,
        out_at=now,
        checked_out_by=actor.id,
        notes=data.notes.strip(),
    )
    db.add(loan)
    await db.flush()
    for device_id in device_ids:
        db.add(LoanItem(loan_id=loan.id or 0, device_id=device_id, open_key=f"device:{device_id}"))
    for line_id in line_ids:
        db.add(LoanItem(loan_id=loan.id or 0, line_id=line_id, open_key=f"line:{line_id}"))
    await flush_unique(db, "devices.already_on_loan_race", field="device_ids")
    for device_id in device_ids:
        devices[device_id].status, devices[device_id].updated_at = "on_loan", now
    for line_id in line_ids:
        lines[line_id].status, lines[line_id].updated_at = "on_loan", now
    if request is not None:
        request.status, request.handled_by, request.handled_at, request.loan_id = (
            "fulfilled",
            actor.id,
            now,
            loan.id,
        )
    record(
        db,
        actor,
        "devices.loan.checkout",
        "loan",
        loan.id,
        after={
            **loan_dict(loan),
            "holder": holder.name,
            "devices": [devices[i].asset_tag for i in device_ids],
            "lines": [lines[i].number for i in line_ids],
        },
        ip=ip,
    )
    await mail.enqueue(
        db,
        holder.email,
        "【貸出】機器の受け取り確認をお願いします / Please accept your equipment loan",
        "貸出機器の内容を確認し、「私の機器」ページで受け取りを確認してください。\n"
        "Please review the equipment lent to you and accept it on the My equipment page.\n\n"
        + "\n".join([devices[i].asset_tag for i in device_ids] + [lines[i].number for i in line_ids])
        + "\n\n/devices/mine",
        dedupe_key=f"devices.loan.accept:{loan.id}",
    )
    await db.flush()
    return loan


async def get_loan(db: AsyncSession, loan_id: int) -> Loan:
    loan = await db.get(Loan, loan_id)
    if loan is None:
        raise NotFound("devices.loan_not_found")
    return loan


def may_read(principal: Principal, loan: Loan) -> bool:
    """The holder, IT and auditors, and unit heads over the holder's unit (at checkout)."""
    if loan.holder_id == principal.id or principal.has(*LOAN_READERS):
        return True
    return principal.has("unit_head") and loan.holder_unit_id in principal.scope_unit_ids


async def loan_for(db: AsyncSession, principal: Principal, loan_id: int) -> Loan:
    """A loan the person may see; others get 'not found' so nobody learns which loans exist."""
    loan = await get_loan(db, loan_id)
    if not may_read(principal, loan):
        raise NotFound("devices.loan_not_found")
    return loan


async def accept(
    db: AsyncSession, actor: Principal, loan_id: int, data: schemas.AcceptIn, ip: str = ""
) -> Loan:
    """The holder accepts the terms once for the whole bundle; the time and terms version are kept."""
    loan = await loan_for(db, actor, loan_id)
    if loan.holder_id != actor.id:
        raise Forbidden("devices.accept_holder_only")
    if not data.agree:
        raise DomainError("devices.must_agree", status_code=422, field="agree")
    if data.terms_version != TERMS_VERSION:
        raise Conflict("devices.terms_changed", field="terms_version", version=TERMS_VERSION)
    now = utcnow()
    done = await db.execute(
        update(Loan)
        .where(col(Loan.id) == loan_id, col(Loan.status) == "awaiting_acceptance")
        .values(status="active", accepted_at=now, terms_version=TERMS_VERSION)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("devices.already_accepted" if loan.status == "active" else "devices.loan_closed")
    record(
        db,
        actor,
        "devices.loan.accept",
        "loan",
        loan_id,
        before={"status": "awaiting_acceptance"},
        after={"status": "active", "terms_version": TERMS_VERSION, "accepted_at": now},
        ip=ip,
    )
    await db.flush()
    await db.refresh(loan)
    return loan


async def return_loan(
    db: AsyncSession, actor: Principal, loan_id: int, data: schemas.ReturnIn, ip: str = ""
) -> Loan:
    """IT takes the bundle back, a condition per item; devices go back to stock, lines into quarantine."""
    loan = await get_loan(db, loan_id)
    items = list((await db.execute(select(LoanItem).where(col(LoanItem.loan_id) == loan_id))).scalars())
    by_id = {i.id: i for i in items}
    notes: dict[int, schemas.ReturnItemIn] = {}
    for given in data.items:
        if given.item_id not in by_id:
            raise DomainError("devices.item_not_in_loan", status_code=422, field="items")
        notes[given.item_id] = given
    now = utcnow()
    done = await db.execute(
        update(Loan)
        .where(col(Loan.id) == loan_id, col(Loan.status) != "returned")
        .values(status="returned", returned_at=now, returned_by=actor.id, return_notes=data.notes.strip())
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("devices.already_returned")
    quarantine = today() + timedelta(days=QUARANTINE_DAYS)
    summary: list[dict[str, Any]] = []
    for item in items:
        if item.open_key is None:
            continue  # already closed (a lost device)
        entry = notes.get(item.id or 0)
        item.condition = entry.condition if entry else "good"
        item.condition_note = entry.note.strip() if entry else ""
        item.returned_at, item.open_key = now, None
        if item.device_id is not None:
            device = await db.get(Device, item.device_id, with_for_update=True)
            assert device is not None
            device.status = "in_repair" if item.condition == "damaged" else "in_stock"
            device.updated_at = now
            summary.append(
                {
                    "device": device.asset_tag,
                    "condition": item.condition,
                    "note": item.condition_note,
                    "status": device.status,
                }
            )
        if item.line_id is not None:
            line = await db.get(Line, item.line_id, with_for_update=True)
            assert line is not None
            if line.status == "on_loan":
                line.status = "in_stock"
            line.quarantine_until, line.updated_at = quarantine, now
            summary.append(
                {
                    "line": line.number,
                    "condition": item.condition,
                    "note": item.condition_note,
                    "quarantine_until": quarantine,
                }
            )
    record(
        db,
        actor,
        "devices.loan.return",
        "loan",
        loan_id,
        before={"status": loan.status},
        after={"status": "returned", "items": summary, "notes": data.notes.strip()},
        ip=ip,
    )
    await db.flush()
    await db.refresh(loan)
    return loan


async def loan_reads(db: AsyncSession, loans: list[Loan]) -> list[schemas.LoanRead]:
    if not loans:
        return []
    loan_ids = [ln.id for ln in loans]
    items = list(
        (
            await db.execute(
                select(LoanItem).where(col(LoanItem.loan_id).in_(loan_ids)).order_by(col(LoanItem.id))
            )
        ).scalars()
    )
    device_ids = {i.device_id for i in items if i.device_id}
    line_ids = {i.line_id for i in items if i.line_id}
    devices = (
        {d.id: d for d in (await db.execute(select(Device).where(col(Device.id).in_(device_ids)))).scalars()}
        if device_ids
        else {}
    )
    numbers = (
        dict(
            (await db.execute(select(col(Line.id), col(Line.number)).where(col(Line.id).in_(line_ids)))).all()
        )
        if line_ids
        else {}
    )
    names = dict(
        (
            await db.execute(
                select(col(User.id), col(User.name)).where(col(User.id).in_({ln.holder_id for ln in loans}))
            )
        ).all()
    )
    by_loan: dict[int, list[schemas.LoanItemRead]] = {}
    for i in items:
        if i.device_id is not None:
            d = devices[i.device_id]
            label, kind = f"{d.asset_tag} {d.maker} {d.model}".strip(), d.kind
        else:
            label, kind = numbers.get(i.line_id or 0, ""), "line"
        by_loan.setdefault(i.loan_id, []).append(
            schemas.LoanItemRead(
                id=i.id or 0,
                device_id=i.device_id,
                line_id=i.line_id,
                label=label,
                kind=kind,
                returned_at=i.returned_at,
                condition=i.condition,
                condition_note=i.condition_note,
            )
        )
    return [
        schemas.LoanRead(
            id=ln.id or 0,
            holder_id=ln.holder_id,
            holder_name=names.get(ln.holder_id, ""),
            holder_unit_id=ln.holder_unit_id,
            status=ln.status,
            overdue=is_overdue(ln),
            out_at=ln.out_at,
            expected_return=ln.expected_return,
            accepted_at=ln.accepted_at,
            terms_version=ln.terms_version,
            returned_at=ln.returned_at,
            telework_request_id=ln.telework_request_id,
            notes=ln.notes,
            return_notes=ln.return_notes,
            items=by_loan.get(ln.id or 0, []),
        )
        for ln in loans
    ]


async def list_loans(
    db: AsyncSession,
    principal: Principal,
    *,
    status: str | None = None,
    overdue: bool = False,
    q: str = "",
    page: int = 1,
    per_page: int = 50,
) -> schemas.LoanList:
    """Loans the person may see: all for IT and auditors, their units' for unit heads, their own otherwise."""
    page, per_page = page_bounds(page, per_page)
    query = select(Loan)
    if not principal.has(*LOAN_READERS):
        if principal.has("unit_head"):
            query = query.where(col(Loan.holder_unit_id).in_(principal.scope_unit_ids))
        else:
            query = query.where(col(Loan.holder_id) == principal.id)
    if status == "open":
        query = query.where(col(Loan.status) != "returned")
    elif status:
        query = query.where(col(Loan.status) == status)
    if overdue:
        query = query.where(col(Loan.status) != "returned", col(Loan.expected_return) < today())
    q = q.strip()
    if q:
        holders = select(col(User.id)).where(
            col(User.name).contains(q) | col(User.kana).contains(q) | (col(User.employee_number) == q)
        )
        tagged = (
            select(col(LoanItem.loan_id))
            .join(Device, col(Device.id) == col(LoanItem.device_id))
            .where(col(Device.asset_tag) == q.upper())
        )
        query = query.where(col(Loan.holder_id).in_(holders) | col(Loan.id).in_(tagged))
    rows, total = await paged(db, query, col(Loan.id).desc(), page, per_page, scan=bool(q))
    return schemas.LoanList(items=await loan_reads(db, rows), total=int(total), page=page, per_page=per_page)


async def my_loans(db: AsyncSession, principal: Principal) -> list[schemas.LoanRead]:
    """What I hold now (and what waits for my acceptance)."""
    rows = list(
        (
            await db.execute(
                select(Loan)
                .where(col(Loan.holder_id) == principal.id, col(Loan.status) != "returned")
                .order_by(col(Loan.id).desc())
            )
        ).scalars()
    )
    return await loan_reads(db, rows)


# ---------------------------------------------------------------- equipment requests


async def my_telework_periods(db: AsyncSession, actor: Principal) -> list[tuple[int, date, date]]:
    """My recent telework requests with approved days still ahead: (id, first, last approved day)."""
    from scheduling import services as scheduling

    found, _total = await scheduling.my_requests(db, actor, per_page=20)
    out = []
    for req in found:
        approved = sorted(d.day for d in req.days if d.state == "approved")
        if approved and approved[-1] >= today():
            out.append((req.id, approved[0], approved[-1]))
    return out


async def telework_period(db: AsyncSession, actor: Principal, telework_request_id: int) -> tuple[date, date]:
    """First and last approved day of the person's own telework request (read through scheduling)."""
    from scheduling import services as scheduling

    try:
        found = await scheduling.get_request(db, actor, telework_request_id)
    except NotFound as exc:
        raise DomainError("devices.telework_not_found", status_code=422, field="telework_request_id") from exc
    approved = sorted(d.day for d in found.days if d.state == "approved")
    if found.user_id != actor.id or not approved:
        raise DomainError("devices.telework_not_approved", status_code=422, field="telework_request_id")
    return approved[0], approved[-1]


def request_read(r: EquipmentRequest, name: str) -> schemas.RequestRead:
    return schemas.RequestRead(
        id=r.id or 0,
        user_id=r.user_id,
        user_name=name,
        kinds=[k for k in r.kinds.split(",") if k],
        reason=r.reason,
        needed_from=r.needed_from,
        needed_until=r.needed_until,
        telework_request_id=r.telework_request_id,
        status=r.status,
        created_at=r.created_at,
        answer=r.answer,
        loan_id=r.loan_id,
    )


async def create_request(
    db: AsyncSession, actor: Principal, data: schemas.RequestIn, ip: str = ""
) -> EquipmentRequest:
    """An employee asks IT for equipment (from the home page or My equipment)."""
    needed_from, needed_until = data.needed_from, data.needed_until
    if data.telework_request_id is not None:
        first, last = await telework_period(db, actor, data.telework_request_id)
        needed_from, needed_until = needed_from or first, needed_until or last
    if needed_from and needed_until and needed_until < needed_from:
        raise DomainError("devices.request_dates", status_code=422, field="needed_until")
    waiting = await db.execute(
        select(func.count())
        .select_from(EquipmentRequest)
        .where(col(EquipmentRequest.user_id) == actor.id, col(EquipmentRequest.status) == "open")
    )
    if waiting.scalar_one() >= 3:
        raise Conflict("devices.too_many_requests")
    request = EquipmentRequest(
        user_id=actor.id,
        kinds=",".join(dict.fromkeys(data.kinds)),
        reason=data.reason.strip(),
        needed_from=needed_from,
        needed_until=needed_until,
        telework_request_id=data.telework_request_id,
    )
    db.add(request)
    await db.flush()
    record(
        db,
        actor,
        "devices.request.create",
        "request",
        request.id,
        after={"kinds": request.kinds, "reason": request.reason},
        ip=ip,
    )
    return request


async def answer_request(
    db: AsyncSession, actor: Principal, request_id: int, data: schemas.RequestAnswerIn, ip: str = ""
) -> EquipmentRequest:
    """IT closes a request: fulfilled (optionally with the loan) or declined with a reason."""
    request = await db.get(EquipmentRequest, request_id)
    if request is None:
        raise NotFound("devices.request_not_found")
    if request.status != "open":
        raise Conflict("devices.request_not_open")
    if data.status == "declined" and not data.answer.strip():
        raise DomainError("devices.decline_reason", status_code=422, field="answer")
    if data.loan_id is not None:
        loan = await db.get(Loan, data.loan_id)
        if loan is None or loan.holder_id != request.user_id:
            raise DomainError("devices.request_other_holder", status_code=422, field="loan_id")
    request.status, request.answer = data.status, data.answer.strip()
    request.handled_by, request.handled_at, request.loan_id = actor.id, utcnow(), data.loan_id
    record(
        db,
        actor,
        f"devices.request.{data.status}",
        "request",
        request_id,
        after={"answer": request.answer, "loan_id": data.loan_id},
        ip=ip,
    )
    holder = await db.get(User, request.user_id)
    if holder is not None and data.status == "declined":
        await mail.enqueue(
            db,
            holder.email,
            "【機器申請】お申し込みについて / About your equipment request",
            f"{request.answer}\n\n/devices/mine",
            dedupe_key=f"devices.request.declined:{request_id}",
        )
    await db.flush()
    return request


async def cancel_request(
    db: AsyncSession, actor: Principal, request_id: int, ip: str = ""
) -> EquipmentRequest:
    request = await db.get(EquipmentRequest, request_id)
    if request is None or request.user_id != actor.id:
        raise NotFound("devices.request_not_found")
    if request.status != "open":
        raise Conflict("devices.request_not_open")
    request.status = "cancelled"
    record(db, actor, "devices.request.cancel", "request", request_id, ip=ip)
    await db.flush()
    return request


async def list_requests(
    db: AsyncSession, *, status: str | None = "open", user_id: int | None = None
) -> list[schemas.RequestRead]:
    query = (
        select(EquipmentRequest, col(User.name))
        .join(User, col(User.id) == col(EquipmentRequest.user_id))
        .order_by(col(EquipmentRequest.id).desc() if user_id else col(EquipmentRequest.id))
        .limit(500)
    )
    if status:
        query = query.where(col(EquipmentRequest.status) == status)
    if user_id is not None:
        query = query.where(col(EquipmentRequest.user_id) == user_id)
    return [request_read(r, name) for r, name in (await db.execute(query))]
