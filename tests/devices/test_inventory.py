"""Inventory and loan rules as services (no HTTP): identifiers, duplicates, secrets, loans, incidents."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.audit import AuditEvent
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.mail import OutboxMessage
from devices import loans, schemas, services
from devices.models import Device, Loan, LoanItem, SecretReveal, SimCard
from tests.devices.helpers import EMPLOYEE, IN_UNIT, IT, UNIT_HEAD, device, iccid, imei, line, principal

pytestmark = pytest.mark.usefixtures("app")


async def test_device_rules_and_audit(db):
    it = await principal(db, IT)
    d = await device(db, it, 1, imei=imei(1))
    await db.commit()
    assert d.status == "in_stock" and d.asset_tag == "PC-00001"
    with pytest.raises(Conflict, match=r"devices.duplicate_tag"):
        await device(db, it, 1)
    await db.rollback()
    with pytest.raises(Conflict, match=r"devices.duplicate_imei"):
        await device(db, it, 2, imei=imei(1))
    await db.rollback()
    with pytest.raises(DomainError, match=r"devices.bad_imei"):
        await device(db, it, 3, imei="123456789012345")
    await db.rollback()
    count = len((await db.execute(select(Device))).scalars().all())
    assert count == 1  # nothing half written
    events = (await db.execute(select(AuditEvent).where(AuditEvent.entity_type == "device"))).scalars().all()
    assert [e.action for e in events] == ["devices.device.create"]


async def test_sim_secrets_are_encrypted_never_logged_and_every_reveal_is_recorded(db, settings):
    it = await principal(db, IT)
    box = services.secret_box(settings.secret_key)
    ln = await line(db, it, 1)
    sim = await services.create_sim(
        db, it, box, schemas.SimIn(iccid=iccid(1), line_id=ln.id, pin="1234", puk="87654321")
    )
    await db.commit()
    raw = (await db.execute(select(SimCard.pin_enc, SimCard.puk_enc))).one()
    assert "1234" not in raw[0] and "87654321" not in raw[1]
    with pytest.raises(DomainError, match=r"devices.reveal_reason"):
        await services.reveal(db, it, box, sim.id, "  ab ")
    shown = await services.reveal(db, it, box, sim.id, "本人からPINロック解除の依頼")
    await db.commit()
    assert (shown.pin, shown.puk) == ("1234", "87654321")
    log = await services.reveal_log(db, sim.id)
    assert [(r.user_id, r.reason) for r in log] == [(it.id, "本人からPINロック解除の依頼")]
    assert len((await db.execute(select(SecretReveal))).scalars().all()) == 1
    trail = " ".join(f"{e.before} {e.after}" for e in (await db.execute(select(AuditEvent))).scalars().all())
    assert "1234" not in trail and "87654321" not in trail
    assert "devices.sim.reveal" in {e.action for e in (await db.execute(select(AuditEvent))).scalars()}
    read = (await services.sim_reads(db, [sim]))[0]
    assert read.has_pin and not hasattr(read, "pin")


async def test_bundle_checkout_accept_return(db):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 1)
    router = await device(db, it, 2, kind="router")
    ln = await line(db, it, 1)
    await db.commit()
    loan = await loans.checkout(
        db,
        it,
        schemas.LoanIn(
            holder_id=emp.id,
            device_ids=[pc.id, router.id],
            line_ids=[ln.id],
            expected_return=services.today() + timedelta(days=30),
        ),
    )
    await db.commit()
    assert loan.status == "awaiting_acceptance"
    assert (pc.status, router.status, ln.status) == ("on_loan", "on_loan", "on_loan")
    loan_id, pc_id, ln_id = loan.id, pc.id, ln.id
    mail = (await db.execute(select(OutboxMessage))).scalars().all()
    assert [m.to_addr for m in mail] == ["sakura.yamamoto@example.lg.jp"]
    with pytest.raises(Forbidden):
        await loans.accept(db, it, loan_id, schemas.AcceptIn(terms_version=loans.TERMS_VERSION, agree=True))
    await db.rollback()
    with pytest.raises(Conflict, match=r"devices.terms_changed"):
        await loans.accept(db, emp, loan_id, schemas.AcceptIn(terms_version="1999", agree=True))
    await db.rollback()
    accepted = await loans.accept(
        db, emp, loan_id, schemas.AcceptIn(terms_version=loans.TERMS_VERSION, agree=True)
    )
    await db.commit()
    assert (
        accepted.status == "active" and accepted.accepted_at and accepted.terms_version == loans.TERMS_VERSION
    )
    with pytest.raises(Conflict, match=r"devices.already_accepted"):
        await loans.accept(db, emp, loan_id, schemas.AcceptIn(terms_version=loans.TERMS_VERSION, agree=True))
    await db.rollback()
    items = (await db.execute(select(LoanItem).where(LoanItem.loan_id == loan_id))).scalars().all()
    pc_item = next(i for i in items if i.device_id == pc_id)
    back = await loans.return_loan(
        db,
        it,
        loan_id,
        schemas.ReturnIn(
            items=[schemas.ReturnItemIn(item_id=pc_item.id, condition="damaged", note="画面に傷")]
        ),
    )
    await db.commit()
    assert back.status == "returned"
    await db.refresh(pc)
    await db.refresh(router)
    await db.refresh(ln)
    assert (pc.status, router.status, ln.status) == ("in_repair", "in_stock", "in_stock")
    assert ln.quarantine_until == services.today() + timedelta(days=loans.QUARANTINE_DAYS)
    with pytest.raises(Conflict, match=r"devices.already_returned"):
        await loans.return_loan(db, it, loan_id, schemas.ReturnIn())
    await db.rollback()
    # The released number waits out its quarantine before anyone else gets it.
    with pytest.raises(Conflict, match=r"devices.line_quarantined"):
        await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, line_ids=[ln_id]))
    await db.rollback()
    history = await services.history(db, "device", pc_id)
    assert [h.action for h in history] == [
        "devices.device.create",
        "devices.loan.checkout",
        "devices.loan.accept",
        "devices.loan.return",
    ]
    returned = history[-1].detail["items"]
    assert {
        "device": "PC-00001",
        "condition": "damaged",
        "note": "画面に傷",
        "status": "in_repair",
    } in returned


async def test_lending_rules(db):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 1)
    other = await device(db, it, 2)
    await db.commit()
    pc_id, other_id = pc.id, other.id
    await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[pc_id]))
    await db.commit()
    with pytest.raises(Conflict, match=r"devices.already_on_loan"):
        await loans.checkout(db, it, schemas.LoanIn(holder_id=it.id, device_ids=[other_id, pc_id]))
    await db.rollback()
    assert (await db.get(Device, other_id)).status == "in_stock"  # nothing half written
    assert len((await db.execute(select(Loan))).scalars().all()) == 1
    await services.set_device_status(db, it, other_id, schemas.StatusIn(status="retired"))
    await db.commit()
    with pytest.raises(Conflict, match=r"devices.cannot_lend_retired"):
        await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[other_id]))
    await db.rollback()
    for bad, key in (
        (schemas.LoanIn(holder_id=emp.id), "devices.loan_empty"),
        (schemas.LoanIn(holder_id=emp.id, device_ids=[pc_id, pc_id]), "devices.loan_repeated_item"),
        (schemas.LoanIn(holder_id=999999, device_ids=[other_id]), "devices.holder_not_found"),
        (
            schemas.LoanIn(
                holder_id=emp.id, device_ids=[other_id], expected_return=services.today() - timedelta(days=1)
            ),
            "devices.bad_return_date",
        ),
    ):
        with pytest.raises(DomainError, match=key):
            await loans.checkout(db, it, bad)
        await db.rollback()


async def test_the_database_refuses_a_second_open_loan_item(db):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 1)
    await db.commit()
    first = await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[pc.id]))
    await db.commit()
    pc_id, first_id = pc.id, first.id
    # Bypass the service's checks: the constraint alone must stop a second open item.
    second = Loan(holder_id=emp.id)
    db.add(second)
    await db.flush()
    db.add(LoanItem(loan_id=second.id, device_id=pc_id, open_key=f"device:{pc_id}"))
    with pytest.raises(IntegrityError):
        await db.flush()
    await db.rollback()
    await loans.return_loan(db, it, first_id, schemas.ReturnIn())
    await db.commit()
    again = await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[pc_id]))
    await db.commit()
    assert again.id != first_id


async def test_lost_device_marks_it_requests_line_suspension_and_opens_an_incident(db, settings):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    phone = await device(db, it, 1, kind="smartphone", imei=imei(7))
    ln = await line(db, it, 1)
    await services.create_sim(
        db,
        it,
        services.secret_box(settings.secret_key),
        schemas.SimIn(iccid=iccid(2), line_id=ln.id, device_id=phone.id),
    )
    await db.commit()
    loan = await loans.checkout(
        db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[phone.id], line_ids=[ln.id])
    )
    await db.commit()
    incident = await services.report_lost(
        db, it, phone.id, schemas.IncidentIn(kind="stolen", description="電車内で盗難")
    )
    await db.commit()
    phone_id, incident_id, loan_id = phone.id, incident.id, loan.id
    assert phone.status == "lost"
    assert incident.line_id == ln.id and incident.loan_id == loan.id
    assert incident.reported_at and incident.device_marked_at and incident.line_suspension_requested_at
    assert incident.line_suspended_at is None
    with pytest.raises(Conflict, match=r"devices.already_lost"):
        await services.report_lost(db, it, phone_id, schemas.IncidentIn(kind="lost"))
    await db.rollback()
    incident = await services.incident_step(db, it, incident_id, "line_suspended")
    await db.commit()
    await db.refresh(ln)
    assert ln.status == "suspended" and incident.line_suspended_at
    with pytest.raises(Conflict, match=r"devices.cannot_lend_lost"):
        await loans.checkout(db, it, schemas.LoanIn(holder_id=it.id, device_ids=[phone_id]))
    await db.rollback()
    back = await loans.return_loan(db, it, loan_id, schemas.ReturnIn())
    await db.commit()
    assert back.status == "returned"
    await db.refresh(phone)
    await db.refresh(ln)
    assert phone.status == "lost" and ln.status == "suspended"
    action = (
        await db.execute(select(AuditEvent).where(AuditEvent.action == "devices.incident.open"))
    ).scalar_one()
    assert json.loads(action.after)["line_suspension_requested"] is True


async def test_who_sees_which_loans(db):
    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    head = await principal(db, UNIT_HEAD)
    member = await principal(db, IN_UNIT)
    a = await device(db, it, 1)
    b = await device(db, it, 2)
    await db.commit()
    mine = await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[a.id]))
    theirs = await loans.checkout(db, it, schemas.LoanIn(holder_id=member.id, device_ids=[b.id]))
    await db.commit()
    assert [ln.id for ln in (await loans.list_loans(db, head)).items] == [theirs.id]
    assert [ln.id for ln in (await loans.list_loans(db, emp)).items] == [mine.id]
    assert {ln.id for ln in (await loans.list_loans(db, it)).items} == {mine.id, theirs.id}
    mine_id, theirs_id = mine.id, theirs.id
    with pytest.raises(NotFound):
        await loans.loan_for(db, head, mine_id)
    assert (await loans.loan_for(db, head, theirs_id)).id == theirs_id
    found = await loans.list_loans(db, it, q="PC-00002")
    assert [ln.id for ln in found.items] == [theirs_id]


async def test_search_and_filters(db):
    it = await principal(db, IT)
    for n in range(1, 8):
        await device(db, it, n, kind="router" if n % 2 else "laptop", serial=f"SN{n}00")
    await db.commit()
    page = await services.list_devices(db, kind="router", per_page=2, page=2)
    assert page.total == 4 and [d.asset_tag for d in page.items] == ["PC-00005", "PC-00007"]
    assert [d.asset_tag for d in (await services.list_devices(db, q="sn3")).items] == ["PC-00003"]
    assert (await services.list_devices(db, q="%")).total == 0
    ln = await line(db, it, 12345678)
    await db.commit()
    assert [x.id for x in (await services.list_lines(db, q="090-1234-5678")).items] == [ln.id]


async def test_an_equipment_request_takes_its_period_from_an_approved_telework_request(db):
    from scheduling.models import TeleworkDay, TeleworkRequest

    it = await principal(db, IT)
    emp = await principal(db, EMPLOYEE)
    start = services.today() + timedelta(days=3)
    req = TeleworkRequest(
        user_id=emp.id, unit_id=emp.unit_id, kind="range", first_day=start, last_day=start + timedelta(days=9)
    )
    db.add(req)
    await db.flush()
    for offset, state in ((0, "approved"), (4, "approved"), (9, "submitted")):
        db.add(
            TeleworkDay(
                request_id=req.id,
                user_id=emp.id,
                unit_id=emp.unit_id,
                day=start + timedelta(days=offset),
                state=state,
            )
        )
    pc = await device(db, it, 1)
    await db.commit()
    asked = await loans.create_request(
        db, emp, schemas.RequestIn(kinds=["laptop"], telework_request_id=req.id)
    )
    await db.commit()
    assert (asked.needed_from, asked.needed_until) == (start, start + timedelta(days=4))
    loan = await loans.checkout(
        db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[pc.id], request_id=asked.id)
    )
    await db.commit()
    assert loan.expected_return == start + timedelta(days=4) and loan.telework_request_id == req.id
    assert asked.status == "fulfilled" and asked.loan_id == loan.id
    with pytest.raises(DomainError, match=r"devices.telework_not_found"):
        await loans.create_request(db, it, schemas.RequestIn(kinds=["laptop"], telework_request_id=req.id))
    await db.rollback()
