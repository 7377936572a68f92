"""Telework pages for employees and approvers: my month, a new request with its preview, a request's
history, the approvals inbox, the team coverage grid, notifications, and the home-page panel."""

from __future__ import annotations

import calendar as pycal
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.deps import DB, SettingsDep
from app.errors import DomainError, field_errors
from app.security import Principal, requires, signed_in
from app.web import NavItem, page_context, request_locale
from auth.controllers import client_ip
from scheduling import approvals, feeds, reports, schemas, services
from scheduling.calendar import WorkingCalendar
from scheduling.config import TOKYO
from scheduling.controllers import cfg, month_of
from scheduling.models import Notification
from scheduling.notify import render

NAV = [
    NavItem("/telework", "nav.telework"),
    NavItem("/telework/inbox", "nav.telework_inbox", ("unit_head", "hr_admin")),
    NavItem("/telework/coverage", "nav.telework_coverage", ("unit_head", "hr_admin", "auditor")),
]
Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
HEADS = ("unit_head", "hr_admin", "auditor", "sysadmin")


class RequestForm(msgspec.Struct, kw_only=True):
    action: str = "preview"
    kind: str = "single"
    first_day: str = ""
    last_day: str = ""
    weekdays: list[str] | str = msgspec.field(default_factory=list)
    part: str = "full"
    place: str = "home"
    place_note: str = ""
    plan: str = ""
    contact: str = ""

    def weekday_list(self) -> list[str]:
        return [self.weekdays] if isinstance(self.weekdays, str) else list(self.weekdays)


class DecideForm(msgspec.Struct, kw_only=True):
    day_ids: list[str] | str = msgspec.field(default_factory=list)
    decision: str = ""
    comment: str = ""
    override_reason: str = ""
    only: str = ""  # a row's own button: "<day id>:<approve|reject>"
    back: str = "/telework/inbox"

    def ids(self) -> list[int]:
        if self.only:
            head = self.only.split(":", 1)[0]
            return [int(head)] if head.isdigit() else []
        raw = [self.day_ids] if isinstance(self.day_ids, str) else self.day_ids
        return [int(x) for x in raw if x.isdigit()][:1000]

    def chosen_decision(self) -> str:
        return self.only.split(":", 1)[1] if ":" in self.only else self.decision


class CommentForm(msgspec.Struct, kw_only=True):
    day_id: str = ""
    comment: str = ""


class FeedForm(msgspec.Struct, kw_only=True):
    kind: str = "personal"
    unit_id: str = ""


class ReportForm(msgspec.Struct, kw_only=True):
    which: str = "start"
    summary: str = ""


def jst(moment: datetime | None) -> str:
    return moment.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M") if moment else ""


def hm(moment: datetime | None) -> str:
    return moment.astimezone(TOKYO).strftime("%H:%M") if moment else ""


def num(value: float | None) -> str:
    """5.0 → '5', 4.5 → '4.5' (half days make halves)."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def month_grid(first: date) -> list[list[date | None]]:
    """Weeks of the month, Monday first, None outside it."""
    weeks = []
    for week in pycal.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month):
        weeks.append([d if d.month == first.month else None for d in week])
    return weeks


def shift_month(first: date, months: int) -> str:
    index = first.year * 12 + first.month - 1 + months
    return f"{index // 12}-{index % 12 + 1:02d}"


def to_request_in(form: RequestForm) -> schemas.RequestIn:
    """The form as the API's input; a bad field becomes a DomainError naming it."""
    payload: dict[str, Any] = {
        "kind": form.kind,
        "first_day": form.first_day,
        "part": form.part,
        "place": form.place,
        "place_note": form.place_note,
        "plan": form.plan,
        "contact": form.contact,
    }
    if form.kind != "single" and form.last_day:
        payload["last_day"] = form.last_day
    if form.kind == "pattern":
        payload["weekdays"] = [int(w) for w in form.weekday_list() if w.isdigit()]
    try:
        return msgspec.convert(payload, schemas.RequestIn)
    except msgspec.ValidationError as exc:
        raise DomainError("telework.form_invalid", status_code=422, detail=str(exc)) from exc


