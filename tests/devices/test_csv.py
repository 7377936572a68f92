"""CSV import and export of devices, lines, SIMs and usage: Excel encodings, dry runs, all-or-nothing."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from devices.models import Device, SimCard, UsageRecord
from tests.devices.helpers import iccid, imei


@pytest.fixture
async def it(make_client):
    return await make_client("it_admin")


async def upload(client, kind: str, body: bytes, *, dry_run: bool = False):
    return await client.post(
        f"/api/devices/import/{kind}",
        params={"dry_run": str(dry_run).lower()},
        files={"file": (f"{kind}.csv", body, "text/csv")},
    )


def sheet(header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


JA_DEVICE_HEADER = ["資産番号", "種別", "製造番号", "IMEI", "メーカー", "機種", "状態", "購入日", "購入金額"]


async def count(db, model) -> int:
    await db.rollback()
    return (await db.execute(select(func.count()).select_from(model))).scalar_one()


async def test_japanese_excel_file_in_cp932_is_read(it, db):
    body = sheet(
        JA_DEVICE_HEADER,
        [
            ["PC-001", "ノートPC", "SN1", "", "富士通", "LIFEBOOK", "在庫", "2025/4/1", "120,000"],
            ["WR-001", "モバイルルーター", "SN2", imei(1), "ＮＥＣ", "Aterm", "", "2025年4月1日", ""],
        ],
        encoding="cp932",
    )
    r = await upload(it, "devices", body, dry_run=True)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["errors"]) == (2, [])
    assert await count(db, Device) == 0  # a dry run writes nothing
    r = await upload(it, "devices", body)
    assert r.status_code == 200 and r.json()["created"] == 2
    await db.rollback()
    router = (await db.execute(select(Device).where(Device.asset_tag == "WR-001"))).scalar_one()
    assert (router.kind, router.maker, str(router.purchase_date)) == ("router", "ＮＥＣ", "2025-04-01")
    pc = (await db.execute(select(Device).where(Device.asset_tag == "PC-001"))).scalar_one()
    assert pc.cost == 120000
    r = await upload(it, "devices", body)
    assert r.json()["unchanged"] == 2 and r.json()["created"] == 0
    export = await it.get("/api/devices/items.csv")
    assert export.content.startswith(b"\xef\xbb\xbf")
    assert "資産番号" in export.text and "モバイルルーター" in export.text


async def test_row_errors_write_nothing(it, db):
    body = sheet(
        ["asset_tag", "kind", "imei", "status"],
        [
            ["PC-1", "laptop", "", ""],
            ["PC-2", "toaster", "", ""],
            ["PC-3", "smartphone", "123456789012345", ""],
            ["PC-1", "laptop", "", ""],
            ["PC-4", "laptop", "", "貸出中"],
        ],
    )
    r = await upload(it, "devices", body, dry_run=True)
    errors = {(e["row"], e["field"]) for e in r.json()["errors"]}
    assert errors == {(3, "kind"), (4, "imei"), (5, "asset_tag"), (6, "status")}
    messages = " ".join(e["message"] for e in r.json()["errors"])
    assert "2行目と重複" in messages and "IMEI" in messages
    r = await upload(it, "devices", body)
    assert r.status_code == 422 and len(r.json()["errors"]) == 4
    assert await count(db, Device) == 0


async def test_broken_files_are_refused_plainly(it):
    r = await upload(it, "devices", b'asset_tag,kind\r\n"PC-1,laptop\r\n')
    assert r.status_code == 400
    r = await upload(it, "devices", sheet(["asset_tag", "colour"], [["PC-1", "red"]]))
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} >= {"kind"}
    r = await upload(it, "devices", b"\x81\x00\xff\xfe")
    assert r.status_code == 415
    r = await upload(it, "devices", "資産番号,種別\r\nPC-1,ノートPC\r\n".encode()[:-5] + b"\xe3\x81")
    assert r.status_code in (200, 422)  # undecodable UTF-8 falls back to cp932 and is judged row by row
    r = await upload(it, "devices", b"")
    assert r.status_code == 422
    r = await upload(it, "nonsense", b"a,b\r\n")
    assert r.status_code == 404


async def test_lines_sims_and_usage(it, db):
    await it.post("/api/devices/carriers", json={"name": "NTTドコモ", "mcc": "440", "mnc": "10"})
    await it.post("/api/devices/plans", json={"name": "データ30GB", "monthly_fee": 2980, "data_gb": 30})
    lines = sheet(
        ["電話番号", "通信事業者", "料金プラン", "最低利用期間満了日", "解約予告日数"],
        [["090-1234-0001", "NTTドコモ", "データ30GB", "2027-03-31", "30"], ["+819012340002", "", "", "", ""]],
    )
    r = await upload(it, "lines", lines)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    sims = sheet(
        ["ICCID", "形状", "電話番号", "PIN", "PUK"],
        [[iccid(1), "nano", "090-1234-0001", "1111", "22223333"], [iccid(2), "esim", "", "", ""]],
    )
    r = await upload(it, "sims", sims)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    await db.rollback()
    sim = (await db.execute(select(SimCard).where(SimCard.iccid == iccid(1)))).scalar_one()
    assert sim.pin_enc and "1111" not in sim.pin_enc and sim.line_id is not None
    exported = (await it.get("/api/devices/sims.csv")).text
    assert iccid(1) in exported and "1111" not in exported and "22223333" not in exported
    trail = " ".join(f"{e.before} {e.after}" for e in (await db.execute(select(AuditEvent))).scalars())
    assert "1111" not in trail and "22223333" not in trail
    bad = sheet(["ICCID", "電話番号"], [[iccid(3), "090-9999-9999"]])
    r = await upload(it, "sims", bad)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "number"
    usage = sheet(
        ["電話番号", "利用月", "データ使用量(GB)"],
        [
            ["090-1234-0001", "2026-09", "0"],
            ["090-1234-0001", "2026/10", "1.5"],
            ["+819012340002", "2026年10月", "0"],
        ],
    )
    r = await upload(it, "usage", usage)
    assert r.status_code == 200 and r.json()["created"] == 3, r.text
    assert await count(db, UsageRecord) == 3
    r = await upload(it, "usage", usage)
    assert r.json()["created"] == 0 and r.json()["unchanged"] == 3
    assert "電話番号" in (await it.get("/api/devices/lines.csv")).text


async def test_ten_thousand_rows_import_in_under_ten_seconds(it, db):
    rows = [
        [
            f"PC-{n:05d}",
            "laptop" if n % 3 else "router",
            f"SN{n}",
            imei(n) if n % 3 == 0 else "",
            "Dynabook",
            "G83",
            "",
            "2025-04-01",
            "98000",
        ]
        for n in range(10_000)
    ]
    body = sheet(
        ["asset_tag", "kind", "serial", "imei", "maker", "model", "status", "purchase_date", "cost"],
        rows,
        "cp932",
    )
    started = time.perf_counter()
    r = await upload(it, "devices", body, dry_run=True)
    dry = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["created"] == 10_000
    started = time.perf_counter()
    r = await upload(it, "devices", body)
    real = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["created"] == 10_000, r.text[:300]
    assert await count(db, Device) == 10_000
    assert dry < 10 and real < 10, (dry, real)
    started = time.perf_counter()
    rows[5][4] = "NEC"
    r = await upload(
        it,
        "devices",
        sheet(
            ["asset_tag", "kind", "serial", "imei", "maker", "model", "status", "purchase_date", "cost"], rows
        ),
    )
    assert r.json()["updated"] == 1 and r.json()["unchanged"] == 9_999
    assert time.perf_counter() - started < 10


async def test_import_page_dry_run_then_import(it, db):
    token = it.headers["x-csrftoken"]
    files = {"file": ("d.csv", sheet(["asset_tag", "kind"], [["PC-9", "laptop"]]), "text/csv")}
    r = await it.post("/devices/import/devices", data={"dry_run": "1", "_csrf_token": token}, files=files)
    assert r.status_code == 200 and "まだ登録していません" in r.text
    r = await it.post("/devices/import/devices", data={"_csrf_token": token}, files=files)
    assert r.status_code == 200 and "取り込みました" in r.text
    assert await count(db, Device) == 1
    bad = {"file": ("d.csv", sheet(["asset_tag", "kind"], [["PC-10", "fridge"]]), "text/csv")}
    r = await it.post("/devices/import/devices", data={"_csrf_token": token}, files=bad)
    assert r.status_code == 422 and "fridge" in r.text
