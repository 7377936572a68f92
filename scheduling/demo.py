"""Demo telework data for the embedded default: a city-wide policy and a year of growing telework.

Runs once, on an empty telework table, when the demo organisation is seeded (`SEED_DEMO`); set
`TELEWORK_DEMO_DATA=0` to start with no telework history. Deterministic (fixed random seed), relative to
today, so the calendar, inbox, coverage grid and reports have something to show on first start.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from auth.models import OrgUnit, RoleAssignment, User
from scheduling.calendar import WorkingCalendar
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import Policy, TeleworkDay, TeleworkRequest, WorkReport

PLANS = [
    "予算資料の作成",
    "条例改正案の検討",
    "オンライン会議（部内定例）",
    "議事録の作成",
    "申請書類の審査",
    "研修動画の視聴",
    "統計データの集計",
]


def _at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TOKYO)


async def seed_if_empty(db: AsyncSession, config: TeleworkConfig, base_url: str = "") -> int:
    """Add demo policy and telework days when there are none; returns the number of days written."""
    if (await db.execute(select(func.count()).select_from(TeleworkDay))).scalar_one():
        return 0
    root = (
        (await db.execute(select(OrgUnit).where(col(OrgUnit.parent_id).is_(None)).order_by(col(OrgUnit.id))))
        .scalars()
        .first()
    )
    if root is None:
        return 0
    today = config.today()
    start = date(today.year - 1, today.month, 1)
    end = today + timedelta(days=21)
    db.add(
        Policy(
            unit_id=root.id or 0,
            valid_from=start,
            weekly_cap=3,
            monthly_cap=10,
            notice_days=1,
            notice_cutoff="17:00",
            max_consecutive=5,
            min_onsite_ratio=0.4,
            require_reports=True,
            note="在宅勤務要領（デモ）: 週3日・月10日まで、前日17時までに申請、所属の4割は出勤",
        )
    )
    parents: dict[int, int | None] = dict((await db.execute(select(OrgUnit.id, OrgUnit.parent_id))).all())  # type: ignore[arg-type]
    heads: dict[int, list[int]] = {}
    for unit_id, user_id in (
        await db.execute(
            select(RoleAssignment.unit_id, RoleAssignment.user_id).where(RoleAssignment.role == "unit_head")
        )
    ).all():
        if unit_id is not None:
            heads.setdefault(unit_id, []).append(user_id)

    def approver(user_id: int, unit_id: int | None) -> int | None:
        current = unit_id
        while current is not None:
            for head in heads.get(current, []):
                if head != user_id:
                    return head
            current = parents.get(current)
        return None

    users = list(
        (
            await db.execute(
                select(User)
                .where(col(User.active).is_(True), col(User.unit_id).is_not(None))
                .order_by(col(User.id))
            )
        ).scalars()
    )
    calendar = await WorkingCalendar.load(db, config, start, end)
    rng = random.Random(20201)
    written = 0
    span = max(1, (today - start).days)
    for user in users:
        if user.employment_type == "part_time":
            continue
        weekdays = sorted(rng.sample([1, 2, 3, 4, 5], rng.choice([1, 1, 2, 2, 3])))
        boss = approver(user.id or 0, user.unit_id)
        for day in calendar.working_days(start, end):
            # Telework grows through the year, as the action plan intends.
            uptake = 0.2 + 0.65 * min(1.0, (day - start).days / span)
            if day.isoweekday() not in weekdays or rng.random() > uptake:
                continue
            part = rng.choices(["full", "am", "pm"], weights=[8, 1, 1])[0]
            created = _at(day - timedelta(days=rng.randint(2, 10)), 10, 0)
            req = TeleworkRequest(
                user_id=user.id or 0,
                unit_id=user.unit_id,
                kind="single",
                first_day=day,
                last_day=day,
                part=part,
                place=rng.choices(["home", "satellite"], weights=[9, 1])[0],
                plan=rng.choice(PLANS),
                contact="携帯電話",
                created_at=created,
            )
            db.add(req)
            await db.flush()
            if day > today + timedelta(days=2) or (day > today and rng.random() < 0.5):
                state = "submitted"
            else:
                state = rng.choices(
                    ["approved", "rejected", "cancelled", "withdrawn"], weights=[90, 3, 4, 3]
                )[0]
            decided = state in ("approved", "rejected", "cancelled")
            row = TeleworkDay(
                request_id=req.id or 0,
                user_id=user.id or 0,
                unit_id=user.unit_id,
                day=day,
                part=part,
                state=state,
                approver_id=boss,
                decided_by=boss if decided else None,
                decided_at=created + timedelta(hours=rng.randint(1, 30)) if decided else None,
                sequence=1 + (state == "cancelled") if decided else 0,
                updated_at=created,
            )
            db.add(row)
            written += 1
            if state == "approved" and day < today and rng.random() < 0.93:
                await db.flush()
                begin = _at(day, 8, 30) + timedelta(minutes=rng.randint(-10, 20))
                finish = _at(day, 17, 15) + timedelta(minutes=rng.randint(0, 45))
                if part == "am":
                    finish = _at(day, 12, 0)
                elif part == "pm":
                    begin = _at(day, 13, 0)
                db.add(
                    WorkReport(
                        day_id=row.id or 0,
                        user_id=user.id or 0,
                        started_at=begin,
                        ended_at=finish if rng.random() < 0.97 else None,
                        summary=req.plan + "を行った。",
                        updated_at=finish,
                    )
                )
    # Targets scaled to a 30-person demo office (the city's are 15,000 a month from 1,200).
    from scheduling.indicator import fiscal_year
    from scheduling.models import IndicatorTarget

    for year in {fiscal_year(start), fiscal_year(today)}:
        note = "デモ用（30人規模に縮小）"
        db.add(IndicatorTarget(fiscal_year=year, monthly_target=150, baseline=20, note=note))
    await _demo_meetings(db, today, base_url)
    await db.commit()
    return written


async def _demo_meetings(db: AsyncSession, today: date, base_url: str) -> None:
    """A weekly unit meeting and a one-off meeting with an outside guest (rows only: no mail is queued)."""
    import secrets

    from scheduling.ical import uid_host
    from scheduling.meeting_recurrence import starts
    from scheduling.models import Meeting, MeetingAttendee

    people = {
        u.employee_number: u
        for u in (await db.execute(select(User).where(col(User.active).is_(True)))).scalars()
    }
    host = uid_host(base_url)
    monday = today + timedelta(days=7 - today.weekday())
    plans = [
        (
            "100006",
            "行政改革課 週次定例",
            "1. 今週の予定\n2. 在宅勤務の予定共有\n3. その他",
            _at(monday, 10, 0),
            30,
            "FREQ=WEEKLY;COUNT=12",
            [("100019", "cohost"), ("100020", "attendee"), ("100021", "attendee"), ("100012", "attendee")],
            [],
        ),
        (
            "100008",
            "在宅勤務要領の見直し 打ち合わせ",
            "要領改正案について、外部アドバイザーと意見交換します。",
            _at(today + timedelta(days=2), 14, 0),
            60,
            "",
            [("100012", "attendee"), ("100004", "cohost")],
            ["advisor@example.com"],
        ),
    ]
    for organizer, title, agenda, start, minutes, rrule, invited, outside in plans:
        if organizer not in people:
            continue
        length = timedelta(minutes=minutes)
        meeting = Meeting(
            uid=f"meeting-{secrets.token_hex(16)}@{host}",
            room_id=secrets.token_urlsafe(12),
            organizer_id=people[organizer].id or 0,
            unit_id=people[organizer].unit_id,
            title=title,
            agenda=agenda,
            start_at=start,
            end_at=start + length,
            rrule=rrule,
            series_end_at=starts(rrule, start, TOKYO)[-1] + length if rrule else None,
        )
        db.add(meeting)
        await db.flush()
        for number, role in invited:
            if number in people:
                user = people[number]
                db.add(
                    MeetingAttendee(
                        meeting_id=meeting.id or 0,
                        user_id=user.id,
                        email=user.email.lower(),
                        name=user.name,
                        role=role,
                        partstat="ACCEPTED" if role == "cohost" else "NEEDS-ACTION",
                    )
                )
        for address in outside:
            db.add(MeetingAttendee(meeting_id=meeting.id or 0, email=address))
