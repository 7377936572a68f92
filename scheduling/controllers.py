"""Telework JSON API under /api/telework (thin: HTTP ↔ services)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from sqlalchemy import func, update
from sqlmodel import col, select

from app.deps import DB, SettingsDep
from app.errors import DomainError
from app.security import Principal, requires, signed_in
from auth.controllers import client_ip
from scheduling import approvals, policies, reports, schemas, services
from scheduling.config import TeleworkConfig
from scheduling.models import Notification
from scheduling.notify import render

Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
OptId = Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)]
OptDay = Annotated[date | None, QueryParameter()]
Page = Annotated[int, QueryParameter(ge=1, le=100_000)]
PerPage = Annotated[int, QueryParameter(ge=1, le=500)]
HR = ("hr_admin", "sysadmin")
HEADS = ("unit_head", "hr_admin", "auditor", "sysadmin")


def cfg(request: Request[Any, Any, Any]) -> TeleworkConfig:
    return request.app.state.telework_config  # type: ignore[no-any-return]


def month_of(value: str | None, today: date) -> date:
    if not value:
        return today.replace(day=1)
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise DomainError("telework.bad_month", value=value[:20], status_code=400) from exc


class MessageList(msgspec.Struct, kw_only=True):
    items: list[schemas.NotificationRead]
    unread: int


class RequestList(msgspec.Struct, kw_only=True):
    items: list[schemas.RequestRead]
    total: int
    page: int
    per_page: int


class TeleworkApi(Controller):
    """Book, withdraw and cancel telework days; decide them; coverage, delegation, reports, rules."""

    path = "/api/telework"
    tags = ["telework"]
    guards = [signed_in]

    # ------------------------------------------------------------ requests

    @post("/requests/preview", operation_id="previewTeleworkRequest", status_code=200)
    async def preview(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.RequestIn]
    ) -> schemas.PreviewRead:
        """What submitting would do: rule results per day, days left this week and month, the approver."""
        c = cfg(request)
        return await services.preview(db, c, request.user, data, c.now())

    @post("/requests", operation_id="submitTeleworkRequest")
    async def submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: JSONBody[schemas.RequestIn],
    ) -> schemas.RequestRead:
        """Book one day, a range or a weekly pattern; refused whole when a hard rule is broken."""
        c = cfg(request)
        req = await services.submit(
            db, c, request.user, data, c.now(), ip=client_ip(request), base_url=settings.base_url
        )
        assert req.id is not None
        return await services.get_request(db, request.user, req.id)

    @get("/requests", operation_id="listMyTeleworkRequests")
    async def mine(
        self, request: Request[Principal, Any, Any], db: DB, page: Page = 1, per_page: PerPage = 20
    ) -> RequestList:
        """My requests, newest first."""
        items, total = await services.my_requests(db, request.user, page=page, per_page=per_page)
        return RequestList(items=items, total=total, page=page, per_page=per_page)

    @get("/days", operation_id="listMyTeleworkDays")
    async def my_days(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        month: Annotated[str | None, QueryParameter()] = None,
    ) -> list[schemas.DayRead]:
        """My days in a month (YYYY-MM, default this month), for the calendar."""
        first = month_of(month, cfg(request).today())
        last = date(first.year + (first.month == 12), first.month % 12 + 1, 1).toordinal() - 1
        return await services.my_days(db, request.user, first, date.fromordinal(last))

    @get("/requests/{request_id:int}", operation_id="getTeleworkRequest")
    async def get_request(
        self, request: Request[Principal, Any, Any], db: DB, request_id: Id
    ) -> schemas.RequestRead:
        """One request with its days (requester, approver, delegate, unit heads above, HR)."""
        return await services.get_request(db, request.user, request_id)

    @post("/requests/{request_id:int}/withdraw", operation_id="withdrawTeleworkRequest", status_code=200)
    async def withdraw_request(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, request_id: Id
    ) -> schemas.RequestRead:
        """Withdraw undecided days and cancel approved future days of my request."""
        c = cfg(request)
        await services.withdraw_request(
            db, request.user, request_id, c.now(), ip=client_ip(request), base_url=settings.base_url
        )
        return await services.get_request(db, request.user, request_id)

    @post("/days/{day_id:int}/withdraw", operation_id="withdrawTeleworkDay", status_code=200)
    async def withdraw_day(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, day_id: Id
    ) -> schemas.DayRead:
        """Withdraw one undecided day, or cancel one approved future day (the approver is told)."""
        rows = await services.withdraw(
            db, request.user, [day_id], cfg(request).now(), ip=client_ip(request), base_url=settings.base_url
        )
        return (await services.day_reads(db, rows, request.user.locale))[0]

    @get("/days/{day_id:int}/steps", operation_id="listTeleworkDaySteps")
    async def day_steps(
        self, request: Request[Principal, Any, Any], db: DB, day_id: Id
    ) -> list[schemas.StepRead]:
        """Decisions, comments, escalations and cancellations on one day, in order."""
        return await services.steps(db, request.user, day_id)

    @post("/days/{day_id:int}/comments", operation_id="commentTeleworkDay")
    async def comment(
        self, request: Request[Principal, Any, Any], db: DB, day_id: Id, data: JSONBody[schemas.CommentIn]
    ) -> list[schemas.StepRead]:
        """Add a comment to a day (requester or approver); the other side is told."""
        await services.add_comment(db, request.user, day_id, data.comment, cfg(request).now())
        return await services.steps(db, request.user, day_id)

    # ------------------------------------------------------------ approvals

    @get("/inbox", operation_id="teleworkInbox")
    async def inbox(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: OptId = None,
        from_day: Annotated[date | None, QueryParameter(name="from")] = None,
        to_day: Annotated[date | None, QueryParameter(name="to")] = None,
        flagged: Annotated[bool, QueryParameter()] = False,
        page: Page = 1,
        per_page: PerPage = 50,
    ) -> schemas.InboxRead:
        """Days waiting for my decision (or for someone I act for), with the day's on-site coverage."""
        c = cfg(request)
        return await approvals.inbox(
            db,
            c,
            request.user,
            today=c.today(),
            unit_id=unit_id,
            first=from_day,
            last=to_day,
            flagged_only=flagged,
            page=page,
            per_page=per_page,
        )

    @post("/days/{day_id:int}/decision", operation_id="decideTeleworkDay", status_code=200)
    async def decide_day(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        day_id: Id,
        data: JSONBody[schemas.DecisionIn],
    ) -> schemas.DecisionResult:
        """Approve or reject one day; approving over a soft rule needs an override reason."""
        return await _decide(request, db, settings, [day_id], data)

    @post("/requests/{request_id:int}/decision", operation_id="decideTeleworkRequest", status_code=200)
    async def decide_request(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        request_id: Id,
        data: JSONBody[schemas.DecisionIn],
    ) -> schemas.DecisionResult:
        """Decide every undecided day of a request at once (a whole weekly pattern)."""
        return await _decide(request, db, settings, await services.undecided_days(db, request_id), data)

    @post("/decisions", operation_id="decideTeleworkDaysInBulk", status_code=200)
    async def bulk(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: JSONBody[schemas.BulkDecisionIn],
    ) -> schemas.DecisionResult:
        """Approve or reject many days at once: all of them, or none with the reason."""
        return await _decide(request, db, settings, data.day_ids, data)

    @get("/coverage", operation_id="teleworkCoverage", guards=[requires(*HEADS)])
    async def coverage(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: Annotated[int, QueryParameter(ge=1, le=2_147_483_647)],
        month: Annotated[str | None, QueryParameter()] = None,
    ) -> schemas.CoverageRead:
        """Who is remote each day of a month in one unit, on-site count against the minimum."""
        return await approvals.coverage(
            db, cfg(request), request.user, unit_id, month_of(month, cfg(request).today())
        )

    @get("/reports/missing", operation_id="missingTeleworkReports", guards=[requires(*HEADS)])
    async def missing(
        self, request: Request[Principal, Any, Any], db: DB, day: OptDay = None
    ) -> list[schemas.DayRead]:
        """Approved days without start/end reports (default: the previous working day)."""
        c = cfg(request)
        if day is None:
            from scheduling.calendar import WorkingCalendar

            today = c.today()
            cal = await WorkingCalendar.load(db, c, date.fromordinal(today.toordinal() - 30), today)
            day = cal.previous_working_day(today)
        return await reports.missing(db, c, request.user, day)

    # ------------------------------------------------------------ delegation

    @get("/delegations", operation_id="listDelegations")
    async def delegations(
        self, request: Request[Principal, Any, Any], db: DB
    ) -> list[schemas.DelegationRead]:
        """Delegations I gave and received."""
        return await approvals.my_delegations(db, request.user)

    @post("/delegations", operation_id="createDelegation")
    async def delegate(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.DelegationIn]
    ) -> schemas.DelegationRead:
        """代理承認: name someone to decide in my place for a period (optionally one unit subtree)."""
        row = await approvals.delegate(db, request.user, data, cfg(request).today(), ip=client_ip(request))
        return (await approvals.delegation_reads(db, [row], request.user.locale))[0]

    @delete("/delegations/{delegation_id:int}", operation_id="revokeDelegation", status_code=204)
    async def revoke(self, request: Request[Principal, Any, Any], db: DB, delegation_id: Id) -> None:
        """End a delegation I gave."""
        await approvals.revoke_delegation(db, request.user, delegation_id, cfg(request).now())

    # ------------------------------------------------------------ start/end reports

    @get("/today", operation_id="myTeleworkToday")
    async def today(self, request: Request[Principal, Any, Any], db: DB) -> list[schemas.DayRead]:
        """My approved telework today, with any start/end report."""
        return await reports.today_days(db, request.user, cfg(request).today())

    @post("/days/{day_id:int}/start", operation_id="reportTeleworkStart", status_code=200)
    async def start(
        self, request: Request[Principal, Any, Any], db: DB, day_id: Id, data: JSONBody[schemas.ReportIn]
    ) -> schemas.DayRead:
        """業務開始報告: report the start of work on my approved day."""
        await reports.report(
            db, request.user, day_id, "start", cfg(request).now(), data, ip=client_ip(request)
        )
        return (await services.day_reads(db, [await _day(db, day_id)], request.user.locale))[0]

    @post("/days/{day_id:int}/end", operation_id="reportTeleworkEnd", status_code=200)
    async def end(
        self, request: Request[Principal, Any, Any], db: DB, day_id: Id, data: JSONBody[schemas.ReportIn]
    ) -> schemas.DayRead:
        """業務終了報告: report the end of work (with an optional summary)."""
        await reports.report(db, request.user, day_id, "end", cfg(request).now(), data, ip=client_ip(request))
        return (await services.day_reads(db, [await _day(db, day_id)], request.user.locale))[0]

    # ------------------------------------------------------------ in-app notifications

    @get("/notifications", operation_id="listTeleworkNotifications")
    async def notifications(
        self, request: Request[Principal, Any, Any], db: DB, unread: Annotated[bool, QueryParameter()] = False
    ) -> MessageList:
        """My latest 100 messages (decisions, cancellations, escalations, reminders), newest first."""
        return await notifications_of(db, request.user, only_unread=unread)

    @post("/notifications/read", operation_id="markTeleworkNotificationsRead", status_code=204)
    async def mark_read(self, request: Request[Principal, Any, Any], db: DB) -> None:
        """Mark all my messages read."""
        await db.execute(
            update(Notification)
            .where(col(Notification.user_id) == request.user.id, col(Notification.read_at).is_(None))
            .values(read_at=cfg(request).now())
        )

    # ------------------------------------------------------------ calendar and rules

    @get("/calendar", operation_id="workingCalendar")
    async def calendar(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        from_day: Annotated[date, QueryParameter(name="from")],
        to_day: Annotated[date, QueryParameter(name="to")],
    ) -> list[schemas.CalendarDayRead]:
        """Working days, weekends, national holidays and closures between two days (at most 400)."""
        return await policies.calendar_days(db, cfg(request), from_day, to_day, request.user.locale)

    @get("/policies", operation_id="listTeleworkPolicies")
    async def list_policies(
        self, request: Request[Principal, Any, Any], db: DB, unit_id: OptId = None
    ) -> list[schemas.PolicyRead]:
        """Every policy version (or one unit's), newest first per unit."""
        return await policies.list_policies(db, request.user.locale, unit_id)

    @get("/policies/effective", operation_id="effectiveTeleworkPolicy")
    async def effective_policy(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: Annotated[int, QueryParameter(ge=1, le=2_147_483_647)],
        day: OptDay = None,
    ) -> schemas.PolicyRead | None:
        """The version in force for a unit on a day (its own or inherited); null when no rules apply."""
        c = cfg(request)
        return await policies.effective(db, c, unit_id, day or c.today(), request.user.locale)

    @post("/policies", operation_id="createTeleworkPolicy", guards=[requires(*HR)])
    async def add_policy(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.PolicyIn]
    ) -> schemas.PolicyRead:
        """A new policy version for a unit from a future (or today's) date; history is kept."""
        row = await policies.add_policy(db, request.user, data, cfg(request).today(), ip=client_ip(request))
        names = await services.unit_names(db, [row.unit_id], request.user.locale)
        return policies.policy_read(row, names.get(row.unit_id, ""))

    @get("/closures", operation_id="listClosures")
    async def closures(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        from_day: Annotated[date | None, QueryParameter(name="from")] = None,
        to_day: Annotated[date | None, QueryParameter(name="to")] = None,
    ) -> list[schemas.ClosureIn]:
        """Custom closure days (besides weekends, national holidays and 12/29–1/3)."""
        today = cfg(request).today()
        rows = await policies.list_closures(
            db, from_day or date(today.year - 1, 1, 1), to_day or date(today.year + 2, 12, 31)
        )
        return [schemas.ClosureIn(day=r.day, name=r.name, name_en=r.name_en) for r in rows]

    @post("/closures", operation_id="createClosure", guards=[requires(*HR)])
    async def add_closure(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.ClosureIn]
    ) -> schemas.ClosureIn:
        """Close the office on a day: nobody can book telework on it."""
        row = await policies.add_closure(db, request.user, data, ip=client_ip(request))
        return schemas.ClosureIn(day=row.day, name=row.name, name_en=row.name_en)

    @delete(
        "/closures/{closure_id:int}", operation_id="deleteClosure", guards=[requires(*HR)], status_code=204
    )
    async def remove_closure(self, request: Request[Principal, Any, Any], db: DB, closure_id: Id) -> None:
        """Reopen a closed day."""
        await policies.remove_closure(db, request.user, closure_id, ip=client_ip(request))

    @post("/emergencies", operation_id="startEmergencyMode", guards=[requires(*HR)])
    async def emergency(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.EmergencyIn]
    ) -> dict[str, Any]:
        """Emergency mode for a period: caps, notice and run limits are lifted."""
        row = await policies.start_emergency(db, request.user, data, ip=client_ip(request))
        return {
            "id": row.id,
            "starts": row.starts,
            "ends": row.ends,
            "reason": row.reason,
            "unit_id": row.unit_id,
        }

    @post(
        "/emergencies/{emergency_id:int}/end",
        operation_id="endEmergencyMode",
        guards=[requires(*HR)],
        status_code=200,
    )
    async def end_emergency(
        self, request: Request[Principal, Any, Any], db: DB, emergency_id: Id
    ) -> dict[str, Any]:
        """End emergency mode early (from today)."""
        c = cfg(request)
        row = await policies.end_emergency(db, request.user, emergency_id, c.today(), c.now())
        return {
            "id": row.id,
            "starts": row.starts,
            "ends": row.ends,
            "reason": row.reason,
            "unit_id": row.unit_id,
        }


