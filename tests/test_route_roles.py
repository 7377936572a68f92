"""Every registered route × every role → the expected status.

The table is declarative: a new route that is not listed here fails `test_every_route_is_in_the_table`,
so nobody can add an endpoint without deciding who may call it.
"""

from __future__ import annotations

import pytest
from litestar.routes import HTTPRoute

from tests.devices import route_rules as devices_rules
from tests.route_rule import PUBLIC, ROLES, SIGNED_IN, Rule, page
from tests.rtc import route_rules as rtc_rules
from tests.scheduling import route_rules as scheduling_rules

PACKAGE_RULES = (scheduling_rules, devices_rules, rtc_rules)


PEOPLE_READERS = ("unit_head", "it_admin", "hr_admin", "auditor", "sysadmin")
ORG_WRITERS = ("hr_admin", "sysadmin")
AUDIT = ("auditor", "sysadmin")
SURVEY_ADMINS = ("hr_admin", "sysadmin")
SURVEY_RESULTS = ("unit_head", "hr_admin", "auditor", "sysadmin")


# Sample path values: user 100019 (山口 翼) is in 行政改革課, which the demo unit head heads.
SAMPLE = {
    "{survey_id:int}": "{survey}",
    "{round_id:int}": "{round}",
    "{user_id:int}": "{user_in_scope}",
    "{unit_id:int}": "{unit_in_scope}",
    "{file_path:path}": "app.css",
    "{path:str}": "openapi.json",
    "{id:int}": "999999",  # no such outbox message
}

