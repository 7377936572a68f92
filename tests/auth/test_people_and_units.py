"""People and the org tree: scope of unit heads, admin changes, audit, concurrency."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.audit import AuditEvent
from auth.models import User


async def test_unit_head_sees_exactly_their_subtree(make_client):
    head = await make_client(login="100002")  # 佐藤 花子 heads 総務部
    r = await head.get("/api/users", params={"limit": 500})
    assert r.status_code == 200
    codes = {u["unit"]["code"] for u in r.json()["items"]}
    assert codes == {"SOMU-SOMU", "JINJI", "JOHO", "JOHO-NW"}
    outsider = (await head.get("/api/users", params={"q": "山口"})).json()
    assert outsider["total"] == 0


async def test_search_and_pagination(hr):
    page1 = (await hr.get("/api/users", params={"limit": 10, "offset": 0})).json()
    page2 = (await hr.get("/api/users", params={"limit": 10, "offset": 10})).json()
    assert page1["total"] == page2["total"] == 31
    assert len(page1["items"]) == 10
    assert not {u["id"] for u in page1["items"]} & {u["id"] for u in page2["items"]}
    found = (await hr.get("/api/users", params={"q": "やまだ"})).json()
    assert [u["employee_number"] for u in found["items"]] == ["100001"]


async def test_create_update_and_audit(hr, db):
    r = await hr.post(
        "/api/users",
        json={
            "employee_number": "200001",
            "name": "新人 太郎",
            "kana": "しんじん たろう",
            "email": "Shinjin@Example.lg.jp",
            "unit_code": "JINJI",
            "password": "a-long-password-1",
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == "shinjin@example.lg.jp"
    assert [x["role"] for x in user["roles"]] == ["employee"]
    r = await hr.patch(
        f"/api/users/{user['id']}", json={"unit_code": "JOHO", "employment_type": "fixed_term"}
    )
    assert r.status_code == 200
    assert r.json()["unit"]["code"] == "JOHO"
    events = (
        (
            await db.execute(
                select(AuditEvent).where(
                    AuditEvent.entity_type == "user", AuditEvent.entity_id == str(user["id"])
                )
            )
        )
        .scalars()
        .all()
    )
    assert [e.action for e in events] == ["user.create", "user.update"]
    assert '"password_hash": "***"' in events[0].after
    assert "argon2" not in (events[0].after or "")


async def test_roles_are_sysadmin_only_and_unit_head_needs_unit(sysadmin, hr, db):
    uid = (await db.execute(select(User.id).where(User.employee_number == "100012"))).scalar_one()
    await db.rollback()
    assert (await hr.put(f"/api/users/{uid}/roles", json={"roles": [{"role": "auditor"}]})).status_code == 403
    r = await sysadmin.put(f"/api/users/{uid}/roles", json={"roles": [{"role": "unit_head"}]})
    assert r.status_code == 422
    units = (await sysadmin.get("/api/units")).json()["items"]
    jinji = next(u for u in units if u["code"] == "JINJI")
    r = await sysadmin.put(
        f"/api/users/{uid}/roles",
        json={"roles": [{"role": "employee"}, {"role": "unit_head", "unit_id": jinji["id"]}]},
    )
    assert r.status_code == 200
    assert sorted(x["role"] for x in r.json()) == ["employee", "unit_head"]


async def test_unit_tree_cannot_form_a_cycle(hr):
    units = {u["code"]: u for u in (await hr.get("/api/units")).json()["items"]}
    r = await hr.patch(f"/api/units/{units['SOMU']['id']}", json={"parent_code": "JOHO-NW"})
    assert r.status_code == 422
    assert "下位" in r.json()["detail"]
    r = await hr.post(
        "/api/units",
        json={"code": "JOHO-SEC", "name": "情報セキュリティ係", "level": "kakari", "parent_code": "JOHO"},
    )
    assert r.status_code == 201
    assert r.json()["parent_code"] == "JOHO"


async def test_concurrent_creates_of_the_same_person_make_one(make_client, db):
    clients = [await make_client("hr_admin") for _ in range(5)]
    body = {"employee_number": "300001", "name": "同時 作成", "email": "same@example.lg.jp"}
    results = await asyncio.gather(*(c.post("/api/users", json=body) for c in clients))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1, statuses
    assert all(s == 409 for s in statuses if s != 201), statuses
    count = (
        await db.execute(select(func.count()).select_from(User).where(User.employee_number == "300001"))
    ).scalar()
    assert count == 1


async def test_users_page_lists_and_paginates(make_client):
    admin = await make_client("hr_admin")
    r = await admin.get("/admin/users")
    assert r.status_code == 200
    assert "1 / 2ページ" in r.text and "全31件" in r.text
    assert "山田 太郎" in (await admin.get("/admin/users", params={"page": 2})).text
    r = await admin.get("/admin/users", params={"q": "該当なし"})
    assert "該当する職員はいません" in r.text
