"""Arranging device data in tests: demo principals and valid identifiers."""

from __future__ import annotations

from sqlalchemy import select

from app.security import Principal
from auth.models import User
from auth.services import load_principal
from devices import schemas, services
from devices.checks import luhn_digit

IT = "100009"
EMPLOYEE = "100012"
UNIT_HEAD = "100006"  # heads 行政改革課 (GYOKAKU)
IN_UNIT = "100019"  # 山口 翼, in 行政改革課


def imei(n: int) -> str:
    body = f"35{n:012d}"
    return body + luhn_digit(body)


def iccid(n: int) -> str:
    body = f"898110{n:012d}"
    return body + luhn_digit(body)


def number(n: int) -> str:
    return f"+8190{n:08d}"


async def principal(db, employee_number: str) -> Principal:
    user_id = (await db.execute(select(User.id).where(User.employee_number == employee_number))).scalar_one()
    found = await load_principal(db, user_id)
    assert found is not None
    return found


async def device(db, actor: Principal, n: int, kind: str = "laptop", **kw):
    data = schemas.DeviceIn(asset_tag=f"PC-{n:05d}", kind=kind, maker="Dynabook", model="G83", **kw)  # type: ignore[arg-type]
    return await services.create_device(db, actor, data)


async def line(db, actor: Principal, n: int, **kw):
    return await services.create_line(db, actor, schemas.LineIn(number=number(n), **kw))
