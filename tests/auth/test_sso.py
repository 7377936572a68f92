"""Single sign-on against a real OpenID Provider on loopback (tests/auth/fake_op.py), end to end."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.main import create_app, shutdown, startup
from app.settings import Settings
from auth.models import User
from tests.auth.fake_op import FakeOP
from tests.conftest import DEMO_PASSWORD, LOGIN_BY_ROLE, prime_csrf

BASE = "http://testserver"


@pytest.fixture
def op() -> AsyncIterator[FakeOP]:
    with FakeOP(client_id="telework-hub", client_secret="op-secret") as provider:
        provider.user = {
            "sub": "entra-0001",
            "name": "早川 真一",
            "email": "shinichi.hayakawa@example.lg.jp",
            "email_verified": True,
            "employee_number": "400001",
            "unit_code": "JOHO",
            "groups": ["it-staff", "all-staff"],
        }
        yield provider


def _sso_settings(settings: Settings, issuer: str, **extra: object) -> Settings:
    values = {f: getattr(settings, f) for f in settings.__dataclass_fields__}
    values.update(
        oidc_issuer=issuer,
        oidc_client_id="telework-hub",
        oidc_client_secret="op-secret",
        base_url=BASE,
        oidc_timeout_seconds=2,
        **extra,
    )
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def sso_app(settings, op):
    application = create_app(_sso_settings(settings, op.issuer))
    await startup(application)
    yield application
    await shutdown(application)


@pytest.fixture
async def clients(sso_app):
    made: list[httpx.AsyncClient] = []

    async def make(role: str | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sso_app), base_url=BASE)
        made.append(client)
        await prime_csrf(client)
        if role:
            r = await client.post(
                "/api/auth/login", json={"login": LOGIN_BY_ROLE[role], "password": DEMO_PASSWORD}
            )
            assert r.status_code == 200, r.text
        return client

    yield make
    for c in made:
        await c.aclose()


async def start(client: httpx.AsyncClient, next_path: str = "/") -> str:
    """Ask the app to start SSO; return the provider's answer: the callback URL with code and state."""
    r = await client.get("/auth/sso/login", params={"next": next_path})
    assert r.status_code == 303, r.text
    async with httpx.AsyncClient() as browser_to_op:
        answer = await browser_to_op.get(r.headers["location"])
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def sign_in(client: httpx.AsyncClient, next_path: str = "/") -> httpx.Response:
    return await client.get(await start(client, next_path))


async def audit_reasons(app) -> list[str]:
    async with app.state.db_sessions() as db:
        rows = await db.execute(select(AuditEvent.after).where(AuditEvent.action == "auth.sso.failure"))
        return [r for r in rows.scalars()]


async def test_happy_path_maps_roles_and_unit(clients, op, sso_app):
    admin = await clients("sysadmin")
    r = await admin.put("/api/sso/mapping", json={"roles": [{"value": "it-staff", "role": "it_admin"}]})
    assert r.status_code == 200, r.text
    person = await clients()
    r = await sign_in(person, "/admin/users")
    assert r.status_code == 303 and r.headers["location"] == "/admin/users"
    assert "th_session=" in r.headers.get("set-cookie", "")
    me = (await person.get("/api/me")).json()
    assert me["name"] == "早川 真一" and me["employee_number"] == "400001"
    assert me["unit"]["code"] == "JOHO"
    assert sorted(x["role"] for x in me["roles"]) == ["employee", "it_admin"]
    status = (await admin.get("/api/sso")).json()
    assert [u["value"] for u in status["unmapped"]] == ["all-staff"]
    assert status["last_success_at"] and op.key.kid in status["key_ids_seen"]


async def test_callback_cannot_be_replayed(clients, op):
    person = await clients()
    callback = await start(person)
    assert (await person.get(callback)).status_code == 303
    again = await person.get(callback)
    assert again.status_code == 400
    assert "ログイン" in again.text and "/auth/sso/login" in again.text  # retry link
    stranger = await clients()
    assert (await stranger.get(callback)).status_code == 400
    assert (await stranger.get("/api/me")).status_code == 401


async def test_tampered_state_is_refused(clients, op, sso_app):
    person = await clients()
    callback = await start(person)
    assert (await person.get(callback.replace("state=", "state=x"))).status_code == 400
    assert (await person.get("/api/me")).status_code == 401
    assert any('"bad_state"' in r for r in await audit_reasons(sso_app))


async def test_callback_from_another_browser_is_refused(clients, op):
    victim, attacker = await clients(), await clients()
    callback = await start(attacker)  # attacker's own login, replayed into the victim's browser
    assert (await victim.get(callback)).status_code == 400
    assert (await victim.get("/api/me")).status_code == 401


