"""Admin forms: mistakes are explained on the same page and nothing is written; good input is saved."""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import func, select

from auth.models import OrgUnit, RoleAssignment, User


def form(client, **fields):
    return {**fields, "_csrf_token": client.headers["x-csrftoken"]}


async def test_new_person_form_explains_errors_then_saves(hr, db):
    bad = form(hr, employee_number="200100", name="", email="not-mail", unit_code="JINJI")
    r = await hr.post("/admin/users/new", data=bad)
    assert r.status_code == 422
    assert 'role="alert"' in r.text and 'value="200100"' in r.text  # what was typed is kept
    assert (
        await db.execute(select(func.count()).select_from(User).where(User.employee_number == "200100"))
    ).scalar() == 0
    await db.rollback()
    good = form(
        hr,
        employee_number="200100",
        name="新規 花子",
        kana="しんき はなこ",
        email="hanako.shinki@example.lg.jp",
        unit_code="JINJI",
        employment_type="fixed_term",
        locale="ja",
    )
    r = await hr.post("/admin/users/new", data=good)
    assert r.status_code == 303
    page = await hr.get(r.headers["location"])
    assert "保存しました" in page.text and "新規 花子" in page.text and "会計年度任用職員" in page.text


async def test_duplicate_number_in_form_is_explained(hr):
    r = await hr.post(
        "/admin/users/new", data=form(hr, employee_number="100012", name="x", email="x@example.lg.jp")
    )
    assert r.status_code == 409
    assert "100012" in r.text


async def test_edit_and_deactivate_person(hr, db):
    uid = (await db.execute(select(User.id).where(User.employee_number == "100019"))).scalar_one()
    await db.rollback()
    r = await hr.post(
        f"/admin/users/{uid}",
        data=form(
            hr,
            name="山口 翼",
            email="tsubasa.y@example.lg.jp",
            unit_code="JOHO",
            employment_type="regular",
            locale="en",
        ),
    )
    assert r.status_code == 303
    user = await db.get(User, uid)
    assert user.email == "tsubasa.y@example.lg.jp" and user.active is False  # unticked 'active'
    unit = await db.get(OrgUnit, user.unit_id)
    assert unit.code == "JOHO"


async def test_sysadmin_sets_roles_with_headed_unit(sysadmin, db):
    uid = (await db.execute(select(User.id).where(User.employee_number == "100015"))).scalar_one()
    joho = (await db.execute(select(OrgUnit.id).where(OrgUnit.code == "JOHO-NW"))).scalar_one()
    await db.rollback()
    data = form(sysadmin, head_unit_id=str(joho))
    body = urlencode([*data.items(), ("roles", "employee"), ("roles", "unit_head")])
    headers = {"content-type": "application/x-www-form-urlencoded"}
    r = await sysadmin.post(f"/admin/users/{uid}/roles", content=body, headers=headers)
    assert r.status_code == 303
    rows = (
        await db.execute(
            select(RoleAssignment.role, RoleAssignment.unit_id).where(RoleAssignment.user_id == uid)
        )
    ).all()
    assert sorted(rows, key=str) == sorted([("employee", None), ("unit_head", joho)], key=str)


async def test_new_unit_form(hr):
    r = await hr.post("/admin/units", data=form(hr, code="bad code!", name="x", level="ka"))
    assert r.status_code == 422
    r = await hr.post(
        "/admin/units",
        data=form(hr, code="JOHO-SEC", name="情報セキュリティ係", level="kakari", parent_code="JOHO"),
    )
    assert r.status_code == 303
    page = (await hr.get("/admin/units")).text
    assert "情報セキュリティ係" in page
    assert "<title>組織 | テレワークハブ</title>" in page
    assert page.count('id="new-unit-heading"') == 1


async def test_sysadmin_signs_a_person_out_everywhere(sysadmin, make_client, db):
    phone, laptop = await make_client("employee"), await make_client("employee")
    uid = (await phone.get("/api/me")).json()["id"]
    r = await sysadmin.post(f"/admin/users/{uid}/sessions/end", data=form(sysadmin))
    assert r.status_code == 303
    assert (await phone.get("/api/me")).status_code == 401 and (
        await laptop.get("/api/me")
    ).status_code == 401
    r = await sysadmin.delete(f"/api/users/{uid}/sessions")
    assert r.json() == {"sessions_ended": 0}
