"""Device inventory at city scale on PostgreSQL: list, search, item page and a 10,000-row CSV import.

    python -m bench.devices [--rounds 200] [--warmup 20]

Builds a scratch database (`devices_bench`, dropped and made again each run) with the demo org,
20,000 devices, 10,000 lines and 50,000 historical loans (each with its checkout and return in the
audit trail, so item pages have history to read), plus 2,000 open loans. The real app runs in-process
(`create_app` + `startup`) behind `httpx.ASGITransport`; so does a one-route Litestar app returning a
small JSON object, measured in the same rounds, interleaved, so both see the same machine. Times are
server times: from the ASGI call to the last byte of the response.

Targets (issue #6): list/search p95 < 100 ms; 10,000-row import < 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from litestar import Litestar, get

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "devices_bench"
DEVICES, LINES, LOANS, OPEN_LOANS, IMPORT_ROWS = 20_000, 10_000, 50_000, 2_000, 10_000
TARGETS_MS = {"list": 100.0, "search": 100.0, "import": 10_000.0}


@get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


class Timed:
    """ASGI wrapper that keeps how long the app took for the last request."""

    def __init__(self, app: Any) -> None:
        self.app, self.last = app, 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.last = time.perf_counter() - started


@dataclass
class Series:
    label: str
    times: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        ordered = sorted(self.times)
        return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def luhn_digit(body: str) -> str:
    from devices.checks import luhn_digit as digit

    return digit(body)


async def build(url: str) -> dict[str, Any]:
    """The scratch database, migrated, with the demo org and the inventory; returns facts for the run."""
    from app.db import make_engine, migrate, session_maker
    from app.demo import seed
    from auth.passwords import Passwords

    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.close()
    engine = make_engine(url)
    await migrate(engine)
    async with session_maker(engine)() as db:
        await seed(db, Passwords(1, 8192))
        await db.commit()
    await engine.dispose()
    started = time.perf_counter()
    conn = await asyncpg.connect(f"{PG}/{DATABASE}")
    rng = random.Random(6)
    users = [(r["id"], r["unit_id"]) for r in await conn.fetch("SELECT id, unit_id FROM app_user")]
    it_id = await conn.fetchval("SELECT id FROM app_user WHERE employee_number = '100009'")
    now = datetime.now(UTC)
    kinds = ("laptop", "laptop", "laptop", "router", "smartphone", "tablet")
    makers = ("Dynabook", "NEC", "富士通", "Panasonic", "Apple", "Sharp")
    await conn.execute("INSERT INTO device_carrier (name, mcc, mnc) VALUES ('NTTドコモ', '440', '10')")
    await conn.execute(
        "INSERT INTO device_plan (carrier_id, name, monthly_fee, data_gb) VALUES (1, 'データ30GB', 2980, 30),"
        " (1, 'データ無制限', 6600, NULL), (1, '音声かけ放題', 3850, 5)"
    )
    devices = []
    for n in range(1, DEVICES + 1):
        kind = kinds[n % len(kinds)]
        body = f"35{n:012d}"
        devices.append(
            (
                f"PC-{n:06d}" if kind == "laptop" else f"MB-{n:06d}",
                f"SN{rng.randrange(10**9):09d}",
                body + luhn_digit(body) if kind in ("router", "smartphone") else None,
                kind,
                makers[n % len(makers)],
                f"Model {n % 40}",
                "in_stock",
                date(2024, 4, 1) + timedelta(days=n % 700),
                98_000,
                date(2029, 3, 31),
                "",
                "",  # search: filled below in one UPDATE
                now,
                now,
            )
        )
    await conn.copy_records_to_table(
        "device",
        records=devices,
        columns=[
            "asset_tag",
            "serial",
            "imei",
            "kind",
            "maker",
            "model",
            "status",
            "purchase_date",
            "cost",
            "warranty_end",
            "notes",
            "search",
            "created_at",
            "updated_at",
        ],
    )
    await conn.execute(
        "UPDATE device SET search = lower(concat_ws(' ', asset_tag, serial, imei, maker, model))"
    )
    lines = [
        (
            f"+8190{n:08d}",
            1,
            1 + n % 3,
            "in_stock",
            date(2025, 4, 1),
            date(2027, 3, 31),
            30,
            None,
            None,
            "",
            now,
            now,
        )
        for n in range(1, LINES + 1)
    ]
    await conn.copy_records_to_table(
        "device_line",
        records=lines,
        columns=[
            "number",
            "carrier_id",
            "plan_id",
            "status",
            "contract_start",
            "min_term_end",
            "notice_days",
            "contract_end",
            "quarantine_until",
            "notes",
            "created_at",
            "updated_at",
        ],
    )
    loans: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    item_id = 0
    for loan_id in range(1, LOANS + OPEN_LOANS + 1):
        holder, unit = users[rng.randrange(len(users))]
        is_open = loan_id > LOANS
        out = now - timedelta(days=rng.randrange(30, 900) if not is_open else rng.randrange(1, 60))
        back = None if is_open else out + timedelta(days=rng.randrange(7, 120))
        loans.append(
            (
                holder,
                unit,
                "active" if is_open else "returned",
                out,
                (out + timedelta(days=90)).date(),
                out,
                "2026-04",
                back,
                it_id,
                None if is_open else it_id,
                "",
                "",
            )
        )
        line: int | None
        if is_open:
            device = loan_id - LOANS  # devices 1..OPEN_LOANS are out now
            line = loan_id - LOANS
        else:
            device = rng.randrange(OPEN_LOANS + 1, DEVICES + 1)
            line = rng.randrange(OPEN_LOANS + 1, LINES + 1) if rng.random() < 0.4 else None
        item_id += 1
        items.append(
            (
                loan_id,
                device,
                None,
                f"device:{device}" if is_open else None,
                back,
                None if is_open else "good",
                "",
            )
        )
        if line:
            item_id += 1
            items.append(
                (
                    loan_id,
                    None,
                    line,
                    f"line:{line}" if is_open else None,
                    back,
                    None if is_open else "good",
                    "",
                )
            )
        events.append(
            (
                out,
                it_id,
                "小林 翔太",
                "devices.loan.checkout",
                "loan",
                str(loan_id),
                None,
                json.dumps({"holder_id": holder, "status": "awaiting_acceptance"}),
                "",
            )
        )
        if back:
            events.append(
                (
                    back,
                    it_id,
                    "小林 翔太",
                    "devices.loan.return",
                    "loan",
                    str(loan_id),
                    None,
                    json.dumps({"status": "returned"}),
                    "",
                )
            )
    await conn.copy_records_to_table(
        "device_loan",
        records=loans,
        columns=[
            "holder_id",
            "holder_unit_id",
            "status",
            "out_at",
            "expected_return",
            "accepted_at",
            "terms_version",
            "returned_at",
            "checked_out_by",
            "returned_by",
            "notes",
            "return_notes",
        ],
    )
    await conn.copy_records_to_table(
        "device_loan_item",
        records=items,
        columns=["loan_id", "device_id", "line_id", "open_key", "returned_at", "condition", "condition_note"],
    )
    await conn.copy_records_to_table(
        "audit_event",
        records=events,
        columns=[
            "at",
            "actor_id",
            "actor_label",
            "action",
            "entity_type",
            "entity_id",
            "before",
            "after",
            "ip",
        ],
    )
    await conn.execute(f"UPDATE device SET status = 'on_loan' WHERE id <= {OPEN_LOANS}")
    await conn.execute(f"UPDATE device_line SET status = 'on_loan' WHERE id <= {OPEN_LOANS}")
    await conn.execute("ANALYZE")
    busiest = await conn.fetchval(
        "SELECT device_id FROM device_loan_item WHERE device_id IS NOT NULL"
        " GROUP BY device_id ORDER BY count(*) DESC LIMIT 1"
    )
    await conn.close()
    return {
        "seconds": time.perf_counter() - started,
        "items": len(items),
        "events": len(events),
        "busiest": busiest,
    }


def import_file() -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["資産番号", "種別", "製造番号", "IMEI", "メーカー", "機種", "購入日", "購入金額"])
    for n in range(IMPORT_ROWS):
        body = f"86{n:012d}"
        writer.writerow(
            [
                f"NEW-{n:05d}",
                "スマートフォン" if n % 2 else "ノートPC",
                f"NS{n}",
                body + luhn_digit(body) if n % 2 else "",
                "富士通",
                "arrows",
                "2026/4/1",
                "65,000",
            ]
        )
    return buf.getvalue().encode("cp932")


async def run(args: argparse.Namespace) -> bool:
    from app.main import create_app, shutdown, startup
    from app.settings import Settings

    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"
    try:
        facts = await build(url)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"devices benchmark skipped: PostgreSQL at {PG} unusable ({exc})")
        return True
    print(
        f"data set {DATABASE}: {DEVICES:,} devices, {LINES:,} lines,"
        f" {LOANS:,} returned + {OPEN_LOANS:,} open loans,"
        f" {facts['items']:,} loan items, {facts['events']:,} audit events; built in {facts['seconds']:.1f} s"
    )
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(
            app_env="dev",
            var_dir=Path(tmp),
            database_url=url,
            secret_key="bench-" + os.urandom(8).hex(),
            redis_url=None,
            seed_demo=False,
            migrate_on_start=False,
            mail_poll_seconds=0,
            jobs_interval_seconds=0,
            argon2_time_cost=1,
            argon2_memory_kib=8192,
        )
        hub = create_app(settings)
        await startup(hub)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        timed_hub, timed_bare = Timed(hub), Timed(Litestar([bare]))
        bare_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=timed_bare), base_url="http://t")
        it = httpx.AsyncClient(transport=httpx.ASGITransport(app=timed_hub), base_url="http://t")
        await it.get("/health/live")
        it.headers["x-csrftoken"] = it.cookies.get("csrftoken") or ""
        r = await it.post("/api/auth/login", json={"login": "100009", "password": "telework-demo-2026"})
        assert r.status_code == 200, r.text
        series = {
            "bare": Series("bare Litestar JSON endpoint"),
            "list": Series("device list, 50 a page, random page"),
            "search": Series("device search (serial/model/tag), 50 a page"),
            "filter": Series("device list filtered by kind + status"),
            "lines": Series("line search by number"),
            "loans": Series("open loans list (IT), 50 a page"),
            "item": Series("item page (HTML, with full history)"),
            "busy": Series("item page of the most-lent device"),
        }
        pages = DEVICES // 50

        def calls() -> list[tuple[str, Timed, Any]]:
            return [
                ("bare", timed_bare, bare_client.get("/bare")),
                ("list", timed_hub, it.get("/api/devices/items", params={"page": rng.randrange(1, pages)})),
                (
                    "search",
                    timed_hub,
                    it.get("/api/devices/items", params={"q": f"SN{rng.randrange(100, 999)}"}),
                ),
                (
                    "filter",
                    timed_hub,
                    it.get("/api/devices/items", params={"kind": "router", "status": "in_stock", "page": 3}),
                ),
                (
                    "lines",
                    timed_hub,
                    it.get("/api/devices/lines", params={"q": f"090{rng.randrange(1000, 9999)}"}),
                ),
                (
                    "loans",
                    timed_hub,
                    it.get("/api/devices/loans", params={"status": "open", "page": rng.randrange(1, 40)}),
                ),
                ("item", timed_hub, it.get(f"/devices/items/{rng.randrange(1, DEVICES)}")),
                ("busy", timed_hub, it.get(f"/devices/items/{facts['busiest']}")),
            ]

        for i in range(args.warmup + args.rounds):
            for key, app, pending in calls():
                response = await pending
                if response.status_code != 200:
                    raise RuntimeError(f"{key}: {response.status_code} {response.text[:300]}")
                if i >= args.warmup:
                    series[key].times.append(app.last)
        body = import_file()
        files = {"file": ("devices.csv", body, "text/csv")}
        r = await it.post("/api/devices/import/devices", params={"dry_run": "true"}, files=files)
        dry = timed_hub.last
        assert r.status_code == 200 and r.json()["created"] == IMPORT_ROWS, r.text[:300]
        r = await it.post("/api/devices/import/devices", params={"dry_run": "false"}, files=files)
        real = timed_hub.last
        assert r.status_code == 200 and r.json()["created"] == IMPORT_ROWS, r.text[:300]
        await bare_client.get("/bare")
        series["bare"].times.append(timed_bare.last)
        for client in (bare_client, it):
            await client.aclose()
        await shutdown(hub)
    b50, b95 = series["bare"].pct(0.5), series["bare"].pct(0.95)
    print(f"\nserver time per request, {args.rounds} rounds after {args.warmup} warm-up (interleaved)")
    print(f"  {'':44} {'p50 ms':>8} {'p95 ms':>8} {'p50 ×bare':>10} {'p95 ×bare':>10}")
    ok = True
    for key, s in series.items():
        p50, p95 = s.pct(0.5), s.pct(0.95)
        verdict = ""
        if key in TARGETS_MS:
            passed = p95 < TARGETS_MS[key]
            ok &= passed
            verdict = f"p95 < {TARGETS_MS[key]:.0f} ms  {'PASS' if passed else 'FAIL'}"
        ratio = "" if key == "bare" else f"{p50 / b50:9.0f}× {p95 / b95:9.0f}×"
        print(f"  {s.label:44} {p50:8.2f} {p95:8.2f} {ratio:>21}   {verdict}")
    passed = real * 1000 < TARGETS_MS["import"]
    ok &= passed
    print(f"\n{IMPORT_ROWS:,}-row CSV import (Shift_JIS, 8 columns), server time")
    print(
        f"  dry run (check only)                       {dry:6.2f} s"
        f"   ({dry * 1000 / b50:,.0f}× a bare request)"
    )
    print(
        f"  import (check + write, one transaction)    {real:6.2f} s"
        f"   ({real * 1000 / b50:,.0f}× a bare request)"
        f"   < 10 s  {'PASS' if passed else 'FAIL'}"
    )
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    if not asyncio.run(run(args)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