@pytest.mark.parametrize(
    ("override", "label"),
    [
        ({"nonce": "not-the-nonce"}, "wrong nonce"),
        ({"aud": "another-client"}, "audience of another client"),
        ({"aud": ["another-client", "third"]}, "audience list without us"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"iss": "http://127.0.0.1:1/evil"}, "other issuer"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "issued in the future"),
    ],
)
async def test_invalid_id_tokens_are_refused(clients, op, sso_app, override, label):
    op.id_token_overrides = override
    person = await clients()
    r = await sign_in(person)
    assert r.status_code == 400, label
    assert (await person.get("/api/me")).status_code == 401, label
    assert any("invalid_id_token" in r for r in await audit_reasons(sso_app)), label


async def test_token_signed_by_a_stranger_is_refused(clients, op, sso_app):
    from joserfc.jwk import RSAKey

    stranger = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    original_sign = op.sign
    op.sign = lambda claims, header=None, key=None: original_sign(claims, {"kid": op.key.kid}, stranger)
    person = await clients()
    assert (await sign_in(person)).status_code == 400
    assert any("bad_signature" in r for r in await audit_reasons(sso_app))


async def test_key_rotation_needs_no_restart(clients, op, sso_app):
    assert (await sign_in(await clients())).status_code == 303
    assert op.jwks_hits == 1
    op.rotate_key(keep_old=False)
    person = await clients()
    assert (await sign_in(person)).status_code == 400  # refetches are rate-limited against kid spam
    sso_app.state.oidc.jwks_min_refetch_seconds = 0  # as if the interval had passed
    person = await clients()
    assert (await sign_in(person)).status_code == 303
    assert op.jwks_hits == 2
    assert (await person.get("/api/me")).status_code == 200


async def test_provider_unreachable_gives_a_clear_page(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    application = create_app(_sso_settings(settings, dead))
    await startup(application)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE) as client:
            r = await client.get("/auth/sso/login")
            assert r.status_code == 502
            assert "つながりません" in r.text and 'href="/auth/sso/login"' in r.text
            assert (await client.get("/api/me")).status_code == 401
        async with application.state.db_sessions() as db:
            failures = (
                await db.execute(select(AuditEvent).where(AuditEvent.action == "auth.sso.failure"))
            ).scalars()
            assert ["provider_unreachable" in (e.after or "") for e in failures] == [True]
    finally:
        await shutdown(application)


async def test_denied_consent(clients, op):
    person = await clients()
    callback = await start(person)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    r = await person.get("/auth/sso/callback", params={"error": "access_denied", "state": state})
    assert r.status_code == 400 and "取り消されました" in r.text


async def test_deactivated_person_cannot_sign_in_with_a_valid_token(clients, op):
    person = await clients()
    assert (await sign_in(person)).status_code == 303
    me = (await person.get("/api/me")).json()
    hr = await clients("hr_admin")
    assert (await hr.patch(f"/api/users/{me['id']}", json={"active": False})).status_code == 200
    again = await clients()
    r = await sign_in(again)
    assert r.status_code == 403 and "無効" in r.text
    assert (await again.get("/api/me")).status_code == 401


async def test_rp_initiated_logout_goes_to_the_provider(clients, op):
    person = await clients()
    await sign_in(person)
    r = await person.post("/auth/logout", data={"_csrf_token": person.headers["x-csrftoken"]})
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == op.issuer + "/end_session"
    query = parse_qs(target.query)
    assert query["id_token_hint"][0].count(".") == 2
    assert query["post_logout_redirect_uri"] == [BASE + "/login"]
    assert (await person.get("/api/me")).status_code == 401


async def test_backchannel_logout_ends_the_session_and_rejects_replay(clients, op):
    person = await clients()
    await sign_in(person)
    assert (await person.get("/api/me")).status_code == 200
    provider = await clients()
    del provider.headers["x-csrftoken"]  # server-to-server: no browser, no CSRF token
    token = op.logout_token(sid=op.last_sid)
    r = await provider.post("/auth/sso/backchannel-logout", data={"logout_token": token})
    assert r.status_code == 200, r.text
    assert r.json() == {"sessions_ended": 1} and r.headers["cache-control"] == "no-store"
    assert (await person.get("/api/me")).status_code == 401
    replay = await provider.post("/auth/sso/backchannel-logout", data={"logout_token": token})
    assert replay.status_code == 400 and replay.json()["reason"] == "replayed_jti"