TABLE: dict[tuple[str, str], Rule] = {
    ("GET", "/health/live"): Rule(PUBLIC),
    ("GET", "/health/ready"): Rule(PUBLIC),
    ("GET", "/static/{file_path:path}"): Rule(PUBLIC),
    ("GET", "/schema"): Rule(PUBLIC),
    ("GET", "/schema/swagger"): Rule(PUBLIC),
    ("GET", "/schema/openapi.json"): Rule(PUBLIC),
    ("GET", "/schema/{path:str}"): Rule(PUBLIC),
    ("GET", "/schema/oauth2-redirect.html"): Rule(PUBLIC),
    ("GET", "/"): page(*SIGNED_IN),
    ("GET", "/account/sessions"): page(*SIGNED_IN),
    ("POST", "/account/sessions/end"): Rule(SIGNED_IN, ok=404, form={}),  # no such session handle
    ("GET", "/login"): Rule(("anon",), ok=200, denied=303),
    ("POST", "/login"): Rule(PUBLIC, ok=401, form={"login": "nobody", "password": "x"}),
    ("POST", "/logout"): Rule(PUBLIC, ok=303, form={}),
    ("POST", "/auth/logout"): Rule(PUBLIC, ok=303, form={}),
    # Without OIDC settings the SSO flow does not exist (tests/auth/test_sso.py covers it configured).
    ("GET", "/auth/sso/login"): Rule(PUBLIC, ok=404),
    ("GET", "/auth/sso/callback"): Rule(PUBLIC, ok=404),
    ("POST", "/auth/sso/backchannel-logout"): Rule(PUBLIC, ok=404, form={}),
    ("GET", "/api/sso"): Rule(("sysadmin",)),
    ("PUT", "/api/sso/mapping"): Rule(("sysadmin",), ok=400, body={"roles": "x"}),
    ("DELETE", "/api/users/{user_id:int}/sessions"): Rule(("sysadmin",)),
    ("POST", "/admin/users/{user_id:int}/sessions/end"): Rule(("sysadmin",), ok=303, form={}),
    ("GET", "/admin/sso"): page("sysadmin"),
    ("POST", "/admin/sso"): Rule(("sysadmin",), ok=303, form={"name_claim": "name"}),
    ("POST", "/lang"): Rule(PUBLIC, ok=303, form={"lang": "ja", "next": "/"}),
    ("POST", "/api/auth/login"): Rule(PUBLIC, ok=400, body={}),
    ("POST", "/api/auth/logout"): Rule(SIGNED_IN, ok=204),
    ("GET", "/api/me"): Rule(SIGNED_IN),
    ("PATCH", "/api/me"): Rule(SIGNED_IN, ok=400, body={"locale": "fr"}),
    ("GET", "/api/users"): Rule(PEOPLE_READERS),
    ("POST", "/api/users"): Rule(ORG_WRITERS, ok=400, body={}),
    # Out of one's scope a person is 'not found', so nobody learns who exists elsewhere.
    ("GET", "/api/users/{user_id:int}"): Rule(PEOPLE_READERS, denied=404),
    ("PATCH", "/api/users/{user_id:int}"): Rule(ORG_WRITERS, body={}),
    ("PUT", "/api/users/{user_id:int}/roles"): Rule(("sysadmin",), ok=400, body={}),
    ("GET", "/api/units"): Rule(SIGNED_IN),
    ("POST", "/api/units"): Rule(ORG_WRITERS, ok=400, body={}),
    ("GET", "/api/units/{unit_id:int}"): Rule(SIGNED_IN),
    ("PATCH", "/api/units/{unit_id:int}"): Rule(ORG_WRITERS, body={}),
    ("GET", "/admin/users"): page(*PEOPLE_READERS),
    ("GET", "/admin/users/{user_id:int}"): page(*PEOPLE_READERS),
    ("GET", "/admin/units"): page(*ORG_WRITERS),
    ("POST", "/admin/units"): Rule(ORG_WRITERS, ok=422, form={}),
    ("GET", "/admin/users/new"): page(*ORG_WRITERS),
    ("POST", "/admin/users/new"): Rule(ORG_WRITERS, ok=422, form={}),
    ("POST", "/admin/users/{user_id:int}"): Rule(ORG_WRITERS, ok=303, form={"name": "山口 翼"}),
    ("POST", "/admin/users/{user_id:int}/roles"): Rule(("sysadmin",), ok=303, form={"roles": "employee"}),
    ("GET", "/admin/import"): page(*ORG_WRITERS),
    ("POST", "/admin/import/units"): Rule(ORG_WRITERS, ok=400, form={}),
    ("POST", "/admin/import/users"): Rule(ORG_WRITERS, ok=400, form={}),
    ("GET", "/api/org/units.csv"): Rule(ORG_WRITERS),
    ("GET", "/api/org/users.csv"): Rule(ORG_WRITERS),
    ("POST", "/api/org/units/import"): Rule(ORG_WRITERS, ok=415, form={}),  # not multipart
    ("POST", "/api/org/users/import"): Rule(ORG_WRITERS, ok=415, form={}),
    ("GET", "/api/surveys"): Rule(SURVEY_ADMINS),
    ("POST", "/api/surveys"): Rule(SURVEY_ADMINS, ok=400, body={}),
    ("POST", "/api/surveys/from-template"): Rule(SURVEY_ADMINS, ok=201),
    ("GET", "/api/surveys/{survey_id:int}"): Rule(SURVEY_ADMINS),
    ("PUT", "/api/surveys/{survey_id:int}"): Rule(SURVEY_ADMINS, ok=400, body={}),
    ("POST", "/api/surveys/{survey_id:int}/rounds"): Rule(SURVEY_ADMINS, ok=400, body={}),
    # The sample round invites everyone, so every signed-in person may read and answer it.
    ("GET", "/api/surveys/rounds/{round_id:int}"): Rule(SIGNED_IN),
    ("GET", "/api/surveys/mine"): Rule(SIGNED_IN),
    ("POST", "/api/surveys/rounds/{round_id:int}/answers"): Rule(SIGNED_IN, ok=400, body={}),
    ("GET", "/api/surveys/rounds/{round_id:int}/results"): Rule(SURVEY_RESULTS),
    ("GET", "/api/surveys/rounds/{round_id:int}/results.csv"): Rule(SURVEY_RESULTS),
    ("GET", "/api/surveys/settings"): Rule(SURVEY_ADMINS),
    ("PUT", "/api/surveys/settings"): Rule(SURVEY_ADMINS, ok=400, body={}),
    ("GET", "/surveys"): page(*SIGNED_IN),
    ("GET", "/surveys/rounds/{round_id:int}"): page(*SIGNED_IN),
    ("POST", "/surveys/rounds/{round_id:int}"): Rule(SIGNED_IN, ok=422, form={}),
    ("GET", "/admin/surveys"): page(*SURVEY_ADMINS),
    ("GET", "/admin/surveys/{survey_id:int}/edit"): page(*SURVEY_ADMINS),
    ("POST", "/admin/surveys/{survey_id:int}/edit"): Rule(SURVEY_ADMINS, ok=422, form={}),
    ("POST", "/admin/surveys/from-template"): Rule(SURVEY_ADMINS, ok=303, form={}),
    ("POST", "/admin/surveys/{survey_id:int}/rounds"): Rule(SURVEY_ADMINS, ok=422, form={}),
    ("GET", "/admin/surveys/rounds/{round_id:int}/results"): page(*SURVEY_RESULTS),
    ("GET", "/api/audit"): Rule(AUDIT),
    ("GET", "/api/audit.csv"): Rule(AUDIT),
    ("GET", "/audit"): page(*AUDIT),
    ("GET", "/admin/outbox"): page("sysadmin"),
    # No message 999999 exists: the sysadmin gets past the guard to 'not found'.
    ("POST", "/admin/outbox/{id:int}/retry"): Rule(("sysadmin",), ok=404, form={}),
}
for _package in PACKAGE_RULES:
    assert not set(_package.RULES) & set(TABLE), f"{_package.__name__} repeats a route"
    TABLE.update(_package.RULES)


