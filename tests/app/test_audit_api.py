"""The auditor's view of the trail: filters, pagination, CSV export."""

from __future__ import annotations

import csv
import io

from tests.conftest import DEMO_PASSWORD


async def test_auditor_filters_sign_in_events(make_client, anon):
    await anon.post("/api/auth/login", json={"login": "100015", "password": "wrong"})
    auditor = await make_client("auditor")
    r = await auditor.get("/api/audit", params={"action": "auth.login"})
    assert r.status_code == 200
    actions = [e["action"] for e in r.json()["items"]]
    assert "auth.login.failure" in actions and "auth.login.success" in actions
    assert all(a.startswith("auth.login") for a in actions)
    failure = next(e for e in r.json()["items"] if e["action"] == "auth.login.failure")
    assert failure["entity_id"] == "100015" and failure["ip"] == "127.0.0.1"


async def test_audit_pagination_and_date_filter(make_client):
    auditor = await make_client("auditor")
    for _ in range(3):
        await (await make_client()).post(
            "/api/auth/login", json={"login": "100010", "password": DEMO_PASSWORD}
        )
    first = (await auditor.get("/api/audit", params={"limit": 2})).json()
    second = (await auditor.get("/api/audit", params={"limit": 2, "offset": 2})).json()
    assert len(first["items"]) == 2 and first["total"] >= 5
    assert first["items"][0]["id"] > first["items"][1]["id"] > second["items"][0]["id"]
    empty = (await auditor.get("/api/audit", params={"until": "2000-01-01"})).json()
    assert empty["total"] == 0


async def test_audit_csv_export_opens_in_excel(make_client):
    auditor = await make_client("auditor")
    r = await auditor.get("/api/audit.csv", params={"action": "system"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["id", "at", "actor_id", "actor_label", "action"]
    assert [row[4] for row in rows[1:]] == ["system.seed_demo"]


async def test_audit_page_renders_with_empty_state(make_client):
    auditor = await make_client("auditor")
    r = await auditor.get("/audit", params={"action": "auth.login"})
    assert r.status_code == 200 and "auth.login.success" in r.text
    r = await auditor.get("/audit", params={"action": "nothing.matches"})
    assert "条件に合う記録はありません" in r.text


async def test_audit_csv_never_runs_a_typed_login_as_a_formula(make_client, anon):
    await anon.post("/api/auth/login", json={"login": '=HYPERLINK("http://x")', "password": "x"})
    auditor = await make_client("auditor")
    r = await auditor.get("/api/audit.csv", params={"action": "auth.login.failure"})
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[1][3] == '\'=HYPERLINK("http://x")'