async def test_backchannel_logout_by_subject_ends_every_session(clients, op):
    first, second = await clients(), await clients()
    await sign_in(first)
    await sign_in(second)
    provider = await clients()
    r = await provider.post(
        "/auth/sso/backchannel-logout", data={"logout_token": op.logout_token(sub="entra-0001")}
    )
    assert r.json() == {"sessions_ended": 2}
    assert (await first.get("/api/me")).status_code == 401 and (
        await second.get("/api/me")
    ).status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "header", "label"),
    [
        ({"nonce": "n"}, None, "nonce present"),
        ({"events": {}}, None, "no back-channel event"),
        ({"aud": "someone-else"}, None, "wrong audience"),
        ({"iss": "http://127.0.0.1:1"}, None, "wrong issuer"),
        ({}, {"typ": "JWT"}, "wrong typ"),
        ({"jti": None}, None, "no jti"),
        ({"exp": None}, None, "no exp"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, None, "expired"),
    ],
)
async def test_invalid_logout_tokens_are_rejected(clients, op, kwargs, header, label):
    person = await clients()
    await sign_in(person)
    claims = {"sid": op.last_sid, **kwargs}
    token = op.logout_token(**claims)
    if header is not None or None in kwargs.values():
        from joserfc import jwt

        payload = jwt.decode(token, op.key).claims
        payload = {k: v for k, v in payload.items() if v is not None}
        token = op.sign(payload, header=header or {"typ": "logout+jwt"})
    r = await (await clients()).post("/auth/sso/backchannel-logout", data={"logout_token": token})
    assert r.status_code == 400, label
    assert (await person.get("/api/me")).status_code == 200, label
    no_sub = op.logout_token()
    assert (
        await (await clients()).post("/auth/sso/backchannel-logout", data={"logout_token": no_sub})
    ).status_code == 400


async def test_concurrent_sign_ins_of_a_new_person_create_one_user(clients, op, sso_app):
    people = [await clients() for _ in range(4)]
    callbacks = [await start(p) for p in people]
    results = await asyncio.gather(*(p.get(cb) for p, cb in zip(people, callbacks, strict=True)))
    assert [r.status_code for r in results] == [303] * 4
    async with sso_app.state.db_sessions() as db:
        count = (
            await db.execute(select(func.count()).select_from(User).where(User.oidc_sub == "entra-0001"))
        ).scalar()
    assert count == 1


async def test_first_sign_in_links_a_person_hr_created(clients, op, sso_app):
    op.user = {**op.user, "employee_number": "100015", "email": "someone.else@example.lg.jp"}
    person = await clients()
    await sign_in(person)
    me = (await person.get("/api/me")).json()
    assert me["employee_number"] == "100015" and me["name"] == "早川 真一"


async def test_local_sign_in_can_be_limited_to_admins(settings, op):
    application = create_app(_sso_settings(settings, op.issuer, local_login="admins"))
    await startup(application)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE) as client:
            await prime_csrf(client)
            page = await client.get("/login")
            assert "/auth/sso/login" in page.text and "<details" in page.text
            r = await client.post("/api/auth/login", json={"login": "100012", "password": DEMO_PASSWORD})
            assert r.status_code == 403 and "シングルサインオン" in r.json()["detail"]
            r = await client.post("/api/auth/login", json={"login": "admin", "password": DEMO_PASSWORD})
            assert r.status_code == 200
    finally:
        await shutdown(application)


async def test_sso_routes_are_404_when_not_configured(anon):
    assert (await anon.get("/auth/sso/login")).status_code == 404


async def test_hosted_domain_is_enforced(settings, op):
    application = create_app(_sso_settings(settings, op.issuer, oidc_hosted_domain="city.example.jp"))
    await startup(application)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE) as client:
            await prime_csrf(client)
            op.user = {**op.user, "hd": "gmail.com"}
            r = await sign_in(client)
            assert r.status_code == 403 and "職場のアカウント" in r.text
            op.user = {**op.user, "hd": "city.example.jp"}
            assert (await sign_in(client)).status_code == 303
            assert (await client.get("/api/me")).status_code == 200
    finally:
        await shutdown(application)


async def test_discovery_for_another_issuer_is_refused(settings, op):
    application = create_app(_sso_settings(settings, op.issuer + "/"))  # configured issuer ≠ discovery's
    await startup(application)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE) as client:
            r = await client.get("/auth/sso/login")
            assert r.status_code == 502 and "一致しません" in r.text
    finally:
        await shutdown(application)


def test_sso_libraries_are_not_loaded_when_sso_is_off() -> None:
    """One importer per heavy library, and only when used: without OIDC settings authlib stays unloaded."""
    import subprocess
    import sys

    code = "import sys, app.main; print(sorted(m for m in sys.modules if m.split('.')[0] in ('authlib',)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