class TeleworkPages(Controller):
    """Pages over the telework services (same rules and messages as the API)."""

    include_in_schema = False
    guards = [signed_in]

    # ------------------------------------------------------------ my telework

    @get("/telework", operation_id="myTeleworkPage")
    async def mine(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        month: Annotated[str | None, QueryParameter()] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        done: FromQuery[str] = "",
    ) -> Template:
        c = cfg(request)
        today = c.today()
        first = month_of(month, today)
        last = date(first.year, first.month, pycal.monthrange(first.year, first.month)[1])
        days = await services.my_days(db, request.user, first, last)
        by_day: dict[date, list[schemas.DayRead]] = {}
        for d in days:
            by_day.setdefault(d.day, []).append(d)
        working = await WorkingCalendar.load(db, c, first, last)
        offs = {d: working.day_off(d) for d in (first + timedelta(days=i) for i in range(last.day))}
        requests, total = await services.my_requests(db, request.user, page=page, per_page=10)
        my_feeds = await feeds.my_feeds(db, request.user)
        head_units = await _coverage_units(db, request.user) if request.user.scope_unit_ids else []
        return Template(
            "scheduling/mine.html",
            context=page_context(
                request,
                today=today,
                first=first,
                weeks=month_grid(first),
                by_day=by_day,
                offs=offs,
                prev_month=shift_month(first, -1),
                next_month=shift_month(first, 1),
                requests=requests,
                page=page,
                pages=max(1, -(-total // 10)),
                query=f"month={first.year}-{first.month:02d}",
                feeds=my_feeds,
                head_units=head_units,
                done=done,
            ),
        )

    @get("/telework/new", operation_id="newTeleworkRequestPage")
    async def new(self, request: Request[Principal, Any, Any], day: FromQuery[str] = "") -> Template:
        typed = RequestForm(first_day=day)
        return Template(
            "scheduling/new.html", context=page_context(request, typed=typed, preview=None, errors=[])
        )

    @post(
        "/telework/new", operation_id="newTeleworkRequestSubmit", status_code=303, media_type=MediaType.HTML
    )
    async def new_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: Annotated[RequestForm, Form],
    ) -> Any:
        c = cfg(request)
        preview = None
        try:
            payload = to_request_in(data)
            if data.action == "submit":
                req = await services.submit(
                    db, c, request.user, payload, c.now(), ip=client_ip(request), base_url=settings.base_url
                )
                return Redirect(f"/telework/requests/{req.id}?done=submitted", status_code=303)
            preview = await services.preview(db, c, request.user, payload, c.now())
        except DomainError as exc:
            await db.rollback()
            return Template(
                "scheduling/new.html",
                context=page_context(
                    request, typed=data, preview=None, errors=field_errors(request_locale(request), exc)
                ),
                status_code=exc.status_code,
            )
        return Template(
            "scheduling/new.html",
            context=page_context(request, typed=data, preview=preview, errors=[]),
            status_code=200,
        )

    @get("/telework/requests/{request_id:int}", operation_id="teleworkRequestPage")
    async def detail(
        self, request: Request[Principal, Any, Any], db: DB, request_id: Id, done: FromQuery[str] = ""
    ) -> Template:
        read = await services.get_request(db, request.user, request_id)
        history = {d.id: await services.steps(db, request.user, d.id) for d in read.days}
        return Template(
            "scheduling/request.html",
            context=page_context(
                request, req=read, history=history, today=cfg(request).today(), done=done, errors=[]
            ),
        )

    @post(
        "/telework/requests/{request_id:int}/withdraw",
        operation_id="withdrawTeleworkRequestSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def withdraw_request(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, request_id: Id
    ) -> Any:
        await services.withdraw_request(
            db,
            request.user,
            request_id,
            cfg(request).now(),
            ip=client_ip(request),
            base_url=settings.base_url,
        )
        return Redirect(f"/telework/requests/{request_id}?done=withdrawn", status_code=303)

    @post(
        "/telework/days/{day_id:int}/withdraw",
        operation_id="withdrawTeleworkDaySubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def withdraw_day(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, day_id: Id
    ) -> Any:
        rows = await services.withdraw(
            db, request.user, [day_id], cfg(request).now(), ip=client_ip(request), base_url=settings.base_url
        )
        return Redirect(f"/telework/requests/{rows[0].request_id}?done={rows[0].state}", status_code=303)

    @post(
        "/telework/requests/{request_id:int}/comment",
        operation_id="commentTeleworkSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def comment(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        request_id: Id,
        data: Annotated[CommentForm, Form],
    ) -> Any:
        text = data.comment.strip()
        if not data.day_id.isdigit() or not text or len(text) > 1000:
            read = await services.get_request(db, request.user, request_id)
            history = {d.id: await services.steps(db, request.user, d.id) for d in read.days}
            error = DomainError("telework.comment_invalid", status_code=422)
            return Template(
                "scheduling/request.html",
                context=page_context(
                    request,
                    req=read,
                    history=history,
                    today=cfg(request).today(),
                    done="",
                    errors=field_errors(request_locale(request), error),
                ),
                status_code=422,
            )
        await services.add_comment(db, request.user, int(data.day_id), text, cfg(request).now())
        return Redirect(f"/telework/requests/{request_id}?done=commented", status_code=303)

    # ------------------------------------------------------------ start/end reports (home panel)

    @post(
        "/telework/days/{day_id:int}/report",
        operation_id="teleworkReportSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def report(
        self, request: Request[Principal, Any, Any], db: DB, day_id: Id, data: Annotated[ReportForm, Form]
    ) -> Any:
        which = "end" if data.which == "end" else "start"
        summary = data.summary.strip()[:2000]
        await reports.report(
            db,
            request.user,
            day_id,
            which,
            cfg(request).now(),
            schemas.ReportIn(summary=summary),
            ip=client_ip(request),
        )
        return Redirect(f"/?reported={which}", status_code=303)

    # ------------------------------------------------------------ approvals

    @get("/telework/inbox", operation_id="teleworkInboxPage")  # delegates need it too
    async def inbox(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
        flagged: Annotated[bool, QueryParameter()] = False,
        from_day: Annotated[date | None, QueryParameter(name="from")] = None,
        to_day: Annotated[date | None, QueryParameter(name="to")] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        done: FromQuery[str] = "",
    ) -> Template:
        return await self._inbox(
            request, db, unit_id=unit_id, flagged=flagged, first=from_day, last=to_day, page=page, done=done
        )

    async def _inbox(
        self,
        request: Request[Principal, Any, Any],
        db: AsyncSession,
        *,
        unit_id: int | None = None,
        flagged: bool = False,
        first: date | None = None,
        last: date | None = None,
        page: int = 1,
        done: str = "",
        errors: list[dict[str, str]] | None = None,
        typed: DecideForm | None = None,
        status_code: int = 200,
    ) -> Template:
        c = cfg(request)
        today = c.today()
        box = await approvals.inbox(
            db,
            c,
            request.user,
            today=today,
            unit_id=unit_id,
            first=first,
            last=last,
            flagged_only=flagged,
            page=page,
            per_page=100,
        )
        cal = await WorkingCalendar.load(db, c, today - timedelta(days=14), today)
        missing_day = cal.previous_working_day(today)
        missing = (
            await reports.missing(db, c, request.user, missing_day) if request.user.scope_unit_ids else []
        )
        filters = (
            f"unit_id={unit_id}" if unit_id else "",
            "flagged=true" if flagged else "",
            f"from={first.isoformat()}" if first else "",
            f"to={last.isoformat()}" if last else "",
        )
        query = "&".join(p for p in filters if p)
        wide = request.user.scope_unit_ids or request.user.has("hr_admin")
        units = await _coverage_units(db, request.user) if wide else []
        return Template(
            "scheduling/inbox.html",
            context=page_context(
                request,
                box=box,
                page=page,
                pages=max(1, -(-box.total // box.per_page)),
                query=query,
                flagged=flagged,
                unit_id=unit_id,
                units=units,
                first=first,
                last=last,
                done=done,
                errors=errors or [],
                typed=typed or DecideForm(),
                missing=missing,
                missing_day=missing_day,
                num=num,
            ),
            status_code=status_code,
        )

    @post(
        "/telework/inbox/decide",
        operation_id="teleworkDecideSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def decide(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: Annotated[DecideForm, Form],
    ) -> Any:
        back = data.back if data.back.startswith("/telework/") else "/telework/inbox"
        try:
            ids = data.ids()
            if not ids:
                raise DomainError("telework.choose_days", status_code=422)
            decision = data.chosen_decision()
            if decision not in ("approve", "reject"):
                raise DomainError("telework.choose_decision", status_code=422)
            if len(data.comment) > 1000 or len(data.override_reason) > 500:
                raise DomainError("telework.text_too_long", status_code=422)
            rows = await services.decide(
                db,
                cfg(request),
                request.user,
                ids,
                decision,
                cfg(request).now(),
                comment=data.comment,
                override_reason=data.override_reason,
                ip=client_ip(request),
                base_url=settings.base_url,
            )
        except DomainError as exc:
            await db.rollback()
            return await self._inbox(
                request,
                db,
                errors=field_errors(request_locale(request), exc),
                typed=data,
                status_code=exc.status_code if exc.status_code != 404 else 422,
            )
        sep = "&" if "?" in back else "?"
        return Redirect(f"{back}{sep}done={rows[0].state}-{len(rows)}", status_code=303)

    @get("/telework/coverage", operation_id="teleworkCoveragePage", guards=[requires(*HEADS)])
    async def coverage(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
        month: Annotated[str | None, QueryParameter()] = None,
    ) -> Template:
        c = cfg(request)
        first = month_of(month, c.today())
        units = await _coverage_units(db, request.user)
        chosen = unit_id or (units[0][0] if units else None)
        grid = await approvals.coverage(db, c, request.user, chosen, first) if chosen else None
        return Template(
            "scheduling/coverage.html",
            context=page_context(
                request,
                grid=grid,
                units=units,
                chosen=chosen,
                first=first,
                prev_month=shift_month(first, -1),
                next_month=shift_month(first, 1),
                today=c.today(),
                num=num,
            ),
        )

    # ------------------------------------------------------------ notifications and calendar feeds

    @get("/telework/notifications", operation_id="teleworkNotificationsPage")
    async def notifications(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        rows = list(
            (
                await db.execute(
                    select(Notification)
                    .where(col(Notification.user_id) == request.user.id)
                    .order_by(col(Notification.id).desc())
                    .limit(100)
                )
            ).scalars()
        )
        locale = request_locale(request)
        items = [
            {
                "text": render(locale, n.key, n.params_json),
                "link": n.link,
                "at": n.created_at,
                "read": n.read_at,
            }
            for n in rows
        ]
        await db.execute(
            update(Notification)
            .where(col(Notification.user_id) == request.user.id, col(Notification.read_at).is_(None))
            .values(read_at=cfg(request).now())
        )
        return Template("scheduling/notifications.html", context=page_context(request, items=items, jst=jst))

    @post("/telework/feeds", operation_id="createFeedSubmit", status_code=200, media_type=MediaType.HTML)
    async def create_feed(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: Annotated[FeedForm, Form],
    ) -> Any:
        wanted = feeds.CalendarFeedIn(kind="personal")
        if data.kind == "unit" and data.unit_id.isdigit():  # a unit head's feed of a unit in their scope
            wanted = feeds.CalendarFeedIn(kind="unit", unit_id=int(data.unit_id))
        created = await feeds.create_feed(db, request.user, wanted, settings.base_url, ip=client_ip(request))
        return Template(
            "scheduling/feed_created.html",
            context=page_context(request, url=created.url, webcal=created.webcal_url),
            status_code=200,
        )

    @post(
        "/telework/feeds/{feed_id:int}/revoke",
        operation_id="revokeFeedSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def revoke_feed(self, request: Request[Principal, Any, Any], db: DB, feed_id: Id) -> Any:
        await feeds.revoke_feed(db, request.user, feed_id, cfg(request).now(), ip=client_ip(request))
        return Redirect("/telework?done=feed_revoked#calendar-feeds", status_code=303)


async def _coverage_units(db: AsyncSession, principal: Principal) -> list[tuple[int, str]]:
    from auth.models import OrgUnit

    query = select(OrgUnit.id, OrgUnit.name, OrgUnit.name_en).where(col(OrgUnit.active).is_(True))
    if not principal.has("hr_admin", "auditor", "sysadmin"):
        query = query.where(col(OrgUnit.id).in_(principal.scope_unit_ids or {0}))
    rows = (await db.execute(query.order_by(col(OrgUnit.code)))).all()
    return [(uid, (en if principal.locale == "en" and en else ja)) for uid, ja, en in rows]


# ---------------------------------------------------------------- home page


async def home_panel(
    request: Request[Any, Any, Any], db: AsyncSession, principal: Principal
) -> tuple[str, dict]:
    """Today's telework with start/end buttons, and what is waiting for the person."""
    c = cfg(request)
    today = c.today()
    todays = await reports.today_days(db, principal, today)
    pending = await approvals.pending_count(db, principal, today)  # delegates see theirs too
    unread = (
        await db.execute(
            select(func.count())
            .select_from(Notification)
            .where(col(Notification.user_id) == principal.id, col(Notification.read_at).is_(None))
        )
    ).scalar_one()
    return "scheduling/home_panel.html", {
        "todays": todays,
        "pending": pending,
        "unread": unread,
        "today": today,
        "reported": request.query_params.get("reported", ""),
        "hm": hm,
    }
