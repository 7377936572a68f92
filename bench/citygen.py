"""A city-scale data set in PostgreSQL for the benchmarks: org tree, staff, a year (or more) of telework.

    python -m bench.citygen [--staff 10000] [--units 300] [--years 1] [--rebuild]

What it builds (defaults), on a fresh database created with `createdb` and migrated with `app.db.migrate`:
- ~300 org units in a 局 > 部 > 課 > 係 tree, one `unit_head` per unit (the unit's first member);
- 10,000 staff, all with the same password hash (hashed once: signing in works for everyone);
- a few policy versions (weekly and monthly caps, minimum on-site ratio, notice) on the 局;
- one year of requests, ≈ 180,000 days: singles, short ranges and weekly patterns; full, AM and PM;
  working days only; past days mostly approved, some rejected, withdrawn, expired or cancelled;
  future days approved or still submitted; decisions as approval steps; start/end reports on past days;
- a 200-person 課 whose head holds exactly 500 pending days in the coming working days;
- one person with an approved day on most working days of the period (the personal ICS feed).

Rows go in with asyncpg COPY, not ORM objects. The parameters, the schema heads and the day the data
is built around are kept as the database's comment: `ensure()` reuses a database built the same way
and rebuilds otherwise, so the benchmarks pay for generation once a day. The indicator benchmark can
ask for several `years` of history: `await ensure(CityParams(years=3), "telework_bench_3y")` (one
database per parameter set, or two benchmarks rebuild each other's).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

import asyncpg

from scheduling.calendar import WorkingCalendar
from scheduling.config import TOKYO, TeleworkConfig

GENERATOR_VERSION = 2  # bump when the generated data changes shape
PASSWORD = "bench-city-password-2026"
PG_HOST = os.environ.get("BENCH_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PGPORT", "5432"))
PG_USER = os.environ.get("BENCH_PGUSER", "postgres")
DEFAULT_DATABASE = os.environ.get("BENCH_DATABASE", "telework_bench")

KYOKU = [
    ("総務局", "General Affairs Bureau"),
    ("財政局", "Finance Bureau"),
    ("市民局", "Citizens' Affairs Bureau"),
    ("健康福祉局", "Health and Welfare Bureau"),
    ("こども未来局", "Children's Future Bureau"),
    ("環境局", "Environment Bureau"),
    ("経済観光局", "Economy and Tourism Bureau"),
    ("都市整備局", "Urban Development Bureau"),
    ("建設局", "Construction Bureau"),
    ("教育委員会事務局", "Board of Education Secretariat"),
    ("上下水道局", "Waterworks Bureau"),
    ("消防局", "Fire Bureau"),
]
BU = [
    ("総務部", "General Affairs"),
    ("企画部", "Planning"),
    ("事業部", "Operations"),
    ("管理部", "Management"),
]
KA = [
    ("庶務課", "General Affairs"),
    ("企画課", "Planning"),
    ("調整課", "Coordination"),
    ("管理課", "Management"),
    ("事業課", "Projects"),
    ("指導課", "Guidance"),
    ("推進課", "Promotion"),
    ("審査課", "Review"),
    ("施設課", "Facilities"),
    ("経理課", "Accounting"),
]
KAKARI = [
    ("庶務係", "General"),
    ("管理係", "Management"),
    ("調整係", "Coordination"),
    ("事業係", "Operations"),
]
BIG_UNIT = ("市民窓口課", "Citizen Services Division")
SURNAMES = [
    ("佐藤", "さとう"),
    ("鈴木", "すずき"),
    ("高橋", "たかはし"),
    ("田中", "たなか"),
    ("伊藤", "いとう"),
    ("渡辺", "わたなべ"),
    ("山本", "やまもと"),
    ("中村", "なかむら"),
    ("小林", "こばやし"),
    ("加藤", "かとう"),
    ("吉田", "よしだ"),
    ("山田", "やまだ"),
    ("佐々木", "ささき"),
    ("山口", "やまぐち"),
    ("松本", "まつもと"),
    ("井上", "いのうえ"),
    ("木村", "きむら"),
    ("林", "はやし"),
    ("斎藤", "さいとう"),
    ("清水", "しみず"),
    ("山崎", "やまざき"),
    ("森", "もり"),
    ("池田", "いけだ"),
    ("橋本", "はしもと"),
    ("阿部", "あべ"),
    ("石川", "いしかわ"),
    ("前田", "まえだ"),
    ("藤田", "ふじた"),
    ("小川", "おがわ"),
    ("岡田", "おかだ"),
]
GIVEN = [
    ("太郎", "たろう"),
    ("花子", "はなこ"),
    ("一郎", "いちろう"),
    ("美咲", "みさき"),
    ("健太", "けんた"),
    ("直子", "なおこ"),
    ("大輔", "だいすけ"),
    ("由美", "ゆみ"),
    ("翔太", "しょうた"),
    ("恵", "めぐみ"),
    ("拓也", "たくや"),
    ("さくら", "さくら"),
    ("亮", "りょう"),
    ("彩", "あや"),
    ("誠", "まこと"),
    ("愛", "あい"),
    ("修", "おさむ"),
    ("真由美", "まゆみ"),
    ("翼", "つばさ"),
    ("千尋", "ちひろ"),
    ("浩二", "こうじ"),
    ("香織", "かおり"),
    ("大樹", "だいき"),
    ("優子", "ゆうこ"),
    ("隆", "たかし"),
    ("明美", "あけみ"),
    ("悠斗", "ゆうと"),
    ("玲奈", "れな"),
    ("陽介", "ようすけ"),
    ("舞", "まい"),
]
PLANS = [
    "資料作成",
    "予算要求資料の作成",
    "議会答弁案の作成",
    "統計データの集計",
    "マニュアル改訂",
    "研修準備",
]
EMPLOYMENT = [("regular", 0.80), ("fixed_term", 0.08), ("part_time", 0.07), ("reappointed", 0.05)]
PARTS = [("full", 0.76), ("am", 0.12), ("pm", 0.12)]


@dataclass(frozen=True)
class CityParams:
    """What to build. `anchor` is 'today' for the data: the period ends `ahead_days` after it."""

    staff: int = 10_000
    units: int = 300
    years: int = 1
    days_per_person: float = 18.0  # telework days (all states) per person and year: 180,000 for 10,000
    big_unit_size: int = 200
    big_unit_pending: int = 500
    ahead_days: int = 91
    seed: int = 4
    anchor: date = field(default_factory=lambda: datetime.now(TOKYO).date())

    @property
    def last(self) -> date:
        return self.anchor + timedelta(days=self.ahead_days)

    @property
    def first(self) -> date:
        return self.last - timedelta(days=365 * self.years - 1)


@dataclass
class City:
    """What the benchmarks need to know about a generated database (kept as its comment)."""

    database: str
    fingerprint: str
    params: dict[str, Any]
    generated_at: str
    generated_seconds: float
    counts: dict[str, int]
    states: dict[str, int]
    password: str
    big_unit_id: int
    big_unit_members: int
    head_id: int
    head_login: str
    pending_day_ids: list[int]
    coverage_month: str
    feed_user_id: int
    feed_login: str
    feed_approved_days: int

    @property
    def url(self) -> str:
        return database_url(self.database)


def database_url(database: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _dsn(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def fingerprint(params: CityParams) -> str:
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    heads = sorted(ScriptDirectory.from_config(alembic_config()).get_heads())
    raw = json.dumps(
        {"params": asdict(params), "heads": heads, "version": GENERATOR_VERSION}, default=str, sort_keys=True
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- generating rows (pure Python)


@dataclass
class Unit:
    id: int
    code: str
    name: str
    name_en: str
    level: str
    parent_id: int | None
    members: list[int] = field(default_factory=list)


@dataclass
class Rows:
    """Every row to COPY, as tuples in the order of the column lists below."""

    units: list[Unit] = field(default_factory=list)
    users: list[tuple[Any, ...]] = field(default_factory=list)
    roles: list[tuple[Any, ...]] = field(default_factory=list)
    policies: list[tuple[Any, ...]] = field(default_factory=list)
    requests: list[tuple[Any, ...]] = field(default_factory=list)
    days: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    reports: list[tuple[Any, ...]] = field(default_factory=list)


USER_COLS = ("id", "employee_number", "name", "kana", "email", "employment_type", "unit_id", "password_hash")
ROLE_COLS = ("id", "user_id", "role", "unit_id")
POLICY_COLS = (
    "id",
    "unit_id",
    "valid_from",
    "valid_to",
    "weekly_cap",
    "monthly_cap",
    "notice_days",
    "max_consecutive",
    "min_onsite_ratio",
    "note",
)
REQUEST_COLS = (
    "id",
    "user_id",
    "unit_id",
    "kind",
    "first_day",
    "last_day",
    "weekdays",
    "part",
    "place",
    "place_note",
    "plan",
    "contact",
    "created_at",
)
DAY_COLS = (
    "id",
    "request_id",
    "user_id",
    "unit_id",
    "day",
    "part",
    "state",
    "approver_id",
    "warnings",
    "decided_by",
    "decided_at",
    "override_reason",
    "sequence",
    "updated_at",
)
STEP_COLS = ("id", "day_id", "actor_id", "action", "comment", "at")
REPORT_COLS = ("id", "day_id", "user_id", "started_at", "ended_at", "summary", "updated_at")


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, clock(hh, mm), tzinfo=TOKYO).astimezone(UTC)


class Generator:
    def __init__(self, params: CityParams, password_hash: str) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.hash = password_hash
        self.rows = Rows()
        self.calendar = WorkingCalendar(TeleworkConfig(), [])
        self.days = self.calendar.working_days(params.first, params.last)
        self.now = _at(params.anchor, 9)  # the data is as it stands at 9:00 on the anchor day
        self.unit_of: dict[int, int] = {}
        self.approver_of: dict[int, int | None] = {}
        self.ids: Counter[str] = Counter()
        self.hr_admin = 0

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    # ------------------------------------------------------------ org tree and people

    def org(self) -> tuple[Unit, int]:
        """The tree, about `units` big, with the 200-person 課 as a leaf; returns it and the hr_admin."""
        p, rng = self.p, self.rng
        n_kyoku = max(1, round(p.units / 25))
        n_bu = 3 * n_kyoku
        n_ka = 4 * n_bu
        n_kakari = max(0, p.units - n_kyoku - n_bu - n_ka)
        units = self.rows.units
        kas: list[Unit] = []
        for k in range(n_kyoku):
            name, en = KYOKU[k % len(KYOKU)]
            ky = Unit(self.next_id("org_unit"), f"K{k + 1:02d}", name, en, "kyoku", None)
            units.append(ky)
            for b in range(3):
                bname, ben = BU[b % len(BU)]
                bu = Unit(
                    self.next_id("org_unit"), f"{ky.code}-B{b + 1}", bname, f"{ben} Department", "bu", ky.id
                )
                units.append(bu)
                for c in range(4):
                    cname, cen = KA[(b * 4 + c + k) % len(KA)]
                    ka = Unit(
                        self.next_id("org_unit"), f"{bu.code}-C{c + 1}", cname, f"{cen} Division", "ka", bu.id
                    )
                    units.append(ka)
                    kas.append(ka)
        big = kas[len(kas) // 3]
        big.name, big.name_en = BIG_UNIT
        hosts = [ka for ka in kas if ka is not big]
        for i in range(n_kakari):
            ka = hosts[(i * 7) % len(hosts)]
            sname, sen = KAKARI[i % len(KAKARI)]
            units.append(
                Unit(
                    self.next_id("org_unit"),
                    f"{ka.code}-S{i + 1}",
                    sname,
                    f"{sen} Section",
                    "kakari",
                    ka.id,
                )
            )
        # Staff: a head and a few people in every 局 and 部, the big 課 exactly, the rest spread unevenly.
        sizes: dict[int, int] = {}
        for u in units:
            sizes[u.id] = 4 if u.level == "kyoku" else 5 if u.level == "bu" else 0
        sizes[big.id] = p.big_unit_size
        rest = [u for u in units if u.level in ("ka", "kakari") and u is not big]
        left = p.staff - sum(sizes.values())
        weights = [rng.uniform(0.4, 1.6) for _ in rest]
        total = sum(weights)
        for u, w in zip(rest, weights, strict=True):
            sizes[u.id] = max(2, int(left * w / total))
        short = p.staff - sum(sizes.values())
        for i in range(abs(short)):
            u = rest[i % len(rest)]
            sizes[u.id] += 1 if short > 0 else -1
        types = [_pick(rng, EMPLOYMENT) for _ in range(p.staff)]
        hr_admin = 0
        for u in units:
            for _ in range(sizes[u.id]):
                uid = self.next_id("app_user")
                sur, skana = SURNAMES[rng.randrange(len(SURNAMES))]
                giv, gkana = GIVEN[rng.randrange(len(GIVEN))]
                self.rows.users.append(
                    (
                        uid,
                        f"{300000 + uid}",
                        f"{sur} {giv}",
                        f"{skana} {gkana}",
                        f"staff{uid:05d}@city.example.jp",
                        "regular" if not u.members else types[uid - 1],
                        u.id,
                        self.hash,
                    )
                )
                u.members.append(uid)
                self.unit_of[uid] = u.id
            head = u.members[0]
            self.rows.roles.append((self.next_id("role_assignment"), head, "unit_head", u.id))
            if u.level == "ka" and not hr_admin:
                hr_admin = u.members[1]
                self.rows.roles.append((self.next_id("role_assignment"), hr_admin, "hr_admin", None))
        # Routing as services.route does it: the head of one's unit, or the next head up for a head.
        by_id = {u.id: u for u in units}
        for u in units:
            for uid in u.members:
                current: Unit | None = u
                approver = None
                while current is not None:
                    if current.members and current.members[0] != uid:
                        approver = current.members[0]
                        break
                    current = by_id.get(current.parent_id) if current.parent_id is not None else None
                self.approver_of[uid] = approver
        return big, hr_admin

    def policies(self, big: Unit) -> None:
        """One version per 局, and a change of rules during the period for the big 課's 局."""
        by_id = {u.id: u for u in self.rows.units}
        big_kyoku = by_id[by_id[big.parent_id or 0].parent_id or 0].id
        start = self.p.first - timedelta(days=365)
        for u in self.rows.units:
            if u.level != "kyoku":
                continue
            weekly = 3.0 if u.id % 2 else 2.0
            if u.id == big_kyoku:
                change = self.p.first + timedelta(days=120)
                self.rows.policies.append(
                    (
                        self.next_id("policy"),
                        u.id,
                        start,
                        change - timedelta(days=1),
                        2.0,
                        8.0,
                        1,
                        None,
                        0.5,
                        "",
                    )
                )
                self.rows.policies.append(
                    (self.next_id("policy"), u.id, change, None, 3.0, 10.0, 1, 5, 0.6, "在宅勤務要領 改正")
                )
            else:
                self.rows.policies.append(
                    (self.next_id("policy"), u.id, start, None, weekly, 10.0, 1, None, 0.5, "")
                )

    # ------------------------------------------------------------ requests and days

    def request(
        self,
        uid: int,
        kind: str,
        picked: list[int],
        part: str,
        created: datetime,
        weekdays: str = "",
    ) -> int:
        rng = self.rng
        rid = self.next_id("telework_request")
        place = _pick(rng, [("home", 0.85), ("satellite", 0.1), ("other", 0.05)])
        first, last = self.days[picked[0]], self.days[picked[-1]]
        self.rows.requests.append(
            (
                rid,
                uid,
                self.unit_of[uid],
                kind,
                first,
                last,
                weekdays,
                part,
                place,
                "市立図書館" if place == "other" else "",
                rng.choice(PLANS),
                "携帯電話",
                created,
            )
        )
        return rid

    def day(
        self,
        rid: int,
        uid: int,
        day: date,
        part: str,
        state: str,
        created: datetime,
        decided: datetime | None,
        warnings: str = "",
        cancelled: datetime | None = None,
    ) -> int:
        did = self.next_id("telework_day")
        approver = self.approver_of[uid]
        decider = None
        if state in ("approved", "rejected", "cancelled"):
            decider = approver or self.hr_admin
        seq = {"submitted": 0, "approved": 1, "rejected": 1, "withdrawn": 1, "expired": 1, "cancelled": 2}[
            state
        ]
        updated = cancelled or decided or created
        self.rows.days.append(
            (
                did,
                rid,
                uid,
                self.unit_of[uid],
                day,
                part,
                state,
                approver,
                warnings,
                decider,
                decided if decider else None,
                "",
                seq,
                updated,
            )
        )
        steps = self.rows.steps
        if state in ("approved", "cancelled"):
            steps.append((self.next_id("step"), did, decider, "approve", "", decided))
        if state == "rejected":
            steps.append(
                (self.next_id("step"), did, decider, "reject", "今週は窓口対応をお願いします", decided)
            )
        if state == "withdrawn":
            steps.append((self.next_id("step"), did, uid, "withdraw", "", updated))
        if state == "cancelled":
            steps.append((self.next_id("step"), did, uid, "cancel", "", cancelled))
        if state == "expired":
            steps.append((self.next_id("step"), did, None, "expire", "", updated))
        if state == "approved" and day < self.p.anchor and self.rng.random() < 0.92:
            start = _at(day, 8 if part != "pm" else 13, self.rng.randrange(15, 45) if part != "pm" else 0)
            end = _at(day, 12 if part == "am" else 17, self.rng.randrange(0, 50))
            summary = self.rng.choice(PLANS) + "を進めた" if self.rng.random() < 0.3 else ""
            self.rows.reports.append((self.next_id("report"), did, uid, start, end, summary, end))
        return did

    def outcome(self, first_day: date, may_pend: bool) -> str:
        """How a request stands on the anchor day: decided when its days are past, often still open ahead."""
        r = self.rng.random()
        if first_day < self.p.anchor:
            return (
                "approved" if r < 0.89 else "rejected" if r < 0.93 else "withdrawn" if r < 0.97 else "expired"
            )
        if not may_pend:
            return "approved" if r < 0.95 else "withdrawn" if r < 0.98 else "rejected"
        return (
            "approved" if r < 0.72 else "submitted" if r < 0.94 else "withdrawn" if r < 0.98 else "rejected"
        )

    def book(
        self,
        uid: int,
        picked: list[int],
        kind: str,
        part: str,
        may_pend: bool,
        weekdays: str = "",
        outcome: str | None = None,
    ) -> None:
        """One request over these working days (indices), with states as they would stand on the anchor."""
        rng = self.rng
        first_day = self.days[picked[0]]
        created = _at(first_day, 10) - timedelta(days=rng.randint(2, 20), hours=rng.randint(0, 8))
        if created > self.now:
            created = self.now - timedelta(hours=rng.randint(1, 200))
        decided = min(created + timedelta(hours=rng.randint(1, 40)), self.now - timedelta(minutes=5))
        rid = self.request(uid, kind, picked, part, created, weekdays)
        outcome = outcome or self.outcome(first_day, may_pend)
        for i in picked:
            day = self.days[i]
            state = outcome
            if outcome == "submitted" and day < self.p.anchor:
                state = "expired"
            elif outcome == "expired" and day >= self.p.anchor:
                state = "submitted" if may_pend else "approved"
            cancelled = None
            if state == "approved" and rng.random() < 0.03:
                state = "cancelled"
                cancelled = min(decided + timedelta(days=rng.randint(0, 5)), _at(day, 7), self.now)
            warnings = "weekly_cap" if state == "submitted" and rng.random() < 0.1 else ""
            self.day(rid, uid, day, part, state, created, decided, warnings, cancelled)

    def person_year(self, uid: int, target: int, taken: set[int], may_pend: bool) -> None:
        """Singles, short ranges and weekly patterns until the person has about `target` days."""
        rng, n = self.rng, len(self.days)
        count, attempts = 0, 0
        while count < target and attempts < 200:
            attempts += 1
            r = rng.random()
            start = rng.randrange(n)
            if r < 0.55:
                kind, picked, weekdays = "single", [start], ""
            elif r < 0.70:
                kind, picked, weekdays = "range", list(range(start, min(n, start + rng.randint(2, 5)))), ""
            else:
                wanted = sorted(rng.sample(range(1, 6), rng.choice((1, 1, 2))))
                end = self.days[start] + timedelta(weeks=rng.randint(4, 8))
                picked = [
                    i for i in range(start, n) if self.days[i] <= end and self.days[i].isoweekday() in wanted
                ]
                kind, weekdays = "pattern", ",".join(map(str, wanted))
            picked = [i for i in picked if i not in taken][: max(1, target - count)]
            if not picked:
                continue
            taken.update(picked)
            count += len(picked)
            self.book(uid, picked, kind, _pick(rng, PARTS), may_pend, weekdays)

    def build(self) -> dict[str, Any]:
        p, rng = self.p, self.rng
        big, self.hr_admin = self.org()
        self.policies(big)
        future = [i for i, d in enumerate(self.days) if d > p.anchor]
        taken: dict[int, set[int]] = defaultdict(set)
        # The big 課's head: exactly `big_unit_pending` undecided days, spread over the next working days.
        head, members = big.members[0], big.members[1:]
        window = future[: max(1, math.ceil(p.big_unit_pending / max(1, len(members) // 8)))]
        per_day = math.ceil(p.big_unit_pending / len(window))
        pending: list[int] = []
        for k in range(p.big_unit_pending):
            j, slot = k % len(window), k // len(window)
            uid = members[(slot + j * per_day) % len(members)]
            day = self.days[window[j]]
            part = _pick(rng, PARTS)
            created = self.now - timedelta(hours=rng.randint(1, 120))
            rid = self.request(uid, "single", [window[j]], part, created)
            warn = rng.choice(("", "", "", "weekly_cap", "notice"))
            pending.append(self.day(rid, uid, day, part, "submitted", created, None, warn))
            taken[uid].add(window[j])
        # The person behind the year-long ICS feed: a monthly range, most of its days approved.
        feed_unit = next(
            u for u in self.rows.units if u.level == "ka" and u is not big and len(u.members) > 3
        )
        feed_user = feed_unit.members[2]
        by_month: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, d in enumerate(self.days):
            by_month[(d.year, d.month)].append(i)
        for picked in by_month.values():
            picked = [i for i in picked if rng.random() < 0.9]
            if picked:
                taken[feed_user].update(picked)
                self.book(feed_user, picked, "range", "full", False, outcome="approved")
        # Everyone else: some never telework, most a few days a month, some often.
        people = [uid for u in self.rows.units for uid in u.members if uid != feed_user]
        weights = [0.0 if rng.random() < 0.2 else rng.triangular(1, 60, 6) for _ in people]
        budget = p.days_per_person * p.years * p.staff - len(self.rows.days)
        scale = budget / sum(weights)
        for uid, w in zip(people, weights, strict=True):
            target = round(w * scale)
            if target:
                self.person_year(uid, target, taken[uid], may_pend=self.unit_of[uid] != big.id)
        busiest = Counter(
            (self.days[window[k % len(window)]].year, self.days[window[k % len(window)]].month)
            for k in range(p.big_unit_pending)
        ).most_common(1)[0][0]
        head_row = self.rows.users[head - 1]
        feed_row = self.rows.users[feed_user - 1]
        return {
            "big_unit_id": big.id,
            "big_unit_members": len(big.members),
            "head_id": head,
            "head_login": head_row[1],
            "pending_day_ids": pending,
            "coverage_month": f"{busiest[0]}-{busiest[1]:02d}",  # the month with most pending days
            "feed_user_id": feed_user,
            "feed_login": feed_row[1],
            "feed_approved_days": sum(1 for r in self.rows.days if r[2] == feed_user and r[6] == "approved"),
        }


# ---------------------------------------------------------------- loading (asyncpg COPY)


def _fill(table: str, columns: Sequence[str]) -> tuple[list[str], tuple[Any, ...]]:
    """Columns not given get the model's default (these tables have no server-side defaults)."""
    from app.tables import metadata

    names, tail = list(columns), []
    for column in metadata.tables[table].columns:
        if column.name in columns:
            continue
        default: Any = column.default
        value = None
        if default is not None:
            value = default.arg(None) if default.is_callable else default.arg
        names.append(column.name)
        tail.append(value)
    return names, tuple(tail)


async def _copy(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    names, tail = _fill(table, columns)
    await conn.copy_records_to_table(table, columns=names, records=[r + tail for r in rows])


async def _load(database: str, rows: Rows) -> int:
    """COPY every row in one transaction, move the id sequences on, analyse; returns the database size."""
    conn = await asyncpg.connect(_dsn(database))
    try:
        async with conn.transaction():
            units = [(u.id, u.code, u.name, u.name_en, u.level, u.parent_id) for u in rows.units]
            await _copy(conn, "org_unit", ("id", "code", "name", "name_en", "level", "parent_id"), units)
            await _copy(conn, "app_user", USER_COLS, rows.users)
            await _copy(conn, "role_assignment", ROLE_COLS, rows.roles)
            await _copy(conn, "telework_policy", POLICY_COLS, rows.policies)
            await _copy(conn, "telework_request", REQUEST_COLS, rows.requests)
            await _copy(conn, "telework_day", DAY_COLS, rows.days)
            await _copy(conn, "telework_approval_step", STEP_COLS, rows.steps)
            await _copy(conn, "telework_report", REPORT_COLS, rows.reports)
            for table in (
                "org_unit",
                "app_user",
                "role_assignment",
                "telework_policy",
                "telework_request",
                "telework_day",
                "telework_approval_step",
                "telework_report",
            ):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        await conn.execute("VACUUM ANALYZE")
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


def _pg(tool: str, *args: str) -> None:
    subprocess.run(
        [tool, "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, *args],
        check=True,
        capture_output=True,
        text=True,
    )


async def _stored(database: str) -> City | None:
    try:
        conn = await asyncpg.connect(_dsn("postgres"))
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        comment = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", database
        )
    finally:
        await conn.close()
    if not comment:
        return None
    try:
        return City(**json.loads(comment))
    except (TypeError, ValueError):
        return None


async def generate(params: CityParams, database: str = DEFAULT_DATABASE) -> City:
    """Drop and create the database, migrate it, fill it; the timing covers all of that."""
    from app.db import make_engine, migrate
    from auth.passwords import Passwords

    started = time.perf_counter()
    _pg("dropdb", "--if-exists", "--force", database)
    _pg("createdb", database)
    engine = make_engine(database_url(database))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    gen = Generator(params, Passwords(1, 8192).hash(PASSWORD))
    info = gen.build()
    size = await _load(database, gen.rows)
    rows = gen.rows
    city = City(
        database=database,
        fingerprint=fingerprint(params),
        params={k: str(v) for k, v in asdict(params).items()}
        | {"first": params.first.isoformat(), "last": params.last.isoformat()},
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        generated_seconds=round(time.perf_counter() - started, 1),
        counts={
            "units": len(rows.units),
            "staff": len(rows.users),
            "policies": len(rows.policies),
            "requests": len(rows.requests),
            "days": len(rows.days),
            "approval_steps": len(rows.steps),
            "reports": len(rows.reports),
            "database_mib": round(size / 2**20),
        },
        states=dict(Counter(r[6] for r in rows.days).most_common()),
        password=PASSWORD,
        **info,
    )
    conn = await asyncpg.connect(_dsn("postgres"))
    try:
        comment = json.dumps(asdict(city), ensure_ascii=False).replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE \"{database}\" IS '{comment}'")
    finally:
        await conn.close()
    return city


async def ensure(
    params: CityParams, database: str = DEFAULT_DATABASE, rebuild: bool = False
) -> tuple[City, bool]:
    """The city for these parameters: reused when the database already holds it, else generated.

    Returns the city and whether it was reused.
    """
    if not rebuild:
        stored = await _stored(database)
        if stored is not None and stored.fingerprint == fingerprint(params):
            return stored, True
    return await generate(params, database), False


def describe(city: City) -> str:
    c = city.counts
    states = ", ".join(f"{k} {v:,}" for k, v in city.states.items())
    return (
        f"{c['staff']:,} staff in {c['units']} units, {c['requests']:,} requests, {c['days']:,} days "
        f"({states}), {c['approval_steps']:,} approval steps, {c['reports']:,} start/end reports, "
        f"{c['policies']} policy versions; {city.params['first']} to {city.params['last']}; "
        f"{c.get('database_mib', '?')} MiB on disk"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.citygen", description=__doc__.splitlines()[0])
    parser.add_argument("--staff", type=int, default=CityParams.staff)
    parser.add_argument("--units", type=int, default=CityParams.units)
    parser.add_argument("--years", type=int, default=CityParams.years)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--rebuild", action="store_true", help="generate even when the data is there")
    args = parser.parse_args(argv)
    params = CityParams(staff=args.staff, units=args.units, years=args.years)
    city, reused = asyncio.run(ensure(params, args.database, args.rebuild))
    how = "reused" if reused else "generated"
    print(f"{how} {city.database} (generation took {city.generated_seconds:.1f} s): {describe(city)}")


if __name__ == "__main__":
    main()