async def _decide(
    request: Request[Principal, Any, Any],
    db: Any,
    settings: Any,
    day_ids: list[int],
    data: schemas.DecisionIn | schemas.BulkDecisionIn,
) -> schemas.DecisionResult:
    rows = await services.decide(
        db,
        cfg(request),
        request.user,
        day_ids,
        data.decision,
        cfg(request).now(),
        comment=data.comment,
        override_reason=data.override_reason,
        ip=client_ip(request),
        base_url=settings.base_url,
    )
    return schemas.DecisionResult(decided=len(rows), state=rows[0].state, day_ids=[r.id or 0 for r in rows])


async def notifications_of(db: Any, principal: Principal, *, only_unread: bool = False) -> MessageList:
    query = select(Notification).where(col(Notification.user_id) == principal.id)
    if only_unread:
        query = query.where(col(Notification.read_at).is_(None))
    rows = list((await db.execute(query.order_by(col(Notification.id).desc()).limit(100))).scalars())
    unread = (
        await db.execute(
            select(func.count())
            .select_from(Notification)
            .where(col(Notification.user_id) == principal.id, col(Notification.read_at).is_(None))
        )
    ).scalar_one()
    items = [
        schemas.NotificationRead(
            id=n.id or 0,
            key=n.key,
            message=render(principal.locale, n.key, n.params_json),
            link=n.link,
            created_at=n.created_at,
            read=n.read_at is not None,
        )
        for n in rows
    ]
    return MessageList(items=items, unread=unread)


async def _day(db: Any, day_id: int) -> Any:
    from scheduling.models import TeleworkDay

    return await db.get(TeleworkDay, day_id)
