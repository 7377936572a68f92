"""Demo inventory for the embedded default: a few laptops, routers and phones, lines, SIMs and loans.

Runs once, on an empty device table, when the demo organisation is seeded (`SEED_DEMO`, `APP_ENV=dev`);
set `DEVICES_DEMO_DATA=0` to start empty. Goes through the services, so every item has its history.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from auth.models import User
from auth.services import load_principal
from devices import loans, reports, schemas, services
from devices.checks import luhn_digit
from devices.models import Device, Loan, UsageRecord

DEVICES = [
    # asset tag, kind, maker, model
    ("PC-0001", "laptop", "Dynabook", "G83/KW"),
    ("PC-0002", "laptop", "Dynabook", "G83/KW"),
    ("PC-0003", "laptop", "富士通", "LIFEBOOK U9313"),
    ("PC-0004", "laptop", "富士通", "LIFEBOOK U9313"),
    ("PC-0005", "laptop", "NEC", "VersaPro VKT16"),
    ("PC-0006", "laptop", "NEC", "VersaPro VKT16"),
    ("WR-0001", "router", "NEC", "Aterm MP02LN"),
    ("WR-0002", "router", "NEC", "Aterm MP02LN"),
    ("WR-0003", "router", "Speed Wi-Fi", "5G X12"),
    ("SP-0001", "smartphone", "Sharp", "AQUOS sense8"),
    ("SP-0002", "smartphone", "Sharp", "AQUOS sense8"),
    ("TB-0001", "tablet", "Apple", "iPad 10th"),
]


def _imei(n: int) -> str:
    body = f"35209911{n:06d}"
    return body + luhn_digit(body)


def _iccid(n: int) -> str:
    body = f"8981100{n:011d}"
    return body + luhn_digit(body)


async def seed_if_empty(db: AsyncSession, secret_key: str) -> int:
    """Add the demo inventory when there are no devices; returns the number of devices written."""
    if (await db.execute(select(func.count()).select_from(Device))).scalar_one():
        return 0
    ids: dict[str, int] = {
        number: user_id or 0
        for number, user_id in (await db.execute(select(col(User.employee_number), col(User.id)))).all()
    }
    if "100009" not in ids:
        return 0
    it = await load_principal(db, ids["100009"])
    assert it is not None
    today = services.today()
    carrier = await services.create_carrier(db, it, schemas.CarrierIn(name="NTTドコモ", mcc="440", mnc="10"))
    data30 = await services.create_plan(
        db, it, schemas.PlanIn(name="データ30GB", carrier_id=carrier.id, monthly_fee=2980, data_gb=30)
    )
    voice = await services.create_plan(
        db, it, schemas.PlanIn(name="音声＋データ5GB", carrier_id=carrier.id, monthly_fee=3850, data_gb=5)
    )
    devices: dict[str, int] = {}
    for n, (tag, kind, maker, model) in enumerate(DEVICES, start=1):
        device = await services.create_device(
            db,
            it,
            schemas.DeviceIn(
                asset_tag=tag,
                kind=kind,  # type: ignore[arg-type]
                maker=maker,
                model=model,
                serial=f"DEMO{n:04d}",
                imei=_imei(n) if kind in ("router", "smartphone") else None,
                purchase_date=today - timedelta(days=400 + n),
                cost=148_000 if kind == "laptop" else 32_000,
                warranty_end=today + timedelta(days=700 - n),
            ),
        )
        devices[tag] = device.id or 0
    lines = []
    for n in range(1, 6):
        lines.append(
            await services.create_line(
                db,
                it,
                schemas.LineIn(
                    number=f"090-0000-10{n:02d}",
                    carrier_id=carrier.id,
                    plan_id=(voice if n > 3 else data30).id,
                    contract_start=today - timedelta(days=700),
                    min_term_end=today + timedelta(days=25 if n == 1 else 365),
                    notice_days=20,
                ),
            )
        )
    box = services.secret_box(secret_key)
    for n, (tag, line) in enumerate((("WR-0001", lines[0]), ("WR-0002", lines[1]), ("SP-0001", lines[3])), 1):
        await services.create_sim(
            db,
            it,
            box,
            schemas.SimIn(
                iccid=_iccid(n),
                line_id=line.id,
                device_id=devices[tag],
                pin=f"{1000 + n}",
                puk=f"{12345670 + n}",
            ),
        )
    tsubasa = await load_principal(db, ids["100019"])  # 行政改革課: the demo unit head sees this loan
    assert tsubasa is not None
    active = await loans.checkout(
        db,
        it,
        schemas.LoanIn(
            holder_id=tsubasa.id,
            device_ids=[devices["PC-0001"], devices["WR-0001"]],
            line_ids=[lines[0].id or 0],
            expected_return=today + timedelta(days=60),
        ),
    )
    await loans.accept(
        db, tsubasa, active.id or 0, schemas.AcceptIn(terms_version=loans.TERMS_VERSION, agree=True)
    )
    await loans.checkout(
        db,
        it,
        schemas.LoanIn(
            holder_id=ids["100020"],
            device_ids=[devices["PC-0002"]],
            expected_return=today + timedelta(days=30),
        ),
    )
    late = await loans.checkout(
        db,
        it,
        schemas.LoanIn(holder_id=ids["100023"], device_ids=[devices["PC-0003"]], line_ids=[lines[1].id or 0]),
    )
    await db.execute(
        update(Loan).where(col(Loan.id) == late.id).values(expected_return=today - timedelta(days=3))
    )
    asker = await load_principal(db, ids["100021"])
    assert asker is not None
    await loans.create_request(
        db, asker, schemas.RequestIn(kinds=["laptop", "router"], reason="来月から週2日の在宅勤務を始めるため")
    )
    await services.set_device_status(
        db, it, devices["PC-0006"], schemas.StatusIn(status="in_repair", note="キーボード不良")
    )
    first = today.replace(day=1)
    for back in (1, 2, 3):
        month = reports.months_back(first, back)
        for line in lines:
            used = 0 if line is lines[2] else 1024 * (back + 2)
            db.add(UsageRecord(line_id=line.id or 0, month=month, data_mb=used))
    await db.flush()
    return len(DEVICES)