async def sample_round(db) -> tuple[int, int]:
    """A survey with a round open to everyone, so survey routes have something to act on."""
    from datetime import timedelta

    from app.db import utcnow
    from app.security import Principal
    from surveys import schemas, services

    hr = Principal(
        id=8, employee_number="100008", name="hr", locale="ja", roles=frozenset({"hr_admin"}), unit_id=None
    )
    survey = await services.create_from_template(db, hr)
    now = utcnow()
    window = schemas.RoundIn(
        title="sample", opens_at=now - timedelta(minutes=1), closes_at=now + timedelta(days=7)
    )
    rnd = await services.create_round(db, hr, survey.id, window)
    await db.commit()
    return survey.id, rnd.id


def registered_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method in route.methods - {"OPTIONS", "HEAD"}:
                found.add((method, route.path))
    return found


async def test_every_route_is_in_the_table(app):
    routes = registered_routes(app)
    missing = sorted(routes - set(TABLE))
    stale = sorted(set(TABLE) - routes)
    assert not missing, f"routes without a role rule (add them to TABLE): {missing}"
    assert not stale, f"rules for routes that no longer exist: {stale}"


def _cases():
    for (method, path), rule in TABLE.items():
        yield pytest.param(method, path, rule, id=f"{method} {path}")


@pytest.mark.parametrize(("method", "path", "rule"), list(_cases()))
async def test_route_answers_each_role_as_declared(make_client, db, method, path, rule):
    from sqlalchemy import select

    from auth.models import OrgUnit, User

    user_id = (await db.execute(select(User.id).where(User.employee_number == "100019"))).scalar_one()
    unit_id = (await db.execute(select(OrgUnit.id).where(OrgUnit.code == "GYOKAKU"))).scalar_one()
    url = path
    for package in PACKAGE_RULES:
        for placeholder, value in (await package.samples(db)).items():
            url = url.replace(placeholder, value)
    for placeholder, sample in SAMPLE.items():
        url = url.replace(placeholder, sample)
    survey_id, round_id = await sample_round(db)
    url = url.format(user_in_scope=user_id, unit_in_scope=unit_id, survey=survey_id, round=round_id)
    failures = []
    for role in ROLES:
        client = await make_client(None if role == "anon" else role)
        kwargs: dict = {}
        if rule.body is not None:
            kwargs["json"] = rule.body
        if rule.form is not None:
            kwargs["data"] = {**rule.form, "_csrf_token": client.headers["x-csrftoken"]}
        response = await client.request(method, url, **kwargs)
        if response.status_code != rule.expected(role):
            failures.append(f"{role}: got {response.status_code}, expected {rule.expected(role)}")
        assert response.status_code < 500, response.text
    assert not failures, f"{method} {url}: " + "; ".join(failures)
