"""HR's telework admin page (policies, closures, emergency mode) and the delegation page (代理承認)."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import col, select

from app.i18n import translate
from auth.models import OrgUnit, User
from scheduling.models import Closure, Delegation, EmergencyPeriod, Policy


async def post_form(client: httpx.AsyncClient, url: str, data: dict[str, Any]) -> httpx.Response:
    return await client.post(url, data={**data, "_csrf_token": client.headers["x-csrftoken"]})


async def unit_id(db: Any, code: str) -> int:
    return (await db.execute(select(col(OrgUnit.id)).where(OrgUnit.code == code))).scalar_one()


async def user_id(db: Any, number: str) -> int:
    return (await db.execute(select(col(User.id)).where(User.employee_number == number))).scalar_one()


async def rows(db: Any, model: Any) -> list[Any]:
    await db.rollback()  # a fresh snapshot: see what the app committed
    return list((await db.execute(select(model))).scalars())


async def count(db: Any, model: Any) -> int:
    await db.rollback()  # a fresh snapshot: see what the app committed
    return (await db.execute(select(func.count()).select_from(model))).scalar_one()


POLICY = {
    "valid_from": "2027-03-01",
    "weekly_cap": "2",
    "monthly_cap": "8",
    "notice_days": "2",
    "notice_cutoff": "17:00",
    "max_consecutive": "3",
    "min_onsite_count": "",
    "min_onsite_ratio": "50",
    "eligible_types": ["regular", "fixed_term"],
    "blackout_dates": "2027-03-31\n2027-04-01",
    "require_reports": "on",
    "note": "令和9年度の要領",
}


# ---------------------------------------------------------------- access


async def test_employee_is_refused_the_admin_page_and_its_forms(make_client, clock):
    employee = await make_client("employee")
    assert (await employee.get("/admin/telework")).status_code == 403
    r = await post_form(employee, "/admin/telework/policies", POLICY)
    assert r.status_code == 403
    unit_head = await make_client("unit_head")
    assert (await unit_head.get("/admin/telework")).status_code == 403


async def test_admin_page_lists_the_org_tree_closures_and_emergency_mode(hr, clock):
    r = await hr.get("/admin/telework")
    assert r.status_code == 200
    page = r.text
    assert '<html lang="ja">' in page
    for text in ("総務局", "行政改革課", "ネットワーク係", "規程なし", "緊急モード", "元日", "年末年始休暇"):
        assert text in page, text
    assert 'name="_csrf_token"' in page
    assert page.count('<form method="post"') >= 3


# ---------------------------------------------------------------- policies


async def test_a_new_version_is_inherited_down_the_tree(hr, db, clock):
    somu = await unit_id(db, "SOMU")
    gyokaku = await unit_id(db, "GYOKAKU")
    r = await post_form(hr, "/admin/telework/policies", {**POLICY, "unit_id": str(somu)})
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/admin/telework?done=policy_added")

    versions = await rows(db, Policy)
    assert len(versions) == 1
    p = versions[0]
    assert (p.unit_id, p.weekly_cap, p.monthly_cap, p.notice_days, p.max_consecutive) == (somu, 2, 8, 2, 3)
    assert p.min_onsite_ratio == 0.5 and p.min_onsite_count is None
    assert p.eligible_types == "regular,fixed_term"
    assert p.blackout_dates == "2027-03-31,2027-04-01"
    assert p.require_reports is True and p.note == "令和9年度の要領"

    effective = (await hr.get(f"/api/telework/policies/effective?unit_id={gyokaku}")).json()
    assert effective["inherited_from"] == somu and effective["weekly_cap"] == 2

    page = (await hr.get(r.headers["location"])).text
    assert translate("ja", "twa.done.policy_added") in page
    assert page.count(f'<span class="tag">{translate("ja", "twa.source.own")}</span>') == 1
    assert translate("ja", "twa.inherited_from", unit="総務局") in page
    assert "週 2 日" in page and "職員の 50% 以上" in page

    # A later version for a child unit: the child now has its own rules, and the history shows both.
    r = await post_form(
        hr,
        "/admin/telework/policies",
        {"unit_id": str(gyokaku), "valid_from": "2027-04-01", "weekly_cap": "1.5", "notice_cutoff": "12:00"},
    )
    assert r.status_code == 303, r.text
    page = (await hr.get("/admin/telework")).text
    assert translate("ja", "twa.history_of", unit="行政改革課") in page
    assert translate("ja", "twa.status.planned") in page  # 2027-04-01 is after 'today' (2027-03-01)


async def test_the_form_is_prefilled_from_the_version_in_force(hr, db, clock):
    somu = await unit_id(db, "SOMU")
    gyokaku = await unit_id(db, "GYOKAKU")
    assert (
        await post_form(hr, "/admin/telework/policies", {**POLICY, "unit_id": str(somu)})
    ).status_code == 303
    page = (await hr.get(f"/admin/telework?unit={gyokaku}")).text
    assert f'<option value="{gyokaku}" selected>' in page
    assert 'name="weekly_cap" type="number"' in page and 'value="2"' in page
    assert "2027-03-31\n2027-04-01</textarea>" in page


async def test_a_bad_policy_form_is_explained_and_nothing_is_written(hr, db, clock):
    somu = await unit_id(db, "SOMU")
    bad = {
        **POLICY,
        "unit_id": str(somu),
        "weekly_cap": "2.3",
        "min_onsite_ratio": "150",
        "notice_cutoff": "25:00",
        "blackout_dates": "2027-03-31\nnot-a-day",
        "note": "typed note stays",
    }
    r = await post_form(hr, "/admin/telework/policies", bad)
    assert r.status_code == 422
    page = r.text
    assert 'role="alert"' in page
    assert translate("ja", "twa.err.range", low="0", high="100") in page
    assert translate("ja", "twa.err.half_days") in page
    assert translate("ja", "twa.err.bad_time") in page
    assert "not-a-day" in page and translate("ja", "field.tw_min_onsite_ratio") in page
    assert 'value="150"' in page and "typed note stays" in page  # what was typed is kept
    assert 'aria-invalid="true"' in page
    assert await count(db, Policy) == 0


async def test_policy_errors_in_english(make_client, db, clock):
    hr = await make_client("hr_admin")
    assert (await hr.patch("/api/me", json={"locale": "en"})).status_code == 200
    r = await post_form(hr, "/admin/telework/policies", {"unit_id": "", "valid_from": "2027/02/30"})
    assert r.status_code == 422
    assert '<html lang="en">' in r.text
    assert "Please fill this in." in r.text and "Enter a date as YYYY-MM-DD" in r.text
    assert await count(db, Policy) == 0


async def test_rules_of_the_service_are_shown_and_roll_back(hr, db, clock):
    somu = await unit_id(db, "SOMU")
    # Not retroactive: 'today' is 2027-03-01.
    r = await post_form(
        hr, "/admin/telework/policies", {**POLICY, "unit_id": str(somu), "valid_from": "2027-02-01"}
    )
    assert r.status_code == 422
    assert translate("ja", "telework.policy_not_retroactive") in r.text
    assert await count(db, Policy) == 0
    # A version already starting that day (or later): a conflict, explained; the first stays alone.
    assert (
        await post_form(hr, "/admin/telework/policies", {**POLICY, "unit_id": str(somu)})
    ).status_code == 303
    r = await post_form(hr, "/admin/telework/policies", {**POLICY, "unit_id": str(somu)})
    assert r.status_code == 422
    assert translate("ja", "telework.policy_version_exists", day="2027-03-01") in r.text
    assert await count(db, Policy) == 1
    # An unknown unit.
    r = await post_form(hr, "/admin/telework/policies", {**POLICY, "unit_id": "999999"})
    assert r.status_code == 422 and translate("ja", "telework.unit_unknown") in r.text


# ---------------------------------------------------------------- closures


async def test_add_and_remove_a_closure(hr, db, clock):
    r = await post_form(
        hr, "/admin/telework/closures", {"day": "2027-06-15", "name": "市制記念日", "name_en": "City Day"}
    )
    assert r.status_code == 303, r.text
    assert "year=2027" in r.headers["location"]
    page = (await hr.get("/admin/telework?year=2027")).text
    assert "市制記念日" in page and translate("ja", "twa.kind.closure") in page
    row = (await rows(db, Closure))[0]
    assert (row.day, row.name, row.name_en) == (date(2027, 6, 15), "市制記念日", "City Day")
    closure_id = row.id

    # The same day again: explained, nothing more written.
    r = await post_form(hr, "/admin/telework/closures", {"day": "2027-06-15", "name": "二度目"})
    assert r.status_code == 422
    assert translate("ja", "telework.closure_exists", day="2027-06-15") in r.text
    assert 'value="二度目"' in r.text
    assert await count(db, Closure) == 1

    # Booking it is now refused with its name; then it is removed.
    preview = await hr.post("/api/telework/requests/preview", json={"first_day": "2027-06-15"})
    assert "市制記念日" in preview.text
    r = await post_form(hr, f"/admin/telework/closures/{closure_id}/delete", {})
    assert r.status_code == 303
    assert await count(db, Closure) == 0
    page = (await hr.get(r.headers["location"])).text
    assert translate("ja", "twa.done.closure_removed") in page and "市制記念日" not in page
    assert (await post_form(hr, f"/admin/telework/closures/{closure_id}/delete", {})).status_code == 404


async def test_a_closure_form_with_mistakes(hr, db, clock):
    r = await post_form(hr, "/admin/telework/closures", {"day": "", "name": "x" * 101})
    assert r.status_code == 422
    assert translate("ja", "twa.err.required") in r.text
    assert translate("ja", "error.too_long", n=100) in r.text
    assert await count(db, Closure) == 0


async def test_the_year_shows_holidays_and_the_year_end_closure(hr, clock):
    page = (await hr.get("/admin/telework?year=2028")).text
    assert "2028-01-01" in page and "元日" in page and "2028-12-29" in page
    assert translate("ja", "twa.kind.city_closure") in page
    assert (await hr.get("/admin/telework?year=1999")).status_code == 400


# ---------------------------------------------------------------- emergency mode


async def test_start_and_end_emergency_mode(hr, db, clock):
    gyokaku = await unit_id(db, "GYOKAKU")
    form = {"starts": "2027-03-01", "ends": "2027-03-12", "reason": "台風10号の接近", "unit_id": str(gyokaku)}
    r = await post_form(hr, "/admin/telework/emergencies", form)
    assert r.status_code == 303, r.text
    page = (await hr.get(r.headers["location"])).text
    assert "台風10号の接近" in page and translate("ja", "twa.emergency_status.current") in page
    row = (await rows(db, EmergencyPeriod))[0]
    assert (row.starts, row.ends, row.unit_id) == (date(2027, 3, 1), date(2027, 3, 12), gyokaku)

    clock.set("2027-03-05 10:00")
    r = await post_form(hr, f"/admin/telework/emergencies/{row.id}/end", {})
    assert r.status_code == 303
    ended = (await rows(db, EmergencyPeriod))[0]
    assert ended.ends == date(2027, 3, 4) and ended.ended_early_at is not None
    page = (await hr.get(r.headers["location"])).text
    assert translate("ja", "twa.done.emergency_ended") in page
    assert translate("ja", "twa.emergency_status.ended_early") in page
    assert translate("ja", "twa.no_emergency") in page


async def test_a_bad_emergency_form_writes_nothing(hr, db, clock):
    r = await post_form(
        hr, "/admin/telework/emergencies", {"starts": "2027-03-10", "ends": "2027-03-02", "reason": "大雪"}
    )
    assert r.status_code == 422
    assert translate("ja", "telework.range_backwards") in r.text
    assert 'value="2027-03-10"' in r.text and "大雪" in r.text
    r = await post_form(
        hr, "/admin/telework/emergencies", {"starts": "2027-03-01", "ends": "2028-06-01", "reason": "長すぎ"}
    )
    assert r.status_code == 422 and translate("ja", "telework.range_too_long", days=366) in r.text
    r = await post_form(hr, "/admin/telework/emergencies", {"starts": "2027-03-01", "ends": "2027-03-02"})
    assert r.status_code == 422 and translate("ja", "twa.err.required") in r.text
    assert await count(db, EmergencyPeriod) == 0


# ---------------------------------------------------------------- delegation (代理承認)


async def test_a_unit_head_delegates_and_revokes(make_client, db, clock):
    head = await make_client("unit_head")  # 伊藤 直子, head of 行政改革課
    deputy = await user_id(db, "100019")  # 山口 翼, in the same unit
    page = (await head.get("/telework/delegations")).text
    assert translate("ja", "twd.new") in page and f'<option value="{deputy}">' in page

    r = await post_form(
        head,
        "/telework/delegations",
        {"to_user_id": str(deputy), "starts": "2027-03-01", "ends": "2027-03-05"},
    )
    assert r.status_code == 303, r.text
    row = (await rows(db, Delegation))[0]
    assert (row.to_user_id, row.starts, row.ends, row.unit_id) == (
        deputy,
        date(2027, 3, 1),
        date(2027, 3, 5),
        None,
    )
    delegation_id = row.id
    acting = translate("ja", "twd.acting_for", delegate="山口 翼", head="伊藤 直子")
    page = (await head.get(r.headers["location"])).text
    assert translate("ja", "twd.done.delegated") in page and acting in page
    assert translate("ja", "twd.status.current") in page

    # The delegate sees it, with the same wording, and cannot revoke it.
    delegate_client = await make_client(login="100019")
    mine = (await delegate_client.get("/telework/delegations")).text
    assert acting in mine and translate("ja", "twd.heads_only") in mine
    assert f"/telework/delegations/{delegation_id}/revoke" not in mine
    assert (
        await post_form(delegate_client, f"/telework/delegations/{delegation_id}/revoke", {})
    ).status_code == 404

    r = await post_form(head, f"/telework/delegations/{delegation_id}/revoke", {})
    assert r.status_code == 303
    assert (await rows(db, Delegation))[0].revoked_at is not None
    page = (await head.get(r.headers["location"])).text
    assert translate("ja", "twd.status.revoked") in page
    assert f"/telework/delegations/{delegation_id}/revoke" not in page


async def test_delegate_search_and_one_unit_scope(make_client, db, clock):
    head = await make_client("unit_head")
    gyokaku = await unit_id(db, "GYOKAKU")
    other = await user_id(db, "100012")  # 山本 さくら in 人事課: not in the head's units
    page = (await head.get("/telework/delegations")).text
    assert f'<option value="{other}">' not in page
    page = (await head.get("/telework/delegations?q=やまもと")).text
    assert f'<option value="{other}">' in page and "山本 さくら" in page
    page = (await head.get("/telework/delegations?q=100012")).text
    assert f'<option value="{other}">' in page
    page = (await head.get("/telework/delegations?q=山本さくら")).text  # spaces do not matter
    assert f'<option value="{other}">' in page
    page = (await head.get("/telework/delegations?q=%25")).text  # a wildcard is just a character
    assert f'<option value="{other}">' not in page

    r = await post_form(
        head,
        "/telework/delegations",
        {"to_user_id": str(other), "starts": "2027-03-02", "ends": "2027-03-03", "unit_id": str(gyokaku)},
    )
    assert r.status_code == 303, r.text
    row = (await rows(db, Delegation))[0]
    assert row.unit_id == gyokaku


async def test_a_bad_delegation_form_is_explained_and_nothing_is_written(make_client, db, clock):
    head = await make_client("unit_head")
    me = await user_id(db, "100006")
    deputy = await user_id(db, "100019")
    r = await post_form(
        head,
        "/telework/delegations",
        {"to_user_id": str(deputy), "starts": "2027-03-10", "ends": "2027-03-02", "q": "やまぐち"},
    )
    assert r.status_code == 422
    assert translate("ja", "telework.range_backwards") in r.text
    assert f'<option value="{deputy}" selected>' in r.text and 'value="2027-03-10"' in r.text
    assert 'value="やまぐち"' in r.text

    r = await post_form(
        head, "/telework/delegations", {"to_user_id": str(me), "starts": "2027-03-01", "ends": "2027-03-02"}
    )
    assert r.status_code == 422 and translate("ja", "telework.delegation_to_self") in r.text

    r = await post_form(head, "/telework/delegations", {"to_user_id": "", "starts": "", "ends": "2027-03-02"})
    assert r.status_code == 422 and translate("ja", "twa.err.required") in r.text

    jinji = await unit_id(db, "JINJI")
    r = await post_form(
        head,
        "/telework/delegations",
        {"to_user_id": str(deputy), "starts": "2027-03-01", "ends": "2027-03-02", "unit_id": str(jinji)},
    )
    assert r.status_code == 422 and translate("ja", "telework.unit_not_in_scope") in r.text
    assert await count(db, Delegation) == 0


async def test_only_unit_heads_may_delegate(make_client, db, clock):
    employee = await make_client("employee")
    page = await employee.get("/telework/delegations")
    assert page.status_code == 200 and translate("ja", "twd.heads_only") in page.text
    assert 'action="/telework/delegations"' not in page.text
    deputy = await user_id(db, "100019")
    r = await post_form(
        employee,
        "/telework/delegations",
        {"to_user_id": str(deputy), "starts": "2027-03-01", "ends": "2027-03-02"},
    )
    assert r.status_code == 403
    assert await count(db, Delegation) == 0
