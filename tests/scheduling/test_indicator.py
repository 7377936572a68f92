"""The indicator on a month with known answers: each figure checked live, closed, per unit and exported.

February 2027 in the demo org. 行政改革課 (GYOKAKU) requires start/end reports (the default policy);
契約監理課 (KEIYAKU) does not (a policy version from January). Expected: 7 instances by 4 people —
GYOKAKU 4 (3 people), KEIYAKU 3 (2 people).
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.errors import DomainError
from auth.models import OrgUnit, User
from scheduling import indicator
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import IndicatorMonth, Policy, TeleworkDay, TeleworkRequest, WorkReport

CONFIG = TeleworkConfig()
FEB = date(2027, 2, 1)
AFTER = date(2027, 3, 5)


async def ids(db) -> dict[str, int]:
    out = {}
    for number in ("100019", "100020", "100021", "100023", "100008"):
        out[number] = (await db.execute(select(User.id).where(User.employee_number == number))).scalar_one()
    for code in ("GYOKAKU", "KEIYAKU"):
        out[code] = (await db.execute(select(OrgUnit.id).where(OrgUnit.code == code))).scalar_one()
    return out


async def day(db, user: int, unit: int, when: str, state: str, part: str = "full", report: str | None = None):
    d = date.fromisoformat(when)
    req = TeleworkRequest(user_id=user, unit_id=unit, kind="single", first_day=d, last_day=d, part=part)
    db.add(req)
    await db.flush()
    row = TeleworkDay(request_id=req.id, user_id=user, unit_id=unit, day=d, part=part, state=state)
    db.add(row)
    await db.flush()
    if report == "start":
        db.add(
            WorkReport(
                day_id=row.id, user_id=user, started_at=datetime.combine(d, datetime.min.time(), TOKYO)
            )
        )
    elif report == "end_only":
        db.add(
            WorkReport(day_id=row.id, user_id=user, ended_at=datetime.combine(d, datetime.min.time(), TOKYO))
        )


@pytest.fixture
async def known_month(app, db) -> dict[str, int]:
    i = await ids(db)
    db.add(Policy(unit_id=i["KEIYAKU"], valid_from=date(2027, 1, 1), require_reports=False))
    a, b, c, d = i["100019"], i["100020"], i["100023"], i["100021"]
    g, k = i["GYOKAKU"], i["KEIYAKU"]
    await day(db, a, g, "2027-02-01", "approved", report="start")  # counts
    await day(db, a, g, "2027-02-02", "approved")  # no start report where one is required
    await day(db, a, g, "2027-02-03", "approved", part="am", report="start")  # a half day counts one
    await day(db, a, g, "2027-02-04", "rejected", report="start")
    await day(db, a, g, "2027-02-05", "withdrawn")
    await day(db, a, g, "2027-02-08", "expired")
    await day(db, a, g, "2027-02-09", "cancelled", report="start")
    await day(db, a, g, "2027-02-10", "submitted")
    await day(db, b, g, "2027-02-10", "approved", report="start")  # counts
    await day(db, b, g, "2027-02-12", "approved", report="end_only")  # an end without a start: no
    await day(db, c, k, "2027-02-15", "approved")  # KEIYAKU needs no report: counts
    await day(db, c, k, "2027-02-16", "approved", part="pm")  # counts
    await day(db, d, g, "2027-02-17", "approved", report="start")  # counts for GYOKAKU …
    await day(db, d, k, "2027-02-24", "approved")  # … and after moving to KEIYAKU, there
    await day(db, a, g, "2027-01-29", "approved", report="start")  # other months
    await day(db, a, g, "2027-03-01", "approved", report="start")
    await db.commit()
    return i


def by_unit(figures) -> dict[int | None, tuple[int, int]]:
    return {u.unit_id: (u.count, u.staff) for u in figures.units}


async def test_live_and_closed_figures_and_exports_agree(known_month, db, make_client, app, clock):
    i = known_month
    live = await indicator.count_month(db, CONFIG, FEB, until=date(2027, 2, 28))
    assert (live.count, live.staff) == (7, 4)
    assert by_unit(live) == {i["GYOKAKU"]: (4, 3), i["KEIYAKU"]: (3, 2)}
    partial = await indicator.count_month(db, CONFIG, FEB, until=date(2027, 2, 10))
    assert (partial.count, partial.staff) == (3, 2)  # 2/1, 2/3 (A) and 2/10 (B)

    row = await indicator.close_month(db, CONFIG, FEB, today=AFTER)
    await db.commit()
    assert row is not None and (row.count, row.staff, row.rule_version, row.revision) == (7, 4, 1, 1)
    assert await indicator.close_month(db, CONFIG, FEB, today=AFTER) is None  # closing twice: one row
    await db.commit()

    clock.set("2027-03-05 10:00")
    hr = await make_client("hr_admin")
    data = (await hr.get("/api/indicator/months?months=3")).json()
    feb = next(m for m in data["months"] if m["month"] == "2027-02")
    assert (feb["count"], feb["staff"], feb["closed"], feb["rule_version"]) == (7, 4, True, 1)
    assert {u["unit_id"]: (u["count"], u["staff"]) for u in feb["units"]} == by_unit(live)
    march = data["months"][-1]
    assert march["month"] == "2027-03" and march["closed"] is False and march["count"] == 1
    assert "開始報告" in data["rules"]["1"]["ja"]

    exported = await hr.get("/api/indicator/months.csv?months=3")
    assert exported.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["年月", "実施回数", "実施職員数"]
    assert ["2027-02", "7", "4"] == next(r for r in rows if r[0] == "2027-02")[:3]

    opendata = await hr.get("/api/indicator/opendata.csv")
    rows = list(csv.reader(io.StringIO(opendata.content.decode("utf-8-sig"))))
    assert rows[0] == ["年月", "実施回数", "目標値", "基準値", "実施職員数", "集計ルール版"]
    assert ["2027/02", "7", "15000", "1200", "4", "1"] in rows
    assert not any(r[0] == "2027/03" for r in rows)  # the running month is not open data yet

    page = await hr.get("/indicator")
    assert page.status_code == 200 and "<svg" in page.text and "2027-02" in page.text
    assert "貸出中の端末" in page.text  # devices' figure, through the module's measure hook


async def test_a_unit_head_sees_their_subtree_only(known_month, make_client, db, clock):
    await indicator.close_month(db, CONFIG, FEB, today=AFTER)
    await db.commit()
    clock.set("2027-03-05 10:00")
    head = await make_client(login="100006")  # heads 行政改革課 only
    data = (await head.get("/api/indicator/months?months=2")).json()
    feb = next(m for m in data["months"] if m["month"] == "2027-02")
    assert feb["count"] == 4 and [u["unit_id"] for u in feb["units"]] == [known_month["GYOKAKU"]]
    assert (await head.get(f"/api/indicator/months?unit_id={known_month['KEIYAKU']}")).status_code == 403
    assert (await (await make_client("employee")).get("/api/indicator/months")).status_code == 403


async def test_a_correction_is_a_new_revision_with_a_reason(known_month, db, make_client, clock):
    await indicator.close_month(db, CONFIG, FEB, today=AFTER)
    await db.commit()
    # A start report recorded late for 2/2: the closed figure does not move …
    late = (await db.execute(select(TeleworkDay).where(TeleworkDay.day == date(2027, 2, 2)))).scalar_one()
    db.add(WorkReport(day_id=late.id, user_id=late.user_id, started_at=datetime(2027, 2, 2, 9, tzinfo=TOKYO)))
    await db.commit()
    clock.set("2027-03-05 10:00")
    hr = await make_client("hr_admin")
    feb = lambda d: next(m for m in d["months"] if m["month"] == "2027-02")  # noqa: E731
    assert feb((await hr.get("/api/indicator/months")).json())["count"] == 7
    # … until HR records a revision with the reason; the first figure stays in the history.
    r = await hr.post("/api/indicator/months/2027-02/revisions", json={"reason": "2/2 の開始報告の遅れ"})
    assert r.status_code == 201 and r.json()["revision"] == 2 and r.json()["count"] == 8
    month = feb((await hr.get("/api/indicator/months")).json())
    assert month["count"] == 8 and month["revision"] == 2 and month["history"][0]["count"] == 7
    assert (await hr.post("/api/indicator/months/2027-02/revisions", json={"reason": ""})).status_code == 400
    await db.rollback()
    actions = (
        await db.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "indicator_month"))
    ).scalars()
    assert sorted(actions) == ["indicator.month_closed", "indicator.month_corrected"]


async def test_closing_at_once_from_several_workers_makes_one_row(known_month, app):
    async def close_in_own_session():
        async with app.state.db_sessions() as s:
            row = await indicator.close_month(s, CONFIG, FEB, today=AFTER)
            await s.commit()
            return row

    results = await asyncio.gather(*(close_in_own_session() for _ in range(4)))
    assert sum(r is not None for r in results) == 1
    async with app.state.db_sessions() as s:
        assert (await s.execute(select(func.count()).select_from(IndicatorMonth))).scalar_one() == 1


async def test_the_job_closes_finished_months_once_and_never_the_running_one(known_month, db):
    assert await indicator.close_due(db, CONFIG, AFTER) == 2  # January and February 2027
    await db.commit()
    assert await indicator.close_due(db, CONFIG, AFTER) == 0
    months = (await db.execute(select(IndicatorMonth.month).order_by(IndicatorMonth.month))).scalars().all()
    assert months == [date(2027, 1, 1), FEB]
    with pytest.raises(DomainError):
        await indicator.close_month(db, CONFIG, date(2027, 3, 1), today=AFTER)


async def test_targets_per_fiscal_year(known_month, make_client, db, clock):
    clock.set("2027-03-05 10:00")
    hr = await make_client("hr_admin")
    r = await hr.put("/api/indicator/targets/2026", json={"monthly_target": 9000, "baseline": 1200})
    assert r.status_code == 200
    await indicator.close_month(db, CONFIG, FEB, today=AFTER)  # FY2026 runs April 2026 – March 2027
    await db.commit()
    feb = next(m for m in (await hr.get("/api/indicator/months")).json()["months"] if m["month"] == "2027-02")
    assert feb["target"] == 9000
    assert (
        await hr.put("/api/indicator/targets/2026", json={"monthly_target": -1, "baseline": 0})
    ).status_code == 400


def test_cli_closes_a_month(tmp_path, monkeypatch):
    from app.__main__ import main

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("APP_ENV", "dev")
    with pytest.raises(SystemExit) as done:
        main(["indicator", "close", "2020-09"])
    assert done.value.code == 0
    with pytest.raises(SystemExit) as bad:
        main(["indicator", "close", "2099-01"])
    assert bad.value.code == 2
