"""The indicator: JSON and CSV under /api/indicator, and the dashboard page /indicator."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.csvutil import excel_csv
from app.deps import DB
from app.errors import DomainError, Forbidden, field_errors
from app.security import Principal, requires
from app.web import NavItem, page_context, request_locale
from auth.models import OrgUnit
from scheduling import indicator
from scheduling.charts import series_chart
from scheduling.controllers import cfg

READERS = ("unit_head", "hr_admin", "auditor", "sysadmin")
HR = ("hr_admin", "sysadmin")
NAV = [NavItem("/indicator", "nav.indicator", READERS)]
MonthPath = Annotated[str, PathParameter(pattern=r"^\d{4}-\d{2}$", max_length=7)]
YearPath = Annotated[int, PathParameter(ge=2000, le=2100)]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class UnitRow(msgspec.Struct, kw_only=True):
    unit_id: int | None
    unit_name: str
    count: int
    staff: int


class MonthRead(msgspec.Struct, kw_only=True):
    month: str
    count: int
    staff: int
    headcount: int
    share: float  # staff who teleworked at least once / active staff
    target: int
    baseline: int
    rule_version: int
    revision: int  # 0: the running month, counted live
    closed: bool
    closed_at: datetime | None
    units: list[UnitRow]
    history: list[dict[str, Any]]


class SeriesRead(msgspec.Struct, kw_only=True):
    months: list[MonthRead]
    rules: dict[int, dict[str, str]]
    scope: str  # "city" or the unit subtree's name


class RevisionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class TargetIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    monthly_target: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
    baseline: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class TargetForm(msgspec.Struct, kw_only=True):
    fiscal_year: str = ""
    monthly_target: str = ""
    baseline: str = ""
    note: str = ""


class RevisionForm(msgspec.Struct, kw_only=True):
    month: str = ""
    reason: str = ""


def rules_read() -> dict[int, dict[str, str]]:
    return {v: {"ja": r.ja, "en": r.en} for v, r in indicator.COUNTING_RULES.items()}


async def _scope(db: AsyncSession, principal: Principal, unit_id: int | None) -> tuple[set[int] | None, str]:
    """Which units' figures the person sees: all (HR, auditors), or a unit head's subtree."""
    from auth.services import subtree_ids

    everything = principal.has("hr_admin", "auditor", "sysadmin")
    if unit_id is None:
        return (None, "city") if everything else (set(principal.scope_unit_ids), "scope")
    if not everything and unit_id not in principal.scope_unit_ids:
        raise Forbidden("indicator.unit_not_in_scope")
    unit = await db.get(OrgUnit, unit_id)
    if unit is None:
        raise DomainError("indicator.unit_unknown", status_code=404)
    label = unit.name_en if principal.locale == "en" and unit.name_en else unit.name
    return await subtree_ids(db, [unit_id]), label


async def _series(
    db: AsyncSession, request: Request[Principal, Any, Any], unit_id: int | None, months: int
) -> SeriesRead:
    c = cfg(request)
    today = c.today()
    last = indicator.month_start(today)
    index = last.year * 12 + last.month - 1 - (months - 1)
    first = date(index // 12, index % 12 + 1, 1)
    units, scope = await _scope(db, request.user, unit_id)
    points = await indicator.series(db, c, first, last)
    names = {
        uid: (en if request.user.locale == "en" and en else ja)
        for uid, ja, en in (await db.execute(select(OrgUnit.id, OrgUnit.name, OrgUnit.name_en))).all()
    }
    out = []
    for p in points:
        rows = [u for u in p.units if units is None or u["unit_id"] in units]
        count = sum(u["count"] for u in rows) if units is not None else p.count
        staff = sum(u["staff"] for u in rows) if units is not None else p.staff
        out.append(
            MonthRead(
                month=f"{p.month:%Y-%m}",
                count=count,
                staff=staff,
                headcount=p.headcount,
                share=round(staff / p.headcount, 4) if p.headcount else 0.0,
                target=p.target,
                baseline=p.baseline,
                rule_version=p.rule_version,
                revision=p.revision,
                closed=p.closed,
                closed_at=p.closed_at,
                units=[
                    UnitRow(
                        unit_id=u["unit_id"],
                        unit_name=names.get(u["unit_id"], "—") if u["unit_id"] else "—",
                        count=u["count"],
                        staff=u["staff"],
                    )
                    for u in rows
                ],
                history=p.history,
            )
        )
    return SeriesRead(months=out, rules=rules_read(), scope=scope)


UnitQuery = Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)]
MonthsQuery = Annotated[int, QueryParameter(ge=1, le=120)]


class IndicatorApi(Controller):
    """リモートワーク実施回数（月間）: the series, the live month, exports, closing and corrections."""

    path = "/api/indicator"
    tags = ["indicator"]
    guards = [requires(*READERS)]

    @get("/months", operation_id="indicatorSeries")
    async def months(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: UnitQuery = None,
        months: MonthsQuery = 24,
    ) -> SeriesRead:
        """Closed months (latest revision, earlier ones in history) and the running month, live."""
        return await _series(db, request, unit_id, months)

    @get("/months.csv", operation_id="indicatorSeriesCsv", media_type="text/csv")
    async def months_csv(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: UnitQuery = None,
        months: MonthsQuery = 24,
    ) -> Response[bytes]:
        """The series as CSV for Excel (UTF-8 with BOM, Japanese headers)."""
        data = await _series(db, request, unit_id, months)
        header = [
            "年月",
            "実施回数",
            "実施職員数",
            "職員数",
            "実施職員の割合",
            "目標値",
            "基準値",
            "集計ルール版",
            "版",
            "確定",
        ]
        rows = [
            [
                m.month,
                m.count,
                m.staff,
                m.headcount,
                m.share,
                m.target,
                m.baseline,
                m.rule_version,
                m.revision,
                "確定" if m.closed else "集計中",
            ]
            for m in data.months
        ]
        return _csv(excel_csv(header, rows), "telework-indicator.csv")

    @get("/opendata.csv", operation_id="indicatorOpenData", media_type="text/csv")
    async def open_data(
        self, request: Request[Principal, Any, Any], db: DB, months: MonthsQuery = 120
    ) -> Response[bytes]:
        """Closed months as municipal open data: 年月, 実施回数, 目標値, 基準値, 実施職員数, 集計ルール版."""
        data = await _series(db, request, None, months)
        rows = [
            [m.month.replace("-", "/"), m.count, m.target, m.baseline, m.staff, m.rule_version]
            for m in data.months
            if m.closed
        ]
        return _csv(
            excel_csv(["年月", "実施回数", "目標値", "基準値", "実施職員数", "集計ルール版"], rows),
            "remote-work-count.csv",
        )

    @post(
        "/months/{month:str}/close",
        operation_id="closeIndicatorMonth",
        guards=[requires(*HR)],
        status_code=200,
    )
    async def close(self, request: Request[Principal, Any, Any], db: DB, month: MonthPath) -> dict[str, Any]:
        """Close a finished month now (the monthly job does it by itself); closing twice changes nothing."""
        c = cfg(request)
        first = indicator.parse_month(month)
        row = await indicator.close_month(db, c, first, today=c.today(), actor=request.user.name)
        return {"month": f"{first:%Y-%m}", "closed_now": row is not None}

    @post("/months/{month:str}/revisions", operation_id="correctIndicatorMonth", guards=[requires(*HR)])
    async def correct(
        self, request: Request[Principal, Any, Any], db: DB, month: MonthPath, data: JSONBody[RevisionIn]
    ) -> dict[str, Any]:
        """Count a closed month again as a new revision, with the reason; the earlier figure stays visible."""
        row = await indicator.correct_month(
            db, cfg(request), request.user, indicator.parse_month(month), data.reason
        )
        return {
            "month": f"{row.month:%Y-%m}",
            "revision": row.revision,
            "count": row.count,
            "staff": row.staff,
        }

    @get("/targets", operation_id="indicatorTargets")
    async def targets(self, db: DB) -> list[dict[str, Any]]:
        """The monthly target and baseline per fiscal year (April–March); unset years use 15,000 / 1,200."""
        from scheduling.models import IndicatorTarget

        rows = (
            await db.execute(select(IndicatorTarget).order_by(col(IndicatorTarget.fiscal_year)))
        ).scalars()
        return [
            {
                "fiscal_year": r.fiscal_year,
                "monthly_target": r.monthly_target,
                "baseline": r.baseline,
                "note": r.note,
            }
            for r in rows
        ]

    @put("/targets/{fiscal_year:int}", operation_id="setIndicatorTarget", guards=[requires(*HR)])
    async def set_target(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        fiscal_year: YearPath,
        data: JSONBody[TargetIn],
    ) -> dict[str, Any]:
        """Set one fiscal year's monthly target and baseline."""
        row = await indicator.set_target(
            db, request.user, fiscal_year, data.monthly_target, data.baseline, data.note
        )
        return {
            "fiscal_year": row.fiscal_year,
            "monthly_target": row.monthly_target,
            "baseline": row.baseline,
        }


