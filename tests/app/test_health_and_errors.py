"""Health endpoints, problem details, friendly pages, and bad input that writes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from app.audit import AuditEvent
from auth.models import OrgUnit, User


async def test_health(anon):
    assert (await anon.get("/health/live")).json() == {"status": "ok"}
    r = await anon.get("/health/ready")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert checks["database"] == "ok"


async def test_ready_is_503_when_the_database_is_gone(app, anon):
    await app.state.engine.dispose()
    original = app.state.db_sessions

    class Broken:
        def __call__(self):
            raise ConnectionError("database unreachable")

    app.state.db_sessions = Broken()
    try:
        r = await anon.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["checks"]["database"].startswith("error")
    finally:
        app.state.db_sessions = original


async def test_unknown_api_path_is_problem_json_and_page_is_friendly(employee):
    r = await employee.get("/api/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await employee.get("/no-such-page", headers={"accept": "text/html"})
    assert r.status_code == 404
    assert "<h1>" in r.text and "ホームに戻る" in r.text


async def _counts(db):
    await db.rollback()
    users = (await db.execute(select(func.count()).select_from(User))).scalar_one()
    units = (await db.execute(select(func.count()).select_from(OrgUnit))).scalar_one()
    events = (await db.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
    return users, units, events


async def test_bad_input_gets_clear_4xx_and_writes_nothing(hr, db):
    before = await _counts(db)
    good = {
        "employee_number": "200001",
        "name": "新人 太郎",
        "email": "new@example.lg.jp",
        "unit_code": "JINJI",
    }
    cases = [
        (
            "malformed json",
            {"content": b'{"name": ', "headers": {"content-type": "application/json"}},
            "JSON",
        ),
        ("wrong type", {"json": {**good, "name": 12}}, "name"),
        ("over-long", {"json": {**good, "name": "あ" * 101}}, "100"),
        ("unknown field", {"json": {**good, "salary": 1}}, "salary"),
        ("missing field", {"json": {"name": "x"}}, "employee_number"),
        ("bad email", {"json": {**good, "email": "not-an-email"}}, "email"),
        ("unknown unit", {"json": {**good, "unit_code": "NOPE"}}, "NOPE"),
        ("bad choice", {"json": {**good, "employment_type": "boss"}}, "employment_type"),
    ]
    for label, kwargs, expect in cases:
        r = await hr.post("/api/users", **kwargs)
        assert 400 <= r.status_code < 500, (label, r.status_code, r.text)
        body = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert expect in body["detail"], (label, body)
    assert await _counts(db) == before


async def test_duplicate_employee_number_is_409_and_nothing_written(hr, db):
    before = await _counts(db)
    r = await hr.post(
        "/api/users", json={"employee_number": "100012", "name": "重複", "email": "dup@example.lg.jp"}
    )
    assert r.status_code == 409
    assert "100012" in r.json()["detail"]
    assert await _counts(db) == before


async def test_english_error_messages(hr):
    r = await hr.post("/api/users", json={"name": "x" * 101}, headers={"accept-language": "en"})
    # hr's own locale is Japanese: the person's choice wins over the header.
    assert "入力内容" in r.json()["detail"]
    await hr.patch("/api/me", json={"locale": "en"})
    r = await hr.post("/api/users", json={"name": "x" * 101})
    assert r.json()["detail"].startswith("Some input is not valid.")
