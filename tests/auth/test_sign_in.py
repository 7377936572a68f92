"""Local sign-in: sessions, cookies, throttling, audit."""

from __future__ import annotations

from sqlalchemy import select

from app.audit import AuditEvent
from tests.conftest import DEMO_PASSWORD, prime_csrf


async def test_me_is_401_when_signed_out(anon):
    r = await anon.get("/api/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]


async def test_sign_in_returns_me_with_roles_and_unit(make_client):
    client = await make_client("unit_head")
    r = await client.get("/api/me")
    assert r.status_code == 200
    me = r.json()
    assert me["employee_number"] == "100006"
    assert {x["role"] for x in me["roles"]} == {"employee", "unit_head"}
    assert me["unit"]["code"] == "GYOKAKU"
    assert me["scope_unit_ids"] == [me["unit"]["id"]]


async def test_session_cookie_flags_and_fresh_id(anon):
    anon.cookies.set("th_session", "planted-by-attacker")
    r = await anon.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "th_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "planted-by-attacker" not in cookie


async def test_sign_in_by_email_is_case_insensitive(anon):
    r = await anon.post(
        "/api/auth/login", json={"login": "Sakura.Yamamoto@example.lg.jp", "password": DEMO_PASSWORD}
    )
    assert r.status_code == 200


async def test_sign_out_ends_session_even_if_the_cookie_is_replayed(make_client):
    client = await make_client("employee")
    old_cookie = client.cookies.get("th_session")
    assert (await client.post("/api/auth/logout")).status_code == 204
    assert (await client.get("/api/me")).status_code == 401
    client.cookies.set("th_session", old_cookie)
    assert (await client.get("/api/me")).status_code == 401


async def test_new_sign_in_invalidates_the_previous_session_id(make_client):
    client = await make_client("employee")
    first = client.cookies.get("th_session")
    r = await client.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 200 and client.cookies.get("th_session") != first
    replay = await make_client()
    replay.cookies.set("th_session", first)
    assert (await replay.get("/api/me")).status_code == 401


async def test_admin_password_reset_ends_the_persons_sessions(make_client):
    person = await make_client("employee")
    me = (await person.get("/api/me")).json()
    hr = await make_client("hr_admin")
    r = await hr.patch(f"/api/users/{me['id']}", json={"password": "a-brand-new-password-2026"})
    assert r.status_code == 200
    assert (await person.get("/api/me")).status_code == 401


async def test_wrong_password_is_401_and_audited(anon, db):
    r = await anon.post("/api/auth/login", json={"login": "100012", "password": "nope"})
    assert r.status_code == 401
    assert "パスワード" in r.json()["detail"]
    events = (
        (await db.execute(select(AuditEvent).where(AuditEvent.action == "auth.login.failure")))
        .scalars()
        .all()
    )
    assert len(events) == 1
    assert events[0].entity_id == "100012"


async def test_ten_wrong_passwords_lock_the_account(anon, make_client, db):
    for _ in range(10):
        r = await anon.post("/api/auth/login", json={"login": "100012", "password": "wrong"})
        assert r.status_code == 401
    r = await anon.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    # Locked for that account only, from any address; other accounts still sign in.
    other_ip = await make_client(ip="127.0.0.9")
    r = await other_ip.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 429
    r = await other_ip.post("/api/auth/login", json={"login": "100015", "password": DEMO_PASSWORD})
    assert r.status_code == 200
    actions = (await db.execute(select(AuditEvent.action))).scalars().all()
    assert actions.count("auth.login.failure") == 10
    assert actions.count("auth.login.locked") >= 2


async def test_deactivated_user_loses_session(make_client):
    victim = await make_client("employee")
    admin = await make_client("hr_admin")
    me = (await victim.get("/api/me")).json()
    r = await admin.patch(f"/api/users/{me['id']}", json={"active": False})
    assert r.status_code == 200, r.text
    assert (await victim.get("/api/me")).status_code == 401
    r = await victim.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 401


async def test_csrf_required_for_state_changes(anon):
    del anon.headers["x-csrftoken"]
    r = await anon.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 403
    assert "再読み込み" in r.json()["detail"]
    await prime_csrf(anon)
    r = await anon.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
    assert r.status_code == 200


async def test_html_login_form_and_next_is_local_only(anon):
    page = await anon.get("/login")
    assert page.status_code == 200
    assert '<html lang="ja">' in page.text
    form = {
        "login": "100012",
        "password": DEMO_PASSWORD,
        "next": "https://evil.example/",
        "_csrf_token": anon.headers["x-csrftoken"],
    }
    r = await anon.post("/login", data=form)
    assert r.status_code == 303
    assert r.headers["location"] == "/"


async def test_html_login_failure_shows_message(anon):
    form = {"login": "100012", "password": "bad", "_csrf_token": anon.headers["x-csrftoken"]}
    r = await anon.post("/login", data=form)
    assert r.status_code == 401
    assert 'role="alert"' in r.text


async def test_pages_redirect_to_login_when_signed_out(anon):
    r = await anon.get("/admin/users?q=x")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2Fadmin%2Fusers")
