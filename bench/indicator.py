"""The indicator at city scale on PostgreSQL: a month's figures and the dashboard vs a hand-written query.

    python -m bench indicator [--rounds 30] [--rebuild]

Data: `bench.citygen` with two years of history (10,000 staff, ~300 units, ≈ 360,000 telework days of
which ≈ 300,000 approved). In the same run, interleaved, it times:
- `indicator.count_month` for the last finished month (the app's counting: rule conditions in SQL,
  per-unit breakdown, distinct staff), against a hand-written `COUNT … GROUP BY` over the same rows with
  the same conditions, sent straight through asyncpg; both must give the same numbers;
- the dashboard page `/indicator` (24 months: closed months from `indicator_month`, the running month
  counted live) and its JSON, as server time (ASGI call to last byte) against a bare Litestar endpoint.
Targets (issue #5): dashboard p95 < 200 ms; the month computation within 2× the hand-written query.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import asyncpg
import httpx
from litestar import Litestar

from bench import citygen
from bench.telework import Series, Timed, _dsn, _sign_in, bare

DATABASE = os.environ.get("BENCH_DATABASE_2Y", "telework_bench_2y")
HAND_WRITTEN = """
SELECT d.unit_id, count(*), count(DISTINCT d.user_id)
FROM telework_day d
WHERE d.state = 'approved' AND d.day BETWEEN $1 AND $2
  AND EXISTS (SELECT 1 FROM telework_report r WHERE r.day_id = d.id AND r.started_at IS NOT NULL)
GROUP BY d.unit_id
"""


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[max(0, int(q * len(ordered) + 0.999999) - 1)]


async def run(args: argparse.Namespace) -> bool:
    from sqlalchemy import text

    from app.main import create_app, shutdown, startup
    from app.settings import Settings
    from scheduling import indicator

    try:
        city, reused = await citygen.ensure(citygen.CityParams(years=2), args.database, args.rebuild)
    except (OSError, asyncpg.PostgresError, subprocess.CalledProcessError) as exc:
        print(f"indicator benchmark skipped: PostgreSQL unusable ({getattr(exc, 'stderr', None) or exc})")
        return True
    print(
        f"data set {city.database}: {'reused' if reused else 'generated now'}; "
        f"generation took {city.generated_seconds:.1f} s\n  {citygen.describe(city)}"
    )
    conn = await asyncpg.connect(_dsn(city))
    # Someone to read the whole city's dashboard: the benchmark's ICS person also gets the HR role.
    await conn.execute(
        "INSERT INTO role_assignment (user_id, role, created_at) SELECT $1, 'hr_admin', now() "
        "WHERE NOT EXISTS (SELECT 1 FROM role_assignment WHERE user_id = $1 AND role = 'hr_admin')",
        city.feed_user_id,
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(
            app_env="dev",
            var_dir=Path(tmp),
            database_url=city.url,
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
        config = hub.state.telework_config
        try:
            today = config.today()
            month = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)  # last finished
            started = time.perf_counter()
            async with hub.state.db_sessions() as db:
                closed = await indicator.close_due(db, config, today)
                await db.commit()
            print(
                f"closing: {closed} month(s) closed now in {time.perf_counter() - started:.1f} s (idempotent)"
            )
            last = indicator.month_end(month)
            app_times: list[float] = []
            sql_times: list[float] = []
            app_result: tuple[int, list[tuple[int, int, int]]] = (0, [])
            sql_result: tuple[int, list[tuple[int, int, int]]] = (0, [])
            for i in range(args.warmup + args.rounds):
                t0 = time.perf_counter()
                async with hub.state.db_sessions() as db:
                    figures = await indicator.count_month(db, config, month)
                    await db.execute(text("SELECT 1"))
                t1 = time.perf_counter()
                rows = await conn.fetch(HAND_WRITTEN, month, last)
                t2 = time.perf_counter()
                if i >= args.warmup:
                    app_times.append(t1 - t0)
                    sql_times.append(t2 - t1)
                app_result = (
                    figures.count,
                    sorted((u.unit_id or 0, u.count, u.staff) for u in figures.units),
                )
                sql_result = (sum(r[1] for r in rows), sorted((r[0] or 0, r[1], r[2]) for r in rows))
            if app_result != sql_result:
                raise RuntimeError(
                    f"the app and the hand-written query disagree: {app_result[0]} vs {sql_result[0]}"
                )
            timed_hub, timed_bare = Timed(hub), Timed(Litestar([bare]))
            hr = await _sign_in(timed_hub, city.feed_login, city.password)
            bare_client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=timed_bare), base_url="http://x"
            )
            series = {
                "bare": Series("bare Litestar JSON endpoint"),
                "page": Series("dashboard page /indicator (24 months)"),
                "json": Series("/api/indicator/months (24 months, JSON)"),
            }
            for i in range(args.warmup + args.rounds):
                for key, app, call in (
                    ("bare", timed_bare, lambda: bare_client.get("/bare")),
                    ("page", timed_hub, lambda: hr.get("/indicator")),
                    ("json", timed_hub, lambda: hr.get("/api/indicator/months")),
                ):
                    r = await call()
                    if r.status_code != 200:
                        raise RuntimeError(f"{key}: {r.status_code} {r.text[:300]}")
                    if i >= args.warmup:
                        series[key].add(app)
            await hr.aclose()
            await bare_client.aclose()
        finally:
            await shutdown(hub)
            await conn.close()
    count, units = app_result
    print(f"month {month:%Y-%m}: {count:,} instances in {len(units)} units; the app and the query agree")
    a50, a95, s50, s95 = _ms(app_times, 0.5), _ms(app_times, 0.95), _ms(sql_times, 0.5), _ms(sql_times, 0.95)
    ratio = statistics.median(app_times) / statistics.median(sql_times)
    ok_month = ratio <= 2.0
    print(f"  {'':46} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"  {'hand-written COUNT … GROUP BY (asyncpg)':46} {s50:8.1f} {s95:8.1f}")
    print(
        f"  {'indicator.count_month (app, per-unit)':46} {a50:8.1f} {a95:8.1f}   "
        f"{ratio:.2f}× the query (target ≤ 2×)  {'PASS' if ok_month else 'FAIL'}"
    )
    b50, b95 = series["bare"].pct(0.5), series["bare"].pct(0.95)
    ok = ok_month
    for key in ("bare", "page", "json"):
        s = series[key]
        p50, p95 = s.pct(0.5), s.pct(0.95)
        verdict = ""
        if key == "page":
            ok = ok and p95 < 200
            verdict = f"p95 < 200 ms  {'PASS' if p95 < 200 else 'FAIL'}"
        print(
            f"  {s.label:46} {p50:8.1f} {p95:8.1f}   {p50 / b50:6.0f}× / {p95 / b95:6.0f}× bare   {verdict}"
        )
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    return ok


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench indicator", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--database", default=DATABASE)
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
