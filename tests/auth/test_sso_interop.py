"""Interoperability: the same sign-in against an independent provider, oidc-provider-mock."""

from __future__ import annotations

import warnings
from urllib.parse import quote

import httpx
import pytest

from app.main import create_app, shutdown, startup
from tests.auth.test_sso import BASE, _sso_settings
from tests.conftest import prime_csrf


@pytest.fixture
def provider():
    with warnings.catch_warnings():  # it imports Authlib modules deprecated upstream; not our code
        warnings.simplefilter("ignore", DeprecationWarning)
        import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(port=0, require_nonce=True) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
async def client(settings, provider):
    application = create_app(_sso_settings(settings, provider))
    await startup(application)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE) as c:
        await prime_csrf(c)
        yield c
    await shutdown(application)


async def sign_in(client: httpx.AsyncClient, provider: str, sub: str, claims: dict) -> httpx.Response:
    async with httpx.AsyncClient() as to_provider:
        assert (await to_provider.put(f"{provider}/users/{quote(sub)}", json=claims)).status_code == 204
        start = await client.get("/auth/sso/login")
        assert start.status_code == 303
        consent = await to_provider.post(start.headers["location"], data={"sub": sub})  # the consent button
        assert consent.status_code == 302, consent.text
    return await client.get(consent.headers["location"])


async def test_sign_in_with_an_independent_provider(client, provider):
    claims = {
        "name": "相互 運用",
        "email": "interop@example.lg.jp",
        "employee_number": "500001",
        "unit_code": "JINJI",
    }
    r = await sign_in(client, provider, "kc-user-1", claims)
    assert r.status_code == 303, r.text
    me = (await client.get("/api/me")).json()
    assert (me["employee_number"], me["unit"]["code"], me["name"]) == ("500001", "JINJI", "相互 運用")


async def test_independent_provider_token_for_another_audience_is_refused(client, provider):
    r = await sign_in(client, provider, "kc-user-2", {"aud": "some-other-app"})
    assert r.status_code == 400
    assert (await client.get("/api/me")).status_code == 401
