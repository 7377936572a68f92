"""Meeting recurrence: an RRULE built from form fields (never typed by a person) and its expansion.

Only what the office needs and every calendar client reads the same way: FREQ=WEEKLY (on chosen
weekdays) or FREQ=MONTHLY (same day of the month, or the same weekday of the month), bounded by COUNT
(≤ 100) or UNTIL (≤ 2 years after the first start). Occurrences are computed on the wall clock in the
meeting's zone (Asia/Tokyo) and stored/compared in UTC; an exception (`MeetingOccurrence`) is keyed by
the occurrence's original start in UTC, as RECURRENCE-ID identifies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from app.errors import DomainError

MAX_COUNT = 100
MAX_SPAN = timedelta(days=731)  # two years (a leap day included)
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class Recurrence:
    """The form fields of a repeat rule; freq "" means a single meeting."""

    freq: str = ""  # "", weekly, monthly
    interval: int = 1
    byday: tuple[str, ...] = ()  # weekly: MO..SU; empty = the start's weekday
    monthly_by: str = "monthday"  # monthly: monthday (the 15th) or weekday (the 2nd Tuesday)
    count: int | None = None
    until: datetime | None = None  # aware; the last day on which an occurrence may start


@dataclass(frozen=True)
class Occurrence:
    """One instance of a meeting: its original start (the RECURRENCE-ID), and where it is now."""

    recurrence_id: datetime  # UTC
    start_at: datetime  # UTC
    end_at: datetime  # UTC
    moved: bool = False
    cancelled: bool = False


def utc(value: datetime) -> datetime:
    """Aware UTC (a naive value from the database is UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rid_text(value: datetime) -> str:
    """A recurrence id as it appears in URLs: 20270308T000000Z."""
    return utc(value).strftime("%Y%m%dT%H%M%SZ")


def parse_rid(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DomainError("meeting.bad_occurrence", status_code=404) from exc


def build_rrule(rec: Recurrence, start: datetime, tz: ZoneInfo) -> str:
    """The RRULE value for the fields, or "" for a single meeting; a rule out of bounds is refused."""
    if not rec.freq:
        return ""
    if rec.freq not in ("weekly", "monthly"):
        raise DomainError("meeting.rrule.freq", field="mt_repeat", status_code=422)
    if not 1 <= rec.interval <= (4 if rec.freq == "weekly" else 12):
        raise DomainError("meeting.rrule.interval", field="mt_repeat", status_code=422)
    if (rec.count is None) == (rec.until is None):
        raise DomainError("meeting.rrule.bound", field="mt_repeat", status_code=422)
    local = start.astimezone(tz)
    parts = [f"FREQ={rec.freq.upper()}"]
    if rec.interval != 1:
        parts.append(f"INTERVAL={rec.interval}")
    if rec.freq == "weekly":
        days = [d for d in DAY_CODES if d in set(rec.byday)]
        if len(days) != len(set(rec.byday)):
            raise DomainError("meeting.rrule.byday", field="mt_repeat", status_code=422)
        if days and days != [DAY_CODES[local.weekday()]]:
            if DAY_CODES[local.weekday()] not in days:
                raise DomainError("meeting.rrule.byday_start", field="mt_repeat", status_code=422)
            parts.append("BYDAY=" + ",".join(days))
    elif rec.monthly_by == "weekday":
        nth = (local.day - 1) // 7 + 1
        parts.append(f"BYDAY={-1 if nth == 5 else nth}{DAY_CODES[local.weekday()]}")
    elif rec.monthly_by != "monthday":
        raise DomainError("meeting.rrule.monthly_by", field="mt_repeat", status_code=422)
    elif local.day > 28:
        raise DomainError("meeting.rrule.month_end", field="mt_repeat", status_code=422)
    if rec.count is not None:
        if not 2 <= rec.count <= MAX_COUNT:
            raise DomainError("meeting.rrule.count", field="mt_repeat", n=MAX_COUNT, status_code=422)
        parts.append(f"COUNT={rec.count}")
    else:
        assert rec.until is not None
        until = utc(rec.until)
        if until <= utc(start):
            raise DomainError("meeting.rrule.until_before", field="mt_repeat", status_code=422)
        if until - utc(start) > MAX_SPAN:
            raise DomainError("meeting.rrule.until", field="mt_repeat", status_code=422)
        parts.append("UNTIL=" + until.strftime("%Y%m%dT%H%M%SZ"))
    rule = ";".join(parts)
    if len(starts(rule, start, tz)) < 2:
        raise DomainError("meeting.rrule.single", field="mt_repeat", status_code=422)
    return rule


def parse_rrule(rule: str, tz: ZoneInfo) -> Recurrence:
    """The form fields back from a stored rule (only rules `build_rrule` wrote are ever stored)."""
    if not rule:
        return Recurrence()
    fields = dict(part.split("=", 1) for part in rule.split(";") if "=" in part)
    byday = tuple(fields.get("BYDAY", "").split(",")) if fields.get("BYDAY") else ()
    monthly_weekday = fields.get("FREQ") == "MONTHLY" and bool(byday)
    until = None
    if "UNTIL" in fields:
        until = datetime.strptime(fields["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(tz)
    return Recurrence(
        freq=fields.get("FREQ", "").lower(),
        interval=int(fields.get("INTERVAL", "1")),
        byday=() if monthly_weekday else byday,
        monthly_by="weekday" if monthly_weekday else "monthday",
        count=int(fields["COUNT"]) if "COUNT" in fields else None,
        until=until,
    )


def starts(rule: str, first: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every original start of a series, in UTC (at most COUNT ≤ 100 or two years of weeks)."""
    if not rule:
        return [utc(first)]
    local = utc(first).astimezone(tz).replace(tzinfo=None)  # the wall clock repeats, not the UTC instant
    text = rule
    if "UNTIL=" in rule:  # dateutil compares a naive start with a naive UNTIL: give it local wall time
        head, _, tail = rule.partition("UNTIL=")
        stamp, sep, rest = tail.partition(";")
        until = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(tz)
        text = f"{head}UNTIL={until.strftime('%Y%m%dT%H%M%S')}{sep}{rest}"
    out = []
    for moment in rrulestr(text, dtstart=local):
        out.append(moment.replace(tzinfo=tz).astimezone(UTC))
        if len(out) > 2 * MAX_COUNT + 10:  # never reached with the rules build_rrule accepts
            break
    return out


def expand(
    rule: str,
    first_start: datetime,
    first_end: datetime,
    tz: ZoneInfo,
    exceptions: Iterable[tuple[datetime, datetime | None, datetime | None, bool]] = (),
) -> list[Occurrence]:
    """All occurrences of a meeting with its exceptions applied (moved ones at their new time)."""
    length = utc(first_end) - utc(first_start)
    changed = {utc(rid): (s, e, c) for rid, s, e, c in exceptions}
    out = []
    for original in starts(rule, first_start, tz):
        if original in changed:
            s, e, cancelled = changed[original]
            moved = s is not None and e is not None and not cancelled
            out.append(
                Occurrence(
                    recurrence_id=original,
                    start_at=utc(s) if moved and s else original,
                    end_at=utc(e) if moved and e else original + length,
                    moved=moved,
                    cancelled=cancelled,
                )
            )
        else:
            out.append(Occurrence(recurrence_id=original, start_at=original, end_at=original + length))
    return out