def _csv(body: bytes, name: str) -> Response[bytes]:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class IndicatorPages(Controller):
    include_in_schema = False
    guards = [requires(*READERS)]

    @get("/indicator", operation_id="indicatorPage")
    async def dashboard(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: UnitQuery = None,
        sort: FromQuery[str] = "count",
        done: FromQuery[str] = "",
    ) -> Template:
        return await self._page(request, db, unit_id=unit_id, sort=sort, done=done)

    async def _page(
        self,
        request: Request[Principal, Any, Any],
        db: AsyncSession,
        *,
        unit_id: int | None = None,
        sort: str = "count",
        done: str = "",
        errors: list[dict[str, str]] | None = None,
        status_code: int = 200,
    ) -> Template:
        data = await _series(db, request, unit_id, 24)
        latest = data.months[-1] if data.months else None
        closed = [m for m in data.months if m.closed]
        unit_rows = list(latest.units) if latest else []
        if sort == "name":
            unit_rows.sort(key=lambda u: u.unit_name)
        elif sort == "staff":
            unit_rows.sort(key=lambda u: (-u.staff, u.unit_name))
        else:
            unit_rows.sort(key=lambda u: (-u.count, u.unit_name))
        units = [
            (uid, (en if request.user.locale == "en" and en else ja))
            for uid, ja, en in (
                await db.execute(
                    select(OrgUnit.id, OrgUnit.name, OrgUnit.name_en).order_by(col(OrgUnit.code))
                )
            ).all()
            if request.user.has("hr_admin", "auditor", "sysadmin") or uid in request.user.scope_unit_ids
        ]
        locale = request_locale(request)
        chart = series_chart(data.months, locale)
        measures: list[tuple[str, int]] = []
        if latest is not None:  # other domains' figures for the same month (devices on loan, meetings held)
            first = indicator.parse_month(latest.month)
            for measure in getattr(request.app.state, "measures", []):
                measures.extend(await measure(db, first, indicator.month_end(first)))
        return Template(
            "scheduling/indicator.html",
            context=page_context(
                request,
                data=data,
                latest=latest,
                closed=closed,
                unit_rows=unit_rows,
                units=units,
                unit_id=unit_id,
                sort=sort,
                chart=chart,
                measures=measures,
                rule=indicator.COUNTING_RULES[latest.rule_version if latest else indicator.CURRENT_RULE],
                done=done,
                errors=errors or [],
                fy=indicator.fiscal_year(cfg(request).today()),
            ),
            status_code=status_code,
        )

    @post(
        "/indicator/targets",
        operation_id="indicatorTargetSubmit",
        guards=[requires(*HR)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def target_submit(
        self, request: Request[Principal, Any, Any], db: DB, data: Annotated[TargetForm, Form]
    ) -> Any:
        try:
            year, target, baseline = (int(x) for x in (data.fiscal_year, data.monthly_target, data.baseline))
            if not (2000 <= year <= 2100 and 0 <= target <= 10_000_000 and 0 <= baseline <= 10_000_000):
                raise ValueError
        except ValueError:
            await db.rollback()
            error = DomainError("indicator.target_invalid", status_code=422)
            return await self._page(
                request, db, errors=field_errors(request_locale(request), error), status_code=422
            )
        await indicator.set_target(db, request.user, year, target, baseline, data.note)
        return Redirect("/indicator?done=target", status_code=303)

    @post(
        "/indicator/revisions",
        operation_id="indicatorRevisionSubmit",
        guards=[requires(*HR)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def revision_submit(
        self, request: Request[Principal, Any, Any], db: DB, data: Annotated[RevisionForm, Form]
    ) -> Any:
        try:
            month = indicator.parse_month(data.month)
            await indicator.correct_month(db, cfg(request), request.user, month, data.reason)
        except DomainError as exc:
            await db.rollback()
            return await self._page(
                request, db, errors=field_errors(request_locale(request), exc), status_code=exc.status_code
            )
        return Redirect("/indicator?done=revision", status_code=303)
