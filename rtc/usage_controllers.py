"""Meeting usage figures over HTTP: JSON and CSV under /api/rtc/usage, the page /rooms/usage."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.csvutil import excel_csv
from app.deps import DB
from app.errors import DomainError, field_errors
from app.security import Principal, requires
from app.web import NavItem, page_context, request_locale
from auth.models import OrgUnit
from rtc import usage

# Those who see the telework indicator (unit heads: their subtree only), and IT, who run the meeting servers.
READERS = ("unit_head", "it_admin", "hr_admin", "auditor", "sysadmin")
EVERYTHING = ("it_admin", "hr_admin", "auditor", "sysadmin")
INDICATOR_READERS = ("unit_head", "hr_admin", "auditor", "sysadmin")
NAV = [NavItem("/rooms/usage", "nav.meeting_usage", READERS)]
MAX_MONTHS = 60
MonthQuery = Annotated[str | None, QueryParameter(max_length=20)]


class UnitUsageRead(msgspec.Struct, kw_only=True):
    unit_id: int | None
    unit_code: str
    unit_name: str  # the unit's place in the tree, e.g. "総務局 / 行政改革課"
    guest: bool
    meetings: int
    participants: int
    minutes: int


class UsageRead(msgspec.Struct, kw_only=True):
    month: str
    first: date
    last: date
    scope: str  # "city", or "scope" for a unit head's subtree
    meetings: int
    scheduled: int
    participants: int
    minutes: int
    units: list[UnitUsageRead]


def parse_month(text: str | None, today: date) -> date:
    """YYYY-MM as the month's first day; none given: this month."""
    if not text:
        return today.replace(day=1)
    try:
        year, month = text.strip().split("-")
        if len(year) != 4:
            raise ValueError(text)
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise DomainError("rtc.usage.bad_month", value=text[:20], field="month", status_code=400) from exc


def this_month() -> date:
    return usage.utcnow().astimezone(usage.TOKYO).date().replace(day=1)


def _scope(principal: Principal) -> set[int] | None:
    return None if principal.has(*EVERYTHING) else set(principal.scope_unit_ids)


async def _unit_labels(db: AsyncSession, locale: str) -> dict[int, tuple[str, str]]:
    """Each unit's code and its path from the top of the tree, in the reader's language."""
    units: dict[int | None, tuple[str, str, int | None]] = {
        uid: (code, en if locale == "en" and en else ja, parent)
        for uid, code, ja, en, parent in await db.execute(
            select(
                col(OrgUnit.id),
                col(OrgUnit.code),
                col(OrgUnit.name),
                col(OrgUnit.name_en),
                col(OrgUnit.parent_id),
            )
        )
    }
    labels: dict[int, tuple[str, str]] = {}
    for uid, (code, _name, _parent) in units.items():
        if uid is None:
            continue
        names: list[str] = []
        current: int | None = uid
        while current is not None and current in units and len(names) < 12:
            names.append(units[current][1])
            current = units[current][2]
        labels[uid] = (code, " / ".join(reversed(names)))
    return labels


async def month_usage(db: AsyncSession, principal: Principal, locale: str, first: date) -> UsageRead:
    """One month's figures as the reader may see them, rows in the order of the unit tree."""
    start, last = usage.month_bounds(first)
    scope = _scope(principal)
    figures = await usage.usage(db, start, last, units=scope)
    labels = await _unit_labels(db, locale)
    from app.i18n import translate

    rows = []
    for u in figures.units:
        if u.guest:
            code, name = "", translate(locale, "rtc.usage.guests")
        elif u.unit_id is None or u.unit_id not in labels:
            code, name = "", translate(locale, "rtc.usage.no_unit")
        else:
            code, name = labels[u.unit_id]
        rows.append(
            UnitUsageRead(
                unit_id=u.unit_id,
                unit_code=code,
                unit_name=name,
                guest=u.guest,
                meetings=u.meetings,
                participants=u.participants,
                minutes=u.minutes,
            )
        )
    rows.sort(key=lambda r: (r.guest, not r.unit_code, r.unit_code))
    return UsageRead(
        month=f"{start:%Y-%m}",
        first=start,
        last=last,
        scope="city" if scope is None else "scope",
        meetings=figures.meetings,
        scheduled=figures.scheduled,
        participants=figures.participants,
        minutes=figures.minutes,
        units=rows,
    )


class UsageApi(Controller):
    """Online-meeting usage (meetings held, participants, participant-minutes) per month and unit."""

    path = "/api/rtc"
    tags = ["meetings"]
    guards = [requires(*READERS)]

    @get("/usage", operation_id="meetingUsage")
    async def month(
        self, request: Request[Principal, Any, Any], db: DB, month: MonthQuery = None
    ) -> UsageRead:
        """One month (YYYY-MM, Asia/Tokyo; default this month): totals and a row per unit."""
        first = parse_month(month, this_month())
        return await month_usage(db, request.user, request_locale(request), first)

    @get("/usage.csv", operation_id="meetingUsageCsv", media_type="text/csv")
    async def csv(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        first: Annotated[str | None, QueryParameter(name="from", max_length=20)] = None,
        last: Annotated[str | None, QueryParameter(name="to", max_length=20)] = None,
    ) -> Response[bytes]:
        """Month × unit for Excel (UTF-8 with BOM, Japanese headers); default the last 12 months."""
        current = this_month()
        end = parse_month(last, current)
        index = end.year * 12 + end.month - 1
        start = parse_month(first, date((index - 11) // 12, (index - 11) % 12 + 1, 1))
        span = index - (start.year * 12 + start.month - 1) + 1
        if span < 1 or span > MAX_MONTHS:
            raise DomainError("rtc.usage.bad_range", most=MAX_MONTHS, status_code=400)
        locale = request_locale(request)
        rows: list[list[Any]] = []
        for i in range(span):
            at = start.year * 12 + start.month - 1 + i
            data = await month_usage(db, request.user, locale, date(at // 12, at % 12 + 1, 1))
            for u in data.units:
                rows.append([data.month, u.unit_code, u.unit_name, u.meetings, u.participants, u.minutes])
            rows.append([data.month, "", "合計", data.meetings, data.participants, data.minutes])
        name = f"meeting-usage-{start:%Y%m}-{end:%Y%m}.csv"
        body = excel_csv(["年月", "組織コード", "組織", "会議数", "参加者数", "参加者延べ分数"], rows)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


class UsagePages(Controller):
    """The usage page: a month's totals and the per-unit table."""

    path = "/rooms/usage"
    guards = [requires(*READERS)]
    include_in_schema = False

    @get("/", media_type=MediaType.HTML, operation_id="meetingUsagePage")
    async def page(self, request: Request[Principal, Any, Any], db: DB, month: MonthQuery = None) -> Template:
        locale = request_locale(request)
        current = this_month()
        errors: list[dict[str, str]] = []
        status = 200
        try:
            first = parse_month(month, current)
        except DomainError as exc:
            errors, status, first = field_errors(locale, exc), 400, current
        data = await month_usage(db, request.user, locale, first)
        index = first.year * 12 + first.month - 1
        prev = date((index - 1) // 12, (index - 1) % 12 + 1, 1)
        nxt = date((index + 1) // 12, (index + 1) % 12 + 1, 1)
        return Template(
            "rtc/usage.html",
            context=page_context(
                request,
                data=data,
                prev=f"{prev:%Y-%m}",
                next=f"{nxt:%Y-%m}" if nxt <= current else "",
                errors=errors,
                indicator=request.user.has(*INDICATOR_READERS),
            ),
            status_code=status,
        )
