"""Property-based API fuzzing: every operation of the OpenAPI document, as a sysadmin and as an employee.

The schema is built in-process at import time (no server needed to collect), so each operation is its own
pytest item; the requests go to a live server subprocess (tests/live_server.py), one per role so one role's
changes (deactivating people, throttled sign-ins) never leak into the other's run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app.i18n import LOCALES, translate
from app.main import create_app
from app.settings import Settings
from tests.conftest import DEMO_PASSWORD, LOGIN_BY_ROLE
from tests.live_server import live_server

ROLES = ("sysadmin", "employee")


def _openapi() -> dict:
    """The app's OpenAPI document from a throwaway app: nothing is written (no var/, no database)."""
    scratch = Path(tempfile.gettempdir()) / "telework-openapi-never-created"
    throwaway = Settings.from_env(
        app_env="test",
        var_dir=scratch,
        database_url=f"sqlite+aiosqlite:///{scratch}/unused.db",
        secret_key="openapi-only-" + "x" * 32,
        seed_demo=False,
        migrate_on_start=False,
        redis_url=None,
    )
    return create_app(throwaway).openapi_schema.to_schema()


schema = schemathesis.openapi.from_dict(_openapi())
# Signing out would end the session the remaining cases rely on.
schema = schema.exclude(path_regex=r"/logout$")
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])

CSRF_MESSAGES = {translate(locale, "error.csrf") for locale in LOCALES}


@dataclass(frozen=True)
class Session:
    role: str
    base_url: str
    cookies: dict[str, str]
    headers: dict[str, str]


@pytest.fixture(scope="module", params=ROLES)
def api_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    """A fresh server for this role, signed in through the JSON API with the CSRF cookie echoed as header."""
    role = request.param
    with live_server(tmp_path_factory.mktemp(f"fuzz-{role}")) as server, requests.Session() as http:
        http.get(f"{server.url}/health/live", timeout=10).raise_for_status()
        csrf = http.cookies["csrftoken"]
        r = http.post(
            f"{server.url}/api/auth/login",
            json={"login": LOGIN_BY_ROLE[role], "password": DEMO_PASSWORD},
            headers={"x-csrftoken": csrf},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        yield Session(role, server.url, dict(http.cookies), {"x-csrftoken": csrf})


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case, api_session: Session) -> None:
    response = case.call_and_validate(
        base_url=api_session.base_url,
        headers=api_session.headers,
        cookies=api_session.cookies,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
    # The session and the CSRF token must be accepted; a 403 is fine only as a role refusal.
    assert response.status_code != 401 or case.path == "/api/auth/login", response.text
    if response.status_code == 403:
        assert response.json().get("detail") not in CSRF_MESSAGES, response.text
