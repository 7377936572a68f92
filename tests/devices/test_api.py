"""The devices API and pages over HTTP: clear 4xx for bad input, secrets kept out, scopes respected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from devices import services
from devices.models import Device, Loan, SecretReveal
from tests.devices.helpers import iccid, imei


@pytest.fixture
async def it(make_client):
    return await make_client("it_admin")


async def make_bundle(it) -> tuple[int, int, int]:
    pc = await it.post("/api/devices/items", json={"asset_tag": "pc-100", "kind": "laptop", "maker": "NEC"})
    router = await it.post(
        "/api/devices/items", json={"asset_tag": "WR-100", "kind": "router", "imei": imei(100)}
    )
    line = await it.post("/api/devices/lines", json={"number": "090-1111-2222"})
    assert (pc.status_code, router.status_code, line.status_code) == (201, 201, 201), line.text
    assert pc.json()["asset_tag"] == "PC-100" and line.json()["number"] == "+819011112222"
    return pc.json()["id"], router.json()["id"], line.json()["id"]


async def test_bad_identifiers_get_clear_messages_in_the_readers_language(it):
    r = await it.post(
        "/api/devices/items", json={"asset_tag": "PC-1", "kind": "laptop", "imei": "490154203237519"}
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "IMEI" in r.json()["detail"] and "チェック数字" in r.json()["detail"]
    r = await it.post("/api/devices/lines", json={"number": "12345"}, headers={"accept-language": "en"})
    assert r.status_code == 422 and "12345" in r.json()["detail"]
    r = await it.post("/api/devices/sims", json={"iccid": "8981100000000000001"})
    assert r.status_code == 422 and "ICCID" in r.json()["detail"]
    r = await it.post("/api/devices/items", json={"asset_tag": "PC-1", "kind": "fridge"})
    assert r.status_code == 400
    await it.post("/api/devices/items", json={"asset_tag": "PC-1", "kind": "laptop"})
    r = await it.post("/api/devices/items", json={"asset_tag": "pc-1", "kind": "tablet"})
    assert r.status_code == 409 and "PC-1" in r.json()["detail"]


async def test_bundle_flow_over_http(it, employee, db):
    pc, router, line = await make_bundle(it)
    me = (await employee.get("/api/me")).json()
    back = (services.today() + timedelta(days=14)).isoformat()
    r = await it.post(
        "/api/devices/loans",
        json={"holder_id": me["id"], "device_ids": [pc, router], "line_ids": [line], "expected_return": back},
    )
    assert r.status_code == 201, r.text
    loan = r.json()
    assert loan["status"] == "awaiting_acceptance" and len(loan["items"]) == 3
    again = await it.post("/api/devices/loans", json={"holder_id": me["id"], "device_ids": [pc]})
    assert again.status_code == 409 and "PC-100" in again.json()["detail"]
    mine = (await employee.get("/api/devices/mine")).json()
    assert [m["id"] for m in mine] == [loan["id"]]
    r = await employee.post(
        f"/api/devices/loans/{loan['id']}/accept", json={"terms_version": "2026-04", "agree": True}
    )
    assert r.status_code == 200 and r.json()["accepted_at"]
    r = await employee.post(f"/api/devices/loans/{loan['id']}/return", json={})
    assert r.status_code == 403
    items = {i["kind"]: i["id"] for i in loan["items"]}
    r = await it.post(
        f"/api/devices/loans/{loan['id']}/return",
        json={"items": [{"item_id": items["laptop"], "condition": "worn", "note": "キーボードのテカリ"}]},
    )
    assert r.status_code == 200 and r.json()["status"] == "returned"
    r = await it.post(f"/api/devices/loans/{loan['id']}/return", json={})
    assert r.status_code == 409
    history = (await it.get(f"/api/devices/items/{pc}/history")).json()
    assert [h["action"] for h in history][-3:] == [
        "devices.loan.checkout",
        "devices.loan.accept",
        "devices.loan.return",
    ]
    line_read = (await it.get(f"/api/devices/lines/{line}")).json()
    assert line_read["status"] == "in_stock" and line_read["quarantine_until"]


async def test_sim_secrets_reveal_only_to_it_with_a_reason_and_never_in_lists_or_exports(it, make_client, db):
    line = (await it.post("/api/devices/lines", json={"number": "+819033334444"})).json()["id"]
    r = await it.post(
        "/api/devices/sims", json={"iccid": iccid(7), "line_id": line, "pin": "2468", "puk": "13579135"}
    )
    assert r.status_code == 201 and "pin" not in r.json() and r.json()["has_pin"]
    sim = r.json()["id"]
    for text in (
        (await it.get("/api/devices/sims")).text,
        (await it.get("/api/devices/sims.csv")).text,
        (await it.get(f"/devices/sims/{sim}")).text,
        (await it.get(f"/devices/lines/{line}")).text,
    ):
        assert "2468" not in text and "13579135" not in text
    sysadmin = await make_client("sysadmin")
    assert (
        await sysadmin.post(f"/api/devices/sims/{sim}/reveal", json={"reason": "確認のため"})
    ).status_code == 403
    r = await it.post(f"/api/devices/sims/{sim}/reveal", json={"reason": "x"})
    assert r.status_code == 400
    r = await it.post(f"/api/devices/sims/{sim}/reveal", json={"reason": "PINロックの解除（本人から電話）"})
    assert r.status_code == 200 and (r.json()["pin"], r.json()["puk"]) == ("2468", "13579135")
    assert r.headers["cache-control"] == "no-store"
    page = await it.post(
        f"/devices/sims/{sim}/reveal",
        data={"reason": "ページから表示", "_csrf_token": it.headers["x-csrftoken"]},
    )
    assert page.status_code == 200 and "2468" in page.text
    auditor = await make_client("auditor")
    log = (await auditor.get("/api/devices/reveals", params={"sim_id": sim})).json()
    assert [e["reason"] for e in log] == ["ページから表示", "PINロックの解除（本人から電話）"]
    assert (await db.execute(select(func.count()).select_from(SecretReveal))).scalar_one() == 2
    trail = (await auditor.get("/api/audit.csv")).text
    assert "2468" not in trail and "13579135" not in trail


async def test_unit_heads_see_their_units_loans_only(it, make_client, employee):
    pc, router, _line = await make_bundle(it)
    head = await make_client("unit_head")
    member = await make_client(login="100019")
    for client, device in ((employee, pc), (member, router)):
        me = (await client.get("/api/me")).json()
        assert (
            await it.post("/api/devices/loans", json={"holder_id": me["id"], "device_ids": [device]})
        ).status_code == 201
    seen = (await head.get("/api/devices/loans")).json()
    assert [i["holder_name"] for i in seen["items"]] == ["山口 翼"]
    page = await head.get("/devices/loans")
    assert page.status_code == 200 and "山口 翼" in page.text and "山本 さくら" not in page.text
    own = (await employee.get("/api/devices/loans")).json()
    assert [i["holder_name"] for i in own["items"]] == ["山本 さくら"]


async def test_lost_device_over_http_and_incident_steps(it, employee):
    _pc, router, line = await make_bundle(it)
    me = (await employee.get("/api/me")).json()
    await it.post(
        "/api/devices/loans", json={"holder_id": me["id"], "device_ids": [router], "line_ids": [line]}
    )
    r = await it.post(f"/api/devices/items/{router}/lost", json={"kind": "stolen", "description": "駅で盗難"})
    assert r.status_code == 201
    incident = r.json()
    assert incident["number"] == "+819011112222" and incident["line_suspension_requested_at"]
    assert (await it.post(f"/api/devices/items/{router}/lost", json={"kind": "lost"})).status_code == 409
    r = await it.post(f"/api/devices/incidents/{incident['id']}/line-suspended")
    assert r.status_code == 200 and r.json()["line_suspended_at"]
    r = await it.post(f"/api/devices/incidents/{incident['id']}/close")
    assert r.status_code == 200 and r.json()["closed_at"]
    assert (await it.post(f"/api/devices/incidents/{incident['id']}/close")).status_code == 409
    assert (await it.get(f"/api/devices/items/{router}")).json()["status"] == "lost"


async def test_requests_queue_and_decline(it, employee):
    r = await employee.post(
        "/api/devices/requests", json={"kinds": ["laptop", "router"], "reason": "在宅勤務のため"}
    )
    assert r.status_code == 201
    req = r.json()
    queue = (await it.get("/api/devices/requests")).json()
    assert [q["id"] for q in queue] == [req["id"]]
    assert "在宅勤務のため" in (await it.get("/devices/requests")).text
    r = await it.post(f"/api/devices/requests/{req['id']}/answer", json={"status": "declined"})
    assert r.status_code == 422
    r = await it.post(
        f"/api/devices/requests/{req['id']}/answer", json={"status": "declined", "answer": "在庫切れです"}
    )
    assert r.status_code == 200 and r.json()["status"] == "declined"
    assert (await it.get("/api/devices/requests")).json() == []
    page = await employee.get("/devices/mine")
    assert "在庫切れです" in page.text


async def test_stocktake_expected_found_missing_unexpected(it):
    await make_bundle(it)
    take = (await it.post("/api/devices/stocktakes", json={"name": "2026年度 上期"})).json()
    assert take["expected"] == 2
    r = await it.post(
        f"/api/devices/stocktakes/{take['id']}/scans", json={"asset_tag": "http://x/devices/tag/PC-100"}
    )
    assert r.status_code == 200
    r = await it.post(
        f"/api/devices/stocktakes/{take['id']}/scans", json={"asset_tag": "pc-100"}
    )  # twice: harmless
    r = await it.post(f"/api/devices/stocktakes/{take['id']}/scans", json={"asset_tag": "ZZ-404"})
    data = r.json()
    assert [i["asset_tag"] for i in data["found"]] == ["PC-100"]
    assert [i["asset_tag"] for i in data["missing"]] == ["WR-100"]
    assert [i["asset_tag"] for i in data["unexpected"]] == ["ZZ-404"]
    page = await it.get(f"/devices/stocktakes/{take['id']}")
    assert "ZZ-404" in page.text and "WR-100" in page.text
    assert (await it.post(f"/api/devices/stocktakes/{take['id']}/close")).status_code == 200
    r = await it.post(f"/api/devices/stocktakes/{take['id']}/scans", json={"asset_tag": "PC-100"})
    assert r.status_code == 409


async def test_labels_are_printable_qr_codes(it):
    pc, _router, _line = await make_bundle(it)
    r = await it.get("/devices/labels", params={"ids": str(pc)})
    assert r.status_code == 200 and "<svg" in r.text and "PC-100" in r.text
    r = await it.get("/devices/tag/PC-100", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/devices/items/{pc}"


async def test_pages_render_for_it(it, db):
    pc, _router, line = await make_bundle(it)
    for url in (
        "/devices/inventory?q=pc&kind=laptop",
        f"/devices/items/{pc}",
        "/devices/lines?q=090-1111",
        f"/devices/lines/{line}",
        "/devices/loans?overdue=true",
        "/devices/loans/new?holder_q=山本",
        "/devices/reports",
        "/devices/import",
        "/devices/incidents",
        "/devices/stocktakes",
        "/devices/mine",
    ):
        r = await it.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert '<html lang="ja">' in r.text
    assert "山本 さくら" in (await it.get("/devices/loans/new?holder_q=山本")).text
    events = (await db.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
    assert events >= 3
    assert (await db.execute(select(func.count()).select_from(Device))).scalar_one() == 2
    assert (await db.execute(select(func.count()).select_from(Loan))).scalar_one() == 0


async def test_line_form_and_wizard_search(it):
    token = it.headers["x-csrftoken"]
    r = await it.post("/devices/lines", data={"number": "080-1", "_csrf_token": token})
    assert r.status_code == 422 and "080-1" in r.text
    r = await it.post(
        "/devices/lines", data={"number": "080-1234-5678", "notice_days": "60", "_csrf_token": token}
    )
    assert r.status_code == 303
    line = await it.get(r.headers["location"])
    assert "+818012345678" in line.text and "60" in line.text
    await make_bundle(it)
    me = (await it.get("/api/me")).json()
    page = await it.get("/devices/loans/new", params={"holder_id": me["id"], "item_q": "wr-1"})
    assert "WR-100" in page.text and "PC-100" not in page.text


async def test_catalog_sim_and_edit_forms(it, db):
    token = it.headers["x-csrftoken"]
    r = await it.post(
        "/devices/catalog/carriers", data={"name": "KDDI", "mcc": "440", "mnc": "50", "_csrf_token": token}
    )
    assert r.status_code == 303
    r = await it.post(
        "/devices/catalog/carriers", data={"name": "KDDI", "mcc": "440", "mnc": "50", "_csrf_token": token}
    )
    assert r.status_code == 422 and "440" in r.text
    carrier = (await it.get("/api/devices/carriers")).json()[0]["id"]
    form = {
        "name": "データ20GB",
        "carrier_id": str(carrier),
        "monthly_fee": "2,480",
        "data_gb": "20",
        "_csrf_token": token,
    }
    assert (await it.post("/devices/catalog/plans", data=form)).status_code == 303
    assert (await it.get("/api/devices/plans")).json()[0]["monthly_fee"] == 2480
    pc, _router, line = await make_bundle(it)
    r = await it.post(f"/devices/lines/{line}/sims", data={"iccid": "123", "_csrf_token": token})
    assert r.status_code == 422 and "ICCID" in r.text
    good = {"iccid": iccid(42), "asset_tag": "wr-100", "pin": "4321", "_csrf_token": token}
    assert (await it.post(f"/devices/lines/{line}/sims", data=good)).status_code == 303
    sims = (await it.get("/api/devices/sims")).json()["items"]
    assert [(s["asset_tag"], s["number"], s["has_pin"]) for s in sims] == [("WR-100", "+819011112222", True)]
    edit = {
        "asset_tag": "PC-100",
        "kind": "laptop",
        "maker": "NEC",
        "model": "VersaPro",
        "_csrf_token": token,
    }
    assert (await it.post(f"/devices/items/{pc}/edit", data=edit)).status_code == 303
    assert (await it.get(f"/api/devices/items/{pc}")).json()["model"] == "VersaPro"
    bad = {**edit, "imei": "1"}
    r = await it.post(f"/devices/items/{pc}/edit", data=bad)
    assert r.status_code == 422 and "IMEI" in r.text


async def test_home_page_lets_people_ask_for_equipment(employee):
    home = await employee.get("/")
    assert home.status_code == 200 and 'action="/devices/mine/requests"' in home.text
    token = employee.headers["x-csrftoken"]
    r = await employee.post("/devices/mine/requests", data={"kinds": "router", "_csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/devices/mine?done=requested"
    home = await employee.get("/")
    assert 'action="/devices/mine/requests"' not in home.text and "情報政策課からの連絡" in home.text


async def test_wizard_and_return_forms_explain_problems(it, employee):
    pc, _router, line = await make_bundle(it)
    me = (await employee.get("/api/me")).json()
    token = it.headers["x-csrftoken"]
    form = {"holder_id": str(me["id"]), "device_ids": str(pc), "line_ids": str(line), "_csrf_token": token}
    r = await it.post("/devices/loans/new", data=form)
    assert r.status_code == 303
    loan_path = r.headers["location"]
    again = await it.post("/devices/loans/new", data=form)
    assert again.status_code == 409 and "PC-100" in again.text and "貸出中" in again.text
    assert 'name="device_ids"' in again.text  # the wizard is shown again, not a bare error page
    r = await it.post("/devices/loans/new", data={"holder_id": str(me["id"]), "_csrf_token": token})
    assert r.status_code == 422 and "1つ以上" in r.text
    loan = await it.get(loan_path)
    item = loan.text.split('name="condition-')[1].split('"')[0]
    r = await it.post(f"{loan_path}/return", data={f"condition-{item}": "good", "_csrf_token": token})
    assert r.status_code == 303
    r = await it.post(f"{loan_path}/return", data={"_csrf_token": token})
    assert r.status_code == 409 and "返却済み" in r.text
