"""The telework rules (在宅勤務要領) as data: effective policy per unit and day, and the checks on a booking.

Hard rules refuse (non-working day, not eligible, blackout, already booked, past day). Soft rules
warn (weekly and monthly caps, notice, consecutive days, on-site minimum) and let the approver
override with a recorded reason. Emergency mode lifts caps, notice and the consecutive-day limit.

Everything a check needs is loaded up front by `RuleContext.load` in a fixed number of queries, so
checking one day and checking 500 for a bulk approval cost about the same number of round trips.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from auth.models import OrgUnit, User
from scheduling.calendar import WorkingCalendar
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import ACTIVE_STATES, EmergencyPeriod, Policy, TeleworkDay

HARD = ("non_working", "not_eligible", "blackout", "already_booked", "past_day")
SOFT = ("weekly_cap", "monthly_cap", "notice", "consecutive", "coverage")

DEFAULT_POLICY = Policy(unit_id=0, valid_from=date(2000, 1, 1), require_reports=True)


def weight(part: str) -> float:
    return 1.0 if part == "full" else 0.5


def overlaps(a: str, b: str) -> bool:
    return a == "full" or b == "full" or a == b


def week_key(day: date) -> tuple[int, int]:
    iso = day.isocalendar()
    return (iso.year, iso.week)


def month_key(day: date) -> tuple[int, int]:
    return (day.year, day.month)


@dataclass(frozen=True)
class Violation:
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def hard(self) -> bool:
        return self.code in HARD


@dataclass(frozen=True)
class Candidate:
    """A day someone wants (or holds): checked as if it were booked on top of what is already booked."""

    user_id: int
    day: date
    part: str
    day_id: int | None = None  # an existing day being re-checked (left out of its own counts)


@dataclass
class Person:
    id: int
    unit_id: int | None
    employment_type: str
    active: bool


class RuleContext:
    """Committed state for a set of people and a span of days: bookings, policies, emergencies, staffing."""

    def __init__(self, config: TeleworkConfig) -> None:
        self.config = config
        self.calendar = WorkingCalendar(config, [])
        self.parents: dict[int, int | None] = {}
        self.policies: dict[int, list[Policy]] = defaultdict(list)
        self.emergencies: list[EmergencyPeriod] = []
        self.people: dict[int, Person] = {}
        self.booked: dict[int, list[tuple[int | None, date, str, str]]] = defaultdict(list)  # user → rows
        self.members: dict[int, int] = {}
        self.remote: dict[tuple[int, date], list[float]] = {}  # (unit, day) → [full, am, pm] approved

    @classmethod
    async def load(
        cls,
        db: AsyncSession,
        config: TeleworkConfig,
        user_ids: Iterable[int],
        first: date,
        last: date,
        unit_ids: Iterable[int] = (),
    ) -> RuleContext:
        ctx = cls(config)
        user_ids = sorted(set(user_ids))
        # Wide enough for the month, the ISO week and a run of consecutive days around each day.
        lo = min(first.replace(day=1), first - timedelta(days=45))
        hi = max(last + timedelta(days=45), last)
        ctx.calendar = await WorkingCalendar.load(db, config, lo, hi)
        ctx.parents = {
            uid: parent
            for uid, parent in (await db.execute(select(OrgUnit.id, OrgUnit.parent_id))).all()
            if uid
        }
        for policy in (await db.execute(select(Policy).order_by(col(Policy.valid_from)))).scalars():
            ctx.policies[policy.unit_id].append(policy)
        ctx.emergencies = list(
            (
                await db.execute(
                    select(EmergencyPeriod).where(
                        col(EmergencyPeriod.ends) >= lo, col(EmergencyPeriod.starts) <= hi
                    )
                )
            ).scalars()
        )
        if user_ids:
            for uid, unit_id, etype, active in await db.execute(
                select(User.id, User.unit_id, User.employment_type, User.active).where(
                    col(User.id).in_(user_ids)
                )
            ):
                ctx.people[uid] = Person(uid, unit_id, etype, active)
            rows = await db.execute(
                select(  # type: ignore[call-overload]
                    TeleworkDay.id, TeleworkDay.user_id, TeleworkDay.day, TeleworkDay.part, TeleworkDay.state
                ).where(
                    col(TeleworkDay.user_id).in_(user_ids),
                    col(TeleworkDay.state).in_(ACTIVE_STATES),
                    col(TeleworkDay.day) >= lo,
                    col(TeleworkDay.day) <= hi,
                )
            )
            for day_id, uid, day, part, state in rows:
                ctx.booked[uid].append((day_id, day, part, state))
        units = {p.unit_id for p in ctx.people.values() if p.unit_id is not None} | set(unit_ids)
        if units:
            await ctx._load_staffing(db, units, first, last)
        return ctx

    async def _load_staffing(self, db: AsyncSession, units: set[int], first: date, last: date) -> None:
        counts = await db.execute(
            select(User.unit_id, func.count())
            .where(col(User.unit_id).in_(units), col(User.active).is_(True))
            .group_by(col(User.unit_id))
        )
        self.members = {unit: n for unit, n in counts.all()}
        rows = await db.execute(
            select(TeleworkDay.unit_id, TeleworkDay.day, TeleworkDay.part, func.count())  # type: ignore[call-overload]
            .where(
                col(TeleworkDay.unit_id).in_(units),
                col(TeleworkDay.state) == "approved",
                col(TeleworkDay.day) >= first,
                col(TeleworkDay.day) <= last,
            )
            .group_by(col(TeleworkDay.unit_id), col(TeleworkDay.day), col(TeleworkDay.part))
        )
        for unit, day, part, n in rows.all():
            slot = self.remote.setdefault((unit, day), [0.0, 0.0, 0.0])
            slot[("full", "am", "pm").index(part)] += n

    # ------------------------------------------------------------------ policy

    def chain(self, unit_id: int | None) -> list[int]:
        out: list[int] = []
        current = unit_id
        while current is not None and current not in out:
            out.append(current)
            current = self.parents.get(current)
        return out

    def policy(self, unit_id: int | None, day: date) -> Policy:
        """The version in force on `day` for this unit: its own, else its nearest ancestor's."""
        for unit in self.chain(unit_id):
            for version in reversed(self.policies.get(unit, [])):
                if version.valid_from <= day and (version.valid_to is None or day <= version.valid_to):
                    return version
        return DEFAULT_POLICY

    def emergency(self, unit_id: int | None, day: date) -> EmergencyPeriod | None:
        chain = set(self.chain(unit_id))
        for period in self.emergencies:
            if period.starts <= day <= period.ends and (period.unit_id is None or period.unit_id in chain):
                return period
        return None

    # ------------------------------------------------------------------ staffing

    def onsite(self, unit_id: int, day: date, extra: str | None = None) -> tuple[float, int]:
        """People on site in the unit that day (a half day away counts for the busier half), and members."""
        full, am, pm = self.remote.get((unit_id, day), [0.0, 0.0, 0.0])
        if extra == "full":
            full += 1
        elif extra == "am":
            am += 1
        elif extra == "pm":
            pm += 1
        members = self.members.get(unit_id, 0)
        return members - full - max(am, pm), members

    def minimum(self, unit_id: int, day: date) -> int | None:
        policy = self.policy(unit_id, day)
        members = self.members.get(unit_id, 0)
        needs = []
        if policy.min_onsite_count is not None:
            needs.append(policy.min_onsite_count)
        if policy.min_onsite_ratio is not None:
            needs.append(math.ceil(policy.min_onsite_ratio * members - 1e-9))
        return max(needs) if needs else None

    def add_approved(self, unit_id: int | None, day: date, part: str) -> None:
        """Count a day just approved, so the next check in the same batch sees it."""
        if unit_id is None:
            return
        slot = self.remote.setdefault((unit_id, day), [0.0, 0.0, 0.0])
        slot[("full", "am", "pm").index(part)] += 1

    def mark_approved(self, user_id: int, day_id: int | None) -> None:
        """A day approved earlier in the same batch counts as granted for the next ones."""
        self.booked[user_id] = [
            (i, d, p, "approved" if i == day_id else st) for i, d, p, st in self.booked.get(user_id, [])
        ]

    def add_booked(self, candidate: Candidate, state: str = "submitted") -> None:
        self.booked[candidate.user_id].append((candidate.day_id, candidate.day, candidate.part, state))

    # ------------------------------------------------------------------ checks

    def check(
        self,
        candidate: Candidate,
        now: datetime,
        *,
        for_approval: bool = False,
        batch: Iterable[Candidate] = (),
    ) -> list[Violation]:
        """Every rule the candidate breaks. `batch`: other days of the same request, counted as booked."""
        person = self.people.get(candidate.user_id)
        unit_id = person.unit_id if person else None
        day = candidate.day
        policy = self.policy(unit_id, day)
        out: list[Violation] = []
        today = now.astimezone(TOKYO).date()
        off = self.calendar.day_off(day)
        if off is not None:
            out.append(
                Violation("non_working", {"day": day.isoformat(), "name": off.name, "name_en": off.name_en})
            )
        if not for_approval and day < today:
            out.append(Violation("past_day", {"day": day.isoformat()}))
        eligible = [t.strip() for t in policy.eligible_types.split(",") if t.strip()]
        if person is not None and eligible and person.employment_type not in eligible:
            out.append(Violation("not_eligible", {"type": person.employment_type}))
        if day.isoformat() in {d.strip() for d in policy.blackout_dates.split(",")}:
            out.append(Violation("blackout", {"day": day.isoformat()}))
        # Booking counts what is asked and granted; approving counts only what is granted.
        others = [
            (d, p)
            for day_id, d, p, state in self.booked.get(candidate.user_id, [])
            if day_id != candidate.day_id and (state == "approved" or not for_approval)
        ]
        others += [(c.day, c.part) for c in batch if c is not candidate]
        if not for_approval and any(d == day and overlaps(p, candidate.part) for d, p in others):
            out.append(Violation("already_booked", {"day": day.isoformat()}))
        emergency = self.emergency(unit_id, day)
        if emergency is None:
            out.extend(self._limits(policy, candidate, others, now))
        if unit_id is not None:
            need = self.minimum(unit_id, day)
            if need is not None:
                onsite, _members = self.onsite(unit_id, day, candidate.part)
                if onsite < need:
                    out.append(
                        Violation(
                            "coverage", {"day": day.isoformat(), "onsite": _num(onsite), "minimum": need}
                        )
                    )
        return out

    def _limits(
        self, policy: Policy, candidate: Candidate, others: list[tuple[date, str]], now: datetime
    ) -> list[Violation]:
        out: list[Violation] = []
        day = candidate.day
        w = weight(candidate.part)
        if policy.weekly_cap is not None:
            used = sum(weight(p) for d, p in others if week_key(d) == week_key(day))
            if used + w > policy.weekly_cap:
                out.append(Violation("weekly_cap", {"cap": _num(policy.weekly_cap), "total": _num(used + w)}))
        if policy.monthly_cap is not None:
            used = sum(weight(p) for d, p in others if month_key(d) == month_key(day))
            if used + w > policy.monthly_cap:
                out.append(
                    Violation("monthly_cap", {"cap": _num(policy.monthly_cap), "total": _num(used + w)})
                )
        if policy.notice_days is not None:
            hh, mm = (int(x) for x in (policy.notice_cutoff or "17:00").split(":"))
            deadline = datetime.combine(day - timedelta(days=policy.notice_days), time(hh, mm), tzinfo=TOKYO)
            if now > deadline:
                out.append(
                    Violation(
                        "notice",
                        {"days": policy.notice_days, "deadline": deadline.strftime("%Y-%m-%d %H:%M")},
                    )
                )
        if policy.max_consecutive is not None:
            held = {d for d, _ in others} | {day}
            run = 1
            cursor = day
            while (cursor := self.calendar.previous_working_day(cursor)) in held:
                run += 1
            cursor = day
            while (cursor := self.calendar.next_working_day(cursor)) in held:
                run += 1
            if run > policy.max_consecutive:
                out.append(Violation("consecutive", {"max": policy.max_consecutive, "run": run}))
        return out

    def remaining(self, user_id: int, day: date, requested: Iterable[Candidate] = ()) -> dict[str, Any]:
        """Days used and left in the week and month of `day`, counting what is booked and what is asked."""
        person = self.people.get(user_id)
        policy = self.policy(person.unit_id if person else None, day)
        held = [(d, p) for _, d, p, _ in self.booked.get(user_id, [])]
        asked = [(c.day, c.part) for c in requested]
        week_used = sum(weight(p) for d, p in held if week_key(d) == week_key(day))
        month_used = sum(weight(p) for d, p in held if month_key(d) == month_key(day))
        week_asked = sum(weight(p) for d, p in asked if week_key(d) == week_key(day))
        month_asked = sum(weight(p) for d, p in asked if month_key(d) == month_key(day))
        return {
            "week_of": (day - timedelta(days=day.weekday())).isoformat(),
            "month": f"{day.year}-{day.month:02d}",
            "week_used": _num(week_used),
            "week_requested": _num(week_asked),
            "weekly_cap": None if policy.weekly_cap is None else _num(policy.weekly_cap),
            "week_left": None
            if policy.weekly_cap is None
            else _num(policy.weekly_cap - week_used - week_asked),
            "month_used": _num(month_used),
            "month_requested": _num(month_asked),
            "monthly_cap": None if policy.monthly_cap is None else _num(policy.monthly_cap),
            "month_left": None
            if policy.monthly_cap is None
            else _num(policy.monthly_cap - month_used - month_asked),
        }


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)
