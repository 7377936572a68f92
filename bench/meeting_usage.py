"""Meeting usage figures over a year of stays: one month's figures vs a plain COUNT over the same rows.

    python -m bench meeting_usage [--stays 200000] [--rounds 20] [--db both|sqlite|postgres]

Data: 300 units, 10,000 staff and a year (2025) of online meetings, built afresh each run (a few seconds):
meetings of 2–8 people (mostly one unit, sometimes several), 10 % of participants reconnect once, some guests,
people alone in a room, meetings across midnight — `--stays` rows in all (default 200,000) in
``rtc_attendance``. In the same run, interleaved, for June 2025 (≈ 1/12 of the rows) it times:
- `rtc.usage.usage`: meetings held, participants and participant-minutes, totals and per unit, aggregated
  in the database (two statements), as the page, the API and the indicator's measures call it;
- the floor: a plain ``SELECT count(*)`` of the stays that touch the month (the rows any answer must read);
- the naive way: load the month's stays and work the figures out in Python (also the check: both must agree).
PostgreSQL is used when a server answers at BENCH_PGHOST (database `telework_bench_usage`, dropped and made
again); SQLite always, in a temporary file. Target: faster than loading the rows, and p50 < 200 ms (the
indicator dashboard computes these figures on every view); the ratio to the plain COUNT is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")
MONTH = date(2025, 6, 1)
MONTH_LAST = date(2025, 6, 30)
NOW = datetime(2026, 1, 15, tzinfo=UTC)
DATABASE = os.environ.get("BENCH_DATABASE_USAGE", "telework_bench_usage")
COLUMNS = (
    "room_id",
    "meeting_id",
    "user_id",
    "unit_id",
    "guest",
    "worker",
    "joined_at",
    "left_at",
    "seen_at",
)
Stay = tuple[str, None, int | None, int | None, bool, str, datetime, datetime | None, datetime]


def build(
    stays: int, seed: int = 8
) -> tuple[list[tuple[int, str, int | None]], list[tuple[int, int]], list[Stay]]:
    """Units (id, code, parent), staff (id, unit) and the stays, deterministic for a seed."""
    rng = random.Random(seed)
    units: list[tuple[int, str, int | None]] = []
    for k in range(12):
        units.append((len(units) + 1, f"K{k:02d}", None))
        top = len(units)
        for b in range(4):
            units.append((len(units) + 1, f"K{k:02d}B{b}", top))
            mid = len(units)
            for c in range(5):
                units.append((len(units) + 1, f"K{k:02d}B{b}C{c}", mid))
    leaves = [u[0] for u in units if len(u[1]) == 7]
    staff = [(i + 1, leaves[i % len(leaves)]) for i in range(10_000)]
    by_unit: dict[int, list[int]] = defaultdict(list)
    for uid, unit in staff:
        by_unit[unit].append(uid)
    unit_of = dict(staff)
    year = datetime(2025, 1, 1, tzinfo=JST)
    rows: list[Stay] = []
    rooms = [f"Series{n:05d}" for n in range(4000)]
    while len(rows) < stays:
        day = year + timedelta(days=rng.randrange(365))
        late = rng.random() < 0.02  # now and then a meeting across midnight
        start = day + (
            timedelta(hours=23, minutes=30) if late else timedelta(minutes=rng.randrange(540, 1080))
        )
        length = timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90, 120)))
        room = rng.choice(rooms) if rng.random() < 0.6 else f"Instant{len(rows):07d}"
        if rng.random() < 0.08:  # somebody alone in a room
            who = rng.randrange(1, 10_001)
            people: list[int | None] = [who]
        else:
            home = rng.choice(leaves)
            size = rng.choice((2, 2, 3, 3, 4, 5, 6, 8))
            people = list(rng.sample(by_unit[home], min(size, len(by_unit[home]))))
            if rng.random() < 0.3:
                people += rng.sample(range(1, 10_001), rng.randrange(1, 4))
            if rng.random() < 0.1:
                people += [None] * rng.randrange(1, 3)  # guests
        for person in people:
            joined = start + timedelta(seconds=rng.randrange(0, 300))
            left = start + length + timedelta(seconds=rng.randrange(-300, 300))
            home_unit = unit_of.get(person) if person is not None else None
            if person is not None and rng.random() < 0.1:  # dropped once and came back
                cut = joined + (left - joined) / 2
                rows.append((room, None, person, home_unit, False, "w1", joined, cut, cut))
                joined = cut + timedelta(seconds=20)
            rows.append((room, None, person, home_unit, person is None, "w1", joined, left, left))
    return units, staff, [tuple(_utc(v) for v in r) for r in rows[:stays]]  # type: ignore[misc]


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def python_figures(rows: Sequence[Sequence[Any]]) -> tuple[int, int, int, dict[Any, tuple[int, int, int]]]:
    """The definitions worked out row by row from the stays touching the month (the naive way; the check)."""
    start = datetime(MONTH.year, MONTH.month, 1, tzinfo=JST).astimezone(UTC)
    end = datetime(2025, 7, 1, tzinfo=JST).astimezone(UTC)
    stop = min(end, NOW)
    # room-day -> participant (a person, or one guest stay) -> (unit, guest), a person in their lowest unit
    meetings: dict[tuple[str, date], dict[Any, tuple[int | None, bool]]] = defaultdict(dict)
    seconds: dict[tuple[int | None, bool], float] = defaultdict(float)
    for n, (room, user, unit, guest, joined, left) in enumerate(rows):
        joined, left = _aware(joined), _aware(left)
        if start <= joined < end:
            group = meetings[(room, joined.astimezone(JST).date())]
            key = user if user is not None else ("stay", n)
            had = group.get(key)
            if had is None or (unit is not None and (had[0] is None or unit < had[0])):
                group[key] = (unit, bool(guest))
        lo, hi = max(joined, start), min(left or stop, stop)
        if hi > lo:
            seconds[(unit, bool(guest))] += (hi - lo).total_seconds()
    held = {k: g for k, g in meetings.items() if len(g) >= 2}
    per: dict[tuple[int | None, bool], list[int]] = defaultdict(lambda: [0, 0, 0])
    for group in held.values():
        parts: dict[tuple[int | None, bool], int] = defaultdict(int)
        for unit_guest in group.values():
            parts[unit_guest] += 1
        for key, n in parts.items():
            per[key][0] += 1
            per[key][1] += n
    for key, secs in seconds.items():
        per[key][2] = round(secs / 60)
    units = {k: (v[0], v[1], v[2]) for k, v in per.items() if v[0] or v[2]}
    return len(held), sum(len(g) for g in held.values()), sum(v[2] for v in units.values()), units


def _aware(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def _fill_sqlite(path: Path, units: list[Any], staff: list[Any], stays: list[Stay]) -> str:
    from app.db import make_engine, migrate

    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()
    conn = sqlite3.connect(path)
    now = "2025-01-01 00:00:00.000000"
    conn.executemany(
        "INSERT INTO org_unit (id, code, name, name_en, level, parent_id, active, created_at, updated_at) "
        "VALUES (?, ?, ?, '', 'ka', ?, 1, ?, ?)",
        [(i, code, f"課{code}", parent, now, now) for i, code, parent in units],
    )
    conn.executemany(
        "INSERT INTO app_user (id, employee_number, name, kana, email, employment_type, locale, active, "
        "unit_id, "
        "created_at, updated_at) VALUES (?, ?, ?, '', ?, 'regular', 'ja', 1, ?, ?, ?)",
        [(i, f"{200000 + i}", f"職員{i}", f"u{i}@city.example", unit, now, now) for i, unit in staff],
    )

    def fmt(v: Any) -> Any:
        return v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v

    conn.executemany(
        f"INSERT INTO rtc_attendance ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [tuple(fmt(v) for v in r) for r in stays],
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return url


async def _fill_postgres(units: list[Any], staff: list[Any], stays: list[Stay]) -> str | None:
    import asyncpg

    from app.db import make_engine, migrate
    from bench import citygen

    try:
        citygen._pg("dropdb", "--if-exists", "--force", DATABASE)
        citygen._pg("createdb", DATABASE)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"PostgreSQL skipped: {getattr(exc, 'stderr', None) or exc}")
        return None
    url = citygen.database_url(DATABASE)
    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        now = datetime(2025, 1, 1, tzinfo=UTC)
        await conn.copy_records_to_table(
            "org_unit",
            records=[(i, code, f"課{code}", "", "ka", parent, True, now, now) for i, code, parent in units],
            columns=[
                "id",
                "code",
                "name",
                "name_en",
                "level",
                "parent_id",
                "active",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "app_user",
            records=[
                (
                    i,
                    f"{200000 + i}",
                    f"職員{i}",
                    "",
                    f"u{i}@city.example",
                    "regular",
                    "ja",
                    True,
                    unit,
                    now,
                    now,
                )
                for i, unit in staff
            ],
            columns=[
                "id",
                "employee_number",
                "name",
                "kana",
                "email",
                "employment_type",
                "locale",
                "active",
                "unit_id",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table("rtc_attendance", records=stays, columns=list(COLUMNS))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return url


COUNT_SQL = (
    "SELECT count(*) FROM rtc_attendance WHERE joined_at < :stop AND (left_at IS NULL OR left_at > :start)"
)
ROWS_SQL = (
    "SELECT room_id, user_id, unit_id, guest, joined_at, left_at FROM rtc_attendance "
    "WHERE joined_at < :stop AND (left_at IS NULL OR left_at > :start)"
)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[max(0, int(q * len(ordered) + 0.999999) - 1)]


async def measure(label: str, url: str, rounds: int, warmup: int) -> bool:
    from sqlalchemy import bindparam, text
    from sqlmodel.sql.sqltypes import UTCDateTime

    from app.db import make_engine, session_maker
    from rtc import usage

    engine = make_engine(url, sqlite_immediate=False)
    sessions = session_maker(engine)
    start = usage.tokyo_midnight(MONTH)
    stop = min(usage.tokyo_midnight(MONTH_LAST + timedelta(days=1)), NOW)
    params = [bindparam("start", type_=UTCDateTime()), bindparam("stop", type_=UTCDateTime())]
    count_q, rows_q = text(COUNT_SQL).bindparams(*params), text(ROWS_SQL).bindparams(*params)
    times: dict[str, list[float]] = {"app": [], "count": [], "python": []}
    app_result: Any = None
    py_result: Any = None
    touched = 0
    try:
        for i in range(warmup + rounds):
            async with sessions() as db:
                t0 = time.perf_counter()
                figures = await usage.usage(db, MONTH, MONTH_LAST, now=NOW)
                t1 = time.perf_counter()
                touched = int((await db.execute(count_q, {"start": start, "stop": stop})).scalar_one())
                t2 = time.perf_counter()
                rows = (await db.execute(rows_q, {"start": start, "stop": stop})).all()
                py_result = python_figures(rows)
                t3 = time.perf_counter()
            if i >= warmup:
                times["app"].append(t1 - t0)
                times["count"].append(t2 - t1)
                times["python"].append(t3 - t2)
            app_result = (
                figures.meetings,
                figures.participants,
                figures.minutes,
                {(u.unit_id, u.guest): (u.meetings, u.participants, u.minutes) for u in figures.units},
            )
    finally:
        await engine.dispose()
    # Meetings and participants exactly; minutes to a minute per row (SQLite sums float seconds).
    close = app_result[3].keys() == py_result[3].keys() and all(
        a[:2] == b[:2] and abs(a[2] - b[2]) <= 1
        for a, b in ((app_result[3][k], py_result[3][k]) for k in app_result[3])
    )
    if app_result[:2] != py_result[:2] or abs(app_result[2] - py_result[2]) > len(app_result[3]) or not close:
        raise RuntimeError(
            f"{label}: the app and the row-by-row figures disagree: {app_result[:3]} vs {py_result[:3]}"
        )
    meetings, participants, minutes, units = app_result
    print(
        f"{label}: June 2025 — {meetings:,} meetings held, {participants:,} participants, "
        f"{minutes:,} participant-minutes in {len(units)} rows; {touched:,} stays touch the month; "
        "the app and the row-by-row figures agree"
    )
    count50 = statistics.median(times["count"])
    app50, py50 = statistics.median(times["app"]), statistics.median(times["python"])
    print(f"  {'':52} {'p50 ms':>8} {'p95 ms':>8}")
    for key, name in (
        ("count", "plain COUNT(*) of the month's stays (the floor)"),
        ("app", "rtc.usage.usage (2 aggregate statements)"),
        ("python", "load the month's stays + compute in Python"),
    ):
        print(f"  {name:52} {_ms(times[key], 0.5):8.1f} {_ms(times[key], 0.95):8.1f}")
    ok = app50 < py50 and app50 < 0.2
    print(
        f"  the app: {app50 / count50:.1f}× the plain COUNT (the price of grouping), "
        f"{py50 / app50:.1f}× faster than loading the rows; "
        f"target: faster than loading them, p50 < 200 ms  {'PASS' if ok else 'FAIL'}"
    )
    return ok


async def run(args: argparse.Namespace) -> bool:
    started = time.perf_counter()
    units, staff, stays = build(args.stays)
    print(
        f"data: {len(units)} units, {len(staff):,} staff, {len(stays):,} stays in 2025 "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if args.db in ("both", "sqlite"):
            t = time.perf_counter()
            url = await _fill_sqlite(Path(tmp) / "usage.db", units, staff, stays)
            print(f"SQLite loaded in {time.perf_counter() - t:.1f} s")
            ok = await measure("SQLite", url, args.rounds, args.warmup) and ok
        if args.db in ("both", "postgres"):
            t = time.perf_counter()
            pg = await _fill_postgres(units, staff, stays)
            if pg is not None:
                print(f"PostgreSQL loaded in {time.perf_counter() - t:.1f} s")
                ok = await measure("PostgreSQL", pg, args.rounds, args.warmup) and ok
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    return ok


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench meeting_usage", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stays", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--db", choices=("both", "sqlite", "postgres"), default="both")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
