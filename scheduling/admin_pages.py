"""HTML pages for HR's telework rules and for delegated approval (代理承認).

`/admin/telework` (HR): policy versions per org unit (effective, own or inherited, history, a form for
a new version), the year's closures (national holidays, the year-end closure, custom closures) and
emergency mode. `/telework/delegations` (anyone signed in): what was delegated to me; unit heads (所属長)
also name a delegate for a period and scope, and revoke what they gave.

Forms are checked field by field here first, so every mistake is listed at once in the reader's
language; the services then apply the domain rules. On any error the transaction is rolled back and
the page is shown again with status 422 and the typed values kept.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, or_, select

from app.deps import DB
from app.errors import DomainError, field_errors
from app.i18n import translate
from app.security import Principal, current_principal, requires, signed_in
from app.web import NavItem, page_context, request_locale
from auth import services as org
from auth.controllers import client_ip
from auth.models import OrgUnit, User
from scheduling import approvals, policies, schemas
from scheduling.controllers import cfg
from scheduling.models import Closure
from scheduling.rules import RuleContext

HR = ("hr_admin", "sysadmin")
NAV = [
    NavItem("/admin/telework", "nav.telework_admin", HR),
    NavItem("/telework/delegations", "nav.telework_delegations"),
]
MAX_ID = 2_147_483_647
Id = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
Year = Annotated[int | None, QueryParameter(ge=2000, le=2100)]
Done = Annotated[str | None, QueryParameter(max_length=40)]
EMPLOYMENT_TYPES = ("regular", "fixed_term", "part_time", "reappointed")
CANDIDATE_LIMIT = 50
ADMIN_DONE = ("policy_added", "closure_added", "closure_removed", "emergency_started", "emergency_ended")
DELEGATION_DONE = ("delegated", "revoked")
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# Which form field a service error is about (for the error list and aria-invalid).
ERROR_FIELDS = {
    "telework.unit_unknown": "tw_unit",
    "telework.policy_not_retroactive": "tw_valid_from",
    "telework.policy_version_exists": "tw_valid_from",
    "telework.closure_exists": "tw_closure_day",
    "telework.delegate_unknown": "tw_delegate",
    "telework.delegation_to_self": "tw_delegate",
    "telework.delegation_in_past": "tw_ends",
    "telework.range_backwards": "tw_ends",
    "telework.range_too_long": "tw_ends",
    "telework.unit_not_in_scope": "tw_scope",
}
# Schema field → form field, for what msgspec might still refuse after the checks here.
SCHEMA_FIELDS = {
    "unit_id": "tw_unit",
    "valid_from": "tw_valid_from",
    "weekly_cap": "tw_weekly_cap",
    "monthly_cap": "tw_monthly_cap",
    "notice_days": "tw_notice_days",
    "notice_cutoff": "tw_notice_cutoff",
    "max_consecutive": "tw_max_consecutive",
    "min_onsite_count": "tw_min_onsite_count",
    "min_onsite_ratio": "tw_min_onsite_ratio",
    "eligible_types": "tw_eligible_types",
    "blackout_dates": "tw_blackout_dates",
    "note": "tw_note",
    "day": "tw_closure_day",
    "name": "tw_closure_name",
    "name_en": "tw_closure_name_en",
    "starts": "tw_starts",
    "ends": "tw_ends",
    "reason": "tw_reason",
    "to_user_id": "tw_delegate",
}


def unit_heads(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a unit head (someone with units in scope) may name a delegate."""
    principal = current_principal(connection)
    if principal is None:
        signed_in(connection, _)
        return
    if not principal.scope_unit_ids:
        raise PermissionDeniedException("forbidden_role")


# ---------------------------------------------------------------- reading forms


class FormReader:
    """Turns posted text into typed values, collecting a readable message per bad field."""

    def __init__(self, form: Any, locale: str) -> None:
        self.form = form
        self.locale = locale
        self.errors: list[dict[str, str]] = []
        self.typed: dict[str, Any] = {}

    def fail(self, field: str, key: str, **params: Any) -> None:
        self.errors.append({"field": field, "message": translate(self.locale, key, **params)})

    def text(self, name: str, field: str, *, max_length: int, required: bool = False) -> str:
        value = str(self.form.get(name, "") or "").strip()
        self.typed[name] = value
        if required and not value:
            self.fail(field, "twa.err.required")
        elif len(value) > max_length:
            self.fail(field, "error.too_long", n=max_length)
        return value

    def day(self, name: str, field: str, *, required: bool = True) -> date | None:
        value = self.text(name, field, max_length=40, required=required)
        if not value:
            return None
        try:
            return date.fromisoformat(value.replace("/", "-"))
        except ValueError:
            self.fail(field, "twa.err.bad_date")
            return None

    def number(
        self, name: str, field: str, low: float, high: float, *, whole: bool = False, halves: bool = False
    ) -> float | None:
        value = self.text(name, field, max_length=20).replace(",", ".").translate(_ZENKAKU_DIGITS)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            self.fail(field, "twa.err.whole_number" if whole else "twa.err.number")
            return None
        if number != number or number in (float("inf"), float("-inf")):  # NaN, infinities
            self.fail(field, "twa.err.number")
            return None
        if whole and number != int(number):
            self.fail(field, "twa.err.whole_number")
            return None
        if not low <= number <= high:
            self.fail(field, "twa.err.range", low=_num(low), high=_num(high))
            return None
        if halves and number * 2 != int(number * 2):
            self.fail(field, "twa.err.half_days")
            return None
        return number

    def ident(self, name: str, field: str, *, required: bool = False) -> int | None:
        value = self.text(name, field, max_length=12, required=required)
        if not value:
            return None
        if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
            self.fail(field, "error.invalid_choice")
            return None
        return int(value)


_ZENKAKU_DIGITS = str.maketrans("０１２３４５６７８９．", "0123456789.")


def _num(value: float) -> str:
    return f"{value:g}"


def _service_errors(locale: str, exc: Exception) -> list[dict[str, str]]:
    errors = field_errors(locale, exc)
    for e in errors:
        if isinstance(exc, DomainError) and exc.key in ERROR_FIELDS:
            e["field"] = ERROR_FIELDS[exc.key]
        else:
            e["field"] = SCHEMA_FIELDS.get(e["field"].split(".")[0].split("[")[0], e["field"])
    return errors


def _policy_input(form: Any, locale: str) -> tuple[dict[str, Any], FormReader]:
    r = FormReader(form, locale)
    unit_id = r.ident("unit_id", "tw_unit", required=True)
    valid_from = r.day("valid_from", "tw_valid_from")
    weekly = r.number("weekly_cap", "tw_weekly_cap", 0, 7, halves=True)
    monthly = r.number("monthly_cap", "tw_monthly_cap", 0, 31, halves=True)
    notice = r.number("notice_days", "tw_notice_days", 0, 60, whole=True)
    cutoff = r.text("notice_cutoff", "tw_notice_cutoff", max_length=5) or "17:00"
    if not TIME.match(cutoff):
        r.fail("tw_notice_cutoff", "twa.err.bad_time")
    run = r.number("max_consecutive", "tw_max_consecutive", 1, 31, whole=True)
    count = r.number("min_onsite_count", "tw_min_onsite_count", 0, 10000, whole=True)
    percent = r.number("min_onsite_ratio", "tw_min_onsite_ratio", 0, 100)
    types = [str(v) for v in (form.getall("eligible_types", []) if hasattr(form, "getall") else [])]
    r.typed["eligible_types"] = [t for t in types if t in EMPLOYMENT_TYPES]
    if any(t not in EMPLOYMENT_TYPES for t in types) or len(types) > len(EMPLOYMENT_TYPES):
        r.fail("tw_eligible_types", "error.invalid_choice")
    raw_dates = r.text("blackout_dates", "tw_blackout_dates", max_length=4000)
    blackout: list[date] = []
    bad: list[str] = []
    for token in re.split(r"[\s,、，]+", raw_dates):
        if not token:
            continue
        try:
            blackout.append(date.fromisoformat(token.replace("/", "-")))
        except ValueError:
            bad.append(token[:20])
    if bad:
        r.fail("tw_blackout_dates", "twa.err.bad_dates", values=", ".join(bad[:5]))
    elif len(set(blackout)) > 100:
        r.fail("tw_blackout_dates", "twa.err.too_many_dates", n=100)
    r.typed["require_reports"] = form.get("require_reports") == "on"
    note = r.text("note", "tw_note", max_length=500)
    payload = {
        "unit_id": unit_id,
        "valid_from": valid_from,
        "weekly_cap": weekly,
        "monthly_cap": monthly,
        "notice_days": None if notice is None else int(notice),
        "notice_cutoff": cutoff,
        "max_consecutive": None if run is None else int(run),
        "min_onsite_count": None if count is None else int(count),
        "min_onsite_ratio": None if percent is None else round(percent / 100, 4),
        "eligible_types": r.typed["eligible_types"],
        "blackout_dates": sorted(set(blackout)),
        "require_reports": r.typed["require_reports"],
        "note": note,
    }
    return payload, r


def _policy_form_from(policy: schemas.PolicyRead | None, unit_id: int | None, today: date) -> dict[str, Any]:
    """The new-version form, filled with the version in force (so HR changes only what changes)."""
    typed: dict[str, Any] = {
        "unit_id": str(unit_id or ""),
        "valid_from": today.isoformat(),
        "notice_cutoff": "17:00",
        "eligible_types": [],
        "require_reports": True,
    }
    if policy is None:
        return typed
    for name in ("weekly_cap", "monthly_cap", "notice_days", "max_consecutive", "min_onsite_count"):
        value = getattr(policy, name)
        typed[name] = "" if value is None else _num(value)
    ratio = policy.min_onsite_ratio
    typed["min_onsite_ratio"] = "" if ratio is None else _num(round(ratio * 100, 2))
    typed["notice_cutoff"] = policy.notice_cutoff
    typed["eligible_types"] = list(policy.eligible_types)
    typed["blackout_dates"] = "\n".join(d.isoformat() for d in policy.blackout_dates)
    typed["require_reports"] = policy.require_reports
    return typed


# ---------------------------------------------------------------- HR admin page


def _status(first: date, last: date | None, today: date) -> str:
    if first > today:
        return "planned"
    if last is not None and last < today:
        return "ended"
    return "current"


async def _admin_context(
    request: Request[Principal, Any, Any],
    db: AsyncSession,
    *,
    year: int | None = None,
    policy_form: dict[str, Any] | None = None,
    closure_form: dict[str, Any] | None = None,
    emergency_form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    failed: str = "",
    done: str | None = None,
) -> dict[str, Any]:
    c = cfg(request)
    today = c.today()
    locale = request_locale(request)
    year = year or today.year
    units = await org.list_units(db)
    tree = org.as_tree(units)
    labels = {u.id: (u.name_en or u.name) if locale == "en" else u.name for u in units}

    # The version in force today for every unit, from one load of the policies (as the rules see them).
    ctx = await RuleContext.load(db, c, [], today, today)
    effective: list[tuple[int, Any, schemas.PolicyRead | None, str, str]] = []
    for depth, unit in tree:
        policy = ctx.policy(unit.id, today)
        if policy.id is None:
            effective.append((depth, unit, None, "none", ""))
            continue
        read = policies.policy_read(policy, labels.get(policy.unit_id, ""))
        source = "own" if policy.unit_id == unit.id else "inherited"
        effective.append((depth, unit, read, source, labels.get(policy.unit_id, "")))

    versions: dict[int, list[schemas.PolicyRead]] = defaultdict(list)
    for p in await policies.list_policies(db, locale):
        versions[p.unit_id].append(p)
    history = [
        (unit, [(v, _status(v.valid_from, v.valid_to, today)) for v in versions[unit.id]])
        for _, unit in tree
        if versions.get(unit.id)
    ]

    first, last = date(year, 1, 1), date(year, 12, 31)
    closure_ids = {row.day: row for row in await policies.list_closures(db, first, last)}
    days_off = []
    for d in await policies.calendar_days(db, c, first, last, locale):
        if d.working or d.kind == "weekend":
            continue
        row = closure_ids.get(d.day)
        days_off.append(
            {
                "day": d.day,
                "kind": d.kind,
                "name": d.name,
                "closure_id": row.id if row is not None else None,
                "past": d.day < today,
            }
        )

    emergencies = []
    for e in await policies.list_emergencies(db):
        if e.ended_early_at is not None and e.ends < e.starts:
            status = "called_off"
        elif e.ended_early_at is not None and e.ends < today:
            status = "ended_early"
        else:
            status = _status(e.starts, e.ends, today)
        emergencies.append(
            {
                "row": e,
                "status": status,
                "unit_name": labels.get(e.unit_id, "") if e.unit_id else "",
                "can_end": e.ends >= today,
            }
        )
    live = [e for e in emergencies if e["can_end"]]
    past = [e for e in emergencies if not e["can_end"]]

    return page_context(
        request,
        today=today,
        year=year,
        tree=tree,
        effective=effective,
        history=history,
        days_off=days_off,
        live_emergencies=live,
        past_emergencies=past,
        employment_types=EMPLOYMENT_TYPES,
        pform=policy_form or _policy_form_from(None, None, today),
        cform=closure_form or {"day": "", "name": "", "name_en": ""},
        eform=emergency_form or {"starts": today.isoformat(), "ends": "", "reason": "", "unit_id": ""},
        errors=errors or [],
        error_fields={e["field"] for e in errors or []},
        failed=failed,
        done=done if done in ADMIN_DONE else None,
    )


def _admin_page(context: dict[str, Any], status_code: int = 200) -> Template:
    return Template("scheduling/admin.html", context=context, status_code=status_code)


def _back(done: str, anchor: str, year: int | None = None) -> Redirect:
    query = f"done={done}" + (f"&year={year}" if year else "")
    return Redirect(f"/admin/telework?{query}#{anchor}", status_code=303)


class TeleworkAdminPages(Controller):
    """HR: policy versions per unit, closures, emergency mode."""

    include_in_schema = False
    guards = [requires(*HR)]

    @get("/admin/telework", operation_id="teleworkAdminPage")
    async def admin(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        year: Year = None,
        unit: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        done: Done = None,
    ) -> Template:
        form = None
        if unit is not None and await db.get(OrgUnit, unit) is not None:
            c = cfg(request)
            today = c.today()
            current = await policies.effective(db, c, unit, today, request_locale(request))
            form = _policy_form_from(current, unit, today)
        return _admin_page(await _admin_context(request, db, year=year, policy_form=form, done=done))

    @post(
        "/admin/telework/policies",
        operation_id="teleworkPolicySubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def add_policy(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        locale = request_locale(request)
        form = await request.form()
        payload, reader = _policy_input(form, locale)
        errors = reader.errors
        if not errors:
            try:
                data = msgspec.convert(payload, schemas.PolicyIn)
                await policies.add_policy(db, request.user, data, cfg(request).today(), ip=client_ip(request))
            except (msgspec.ValidationError, DomainError) as exc:
                errors = _service_errors(locale, exc)
        if errors:
            await db.rollback()
            context = await _admin_context(
                request, db, policy_form=reader.typed, errors=errors, failed="policy"
            )
            return _admin_page(context, 422)
        return _back("policy_added", "policies")

    @post(
        "/admin/telework/closures",
        operation_id="teleworkClosureSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def add_closure(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        locale = request_locale(request)
        form = await request.form()
        r = FormReader(form, locale)
        day = r.day("day", "tw_closure_day")
        name = r.text("name", "tw_closure_name", max_length=100, required=True)
        name_en = r.text("name_en", "tw_closure_name_en", max_length=100)
        errors = r.errors
        if not errors and day is not None:
            try:
                data = msgspec.convert({"day": day, "name": name, "name_en": name_en}, schemas.ClosureIn)
                await policies.add_closure(db, request.user, data, ip=client_ip(request))
            except (msgspec.ValidationError, DomainError) as exc:
                errors = _service_errors(locale, exc)
        if errors:
            await db.rollback()
            year = day.year if day is not None and 2000 <= day.year <= 2100 else None
            context = await _admin_context(
                request, db, year=year, closure_form=r.typed, errors=errors, failed="closure"
            )
            return _admin_page(context, 422)
        assert day is not None
        return _back("closure_added", "closures", day.year)

    @post(
        "/admin/telework/closures/{closure_id:int}/delete",
        operation_id="teleworkClosureDelete",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def remove_closure(self, request: Request[Principal, Any, Any], db: DB, closure_id: Id) -> Any:
        row = await db.get(Closure, closure_id)
        year = row.day.year if row is not None else None
        await policies.remove_closure(db, request.user, closure_id, ip=client_ip(request))
        return _back("closure_removed", "closures", year)

    @post(
        "/admin/telework/emergencies",
        operation_id="teleworkEmergencySubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def start_emergency(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        locale = request_locale(request)
        form = await request.form()
        r = FormReader(form, locale)
        starts = r.day("starts", "tw_starts")
        ends = r.day("ends", "tw_ends")
        reason = r.text("reason", "tw_reason", max_length=500, required=True)
        unit_id = r.ident("unit_id", "tw_emergency_unit")
        today = cfg(request).today()
        if starts is not None and ends is not None:
            if ends < starts:
                r.fail("tw_ends", "telework.range_backwards")
            elif ends < today:
                r.fail("tw_ends", "twa.err.emergency_past")
        errors = r.errors
        if not errors and starts is not None and ends is not None:
            try:
                data = msgspec.convert(
                    {"starts": starts, "ends": ends, "reason": reason, "unit_id": unit_id},
                    schemas.EmergencyIn,
                )
                await policies.start_emergency(db, request.user, data, ip=client_ip(request))
            except (msgspec.ValidationError, DomainError) as exc:
                errors = _service_errors(locale, exc)
                if isinstance(exc, DomainError) and exc.key == "telework.unit_unknown":
                    errors[0]["field"] = "tw_emergency_unit"
        if errors:
            await db.rollback()
            context = await _admin_context(
                request, db, emergency_form=r.typed, errors=errors, failed="emergency"
            )
            return _admin_page(context, 422)
        return _back("emergency_started", "emergency")

    @post(
        "/admin/telework/emergencies/{emergency_id:int}/end",
        operation_id="teleworkEmergencyEnd",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def end_emergency(self, request: Request[Principal, Any, Any], db: DB, emergency_id: Id) -> Any:
        c = cfg(request)
        await policies.end_emergency(db, request.user, emergency_id, c.today(), c.now())
        return _back("emergency_ended", "emergency")


# ---------------------------------------------------------------- delegation page


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _squeezed(column: Any) -> Any:
    return func.replace(func.replace(column, " ", ""), "\u3000", "")


async def _candidates(
    db: AsyncSession, principal: Principal, q: str, keep: Iterable[int], locale: str
) -> tuple[list[dict[str, Any]], bool]:
    """Active people to choose a delegate from: search matches, else the people in my units."""
    query = select(User).where(col(User.active).is_(True), col(User.id) != principal.id)
    needle = re.sub(r"\s+", "", q)
    if needle:
        pattern = _like(needle)
        query = query.where(
            or_(
                _squeezed(col(User.name)).ilike(pattern, escape="\\"),
                _squeezed(col(User.kana)).ilike(pattern, escape="\\"),
                col(User.employee_number).ilike(pattern, escape="\\"),
            )
        )
    elif principal.scope_unit_ids:
        query = query.where(col(User.unit_id).in_(principal.scope_unit_ids))
    else:
        return [], False
    query = query.order_by(col(User.kana), col(User.employee_number)).limit(CANDIDATE_LIMIT + 1)
    people = list((await db.execute(query)).scalars())
    more = len(people) > CANDIDATE_LIMIT
    people = people[:CANDIDATE_LIMIT]
    missing = [i for i in keep if i not in {p.id for p in people}]
    if missing:  # the person chosen before a mistake stays choosable
        extra = select(User).where(col(User.id).in_(missing), col(User.active).is_(True))
        people += list((await db.execute(extra)).scalars())
    units = await _unit_labels(db, [p.unit_id for p in people], locale)
    return [
        {
            "id": p.id,
            "name": p.name,
            "kana": p.kana,
            "number": p.employee_number,
            "unit": units.get(p.unit_id or 0, ""),
        }
        for p in people
    ], more


async def _unit_labels(db: AsyncSession, ids: Iterable[int | None], locale: str) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await db.execute(
        select(OrgUnit.id, OrgUnit.name, OrgUnit.name_en).where(col(OrgUnit.id).in_(wanted))
    )
    return {uid: (en or ja) if locale == "en" else ja for uid, ja, en in rows.all()}


def _delegation_status(d: schemas.DelegationRead, today: date) -> str:
    if d.revoked:
        return "revoked"
    return _status(d.starts, d.ends, today)


async def _delegation_context(
    request: Request[Principal, Any, Any],
    db: AsyncSession,
    *,
    q: str = "",
    form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    done: str | None = None,
) -> dict[str, Any]:
    me = request.user
    today = cfg(request).today()
    locale = request_locale(request)
    mine = await approvals.my_delegations(db, me)
    received = [(d, _delegation_status(d, today)) for d in mine if d.to_user_id == me.id]
    given = [(d, _delegation_status(d, today)) for d in mine if d.from_user_id == me.id]
    is_head = bool(me.scope_unit_ids)
    scope_units: list[tuple[int, Any]] = []
    candidates: list[dict[str, Any]] = []
    more = False
    form = form or {"to_user_id": "", "starts": today.isoformat(), "ends": "", "unit_id": ""}
    if is_head:
        units = await org.list_units(db)
        mine_tree = [(depth, u) for depth, u in org.as_tree(units) if u.id in me.scope_unit_ids]
        top = min((depth for depth, _ in mine_tree), default=0)
        scope_units = [(depth - top, u) for depth, u in mine_tree]
        keep = [int(form["to_user_id"])] if str(form.get("to_user_id", "")).isdigit() else []
        candidates, more = await _candidates(db, me, q, keep, locale)
    return page_context(
        request,
        today=today,
        received=received,
        given=given,
        is_head=is_head,
        scope_units=scope_units,
        candidates=candidates,
        more=more,
        candidate_limit=CANDIDATE_LIMIT,
        q=q,
        dform=form,
        errors=errors or [],
        error_fields={e["field"] for e in errors or []},
        done=done if done in DELEGATION_DONE else None,
    )


class DelegationPages(Controller):
    """代理承認: see what was delegated to me; unit heads name and revoke delegates."""

    include_in_schema = False
    guards = [signed_in]

    @get("/telework/delegations", operation_id="teleworkDelegationsPage")
    async def delegations_page(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Annotated[str | None, QueryParameter(max_length=100)] = None,
        done: Done = None,
    ) -> Template:
        context = await _delegation_context(request, db, q=(q or "").strip(), done=done)
        return Template("scheduling/delegations.html", context=context)

    @post(
        "/telework/delegations",
        operation_id="teleworkDelegationSubmit",
        guards=[unit_heads],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def delegate(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        locale = request_locale(request)
        form = await request.form()
        r = FormReader(form, locale)
        to_user = r.ident("to_user_id", "tw_delegate", required=True)
        starts = r.day("starts", "tw_starts")
        ends = r.day("ends", "tw_ends")
        unit_id = r.ident("unit_id", "tw_scope")
        q = r.text("q", "tw_search", max_length=100)
        if starts is not None and ends is not None and ends < starts:
            r.fail("tw_ends", "telework.range_backwards")
        errors = r.errors
        if not errors and to_user is not None and starts is not None and ends is not None:
            try:
                data = msgspec.convert(
                    {"to_user_id": to_user, "starts": starts, "ends": ends, "unit_id": unit_id},
                    schemas.DelegationIn,
                )
                await approvals.delegate(db, request.user, data, cfg(request).today(), ip=client_ip(request))
            except (msgspec.ValidationError, DomainError) as exc:
                errors = _service_errors(locale, exc)
        if errors:
            await db.rollback()
            context = await _delegation_context(request, db, q=q, form=r.typed, errors=errors)
            return Template("scheduling/delegations.html", context=context, status_code=422)
        return Redirect("/telework/delegations?done=delegated#given", status_code=303)

    @post(
        "/telework/delegations/{delegation_id:int}/revoke",
        operation_id="teleworkDelegationRevoke",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def revoke(self, request: Request[Principal, Any, Any], db: DB, delegation_id: Id) -> Any:
        await approvals.revoke_delegation(db, request.user, delegation_id, cfg(request).now())
        return Redirect("/telework/delegations?done=revoked#given", status_code=303)


ROUTE_HANDLERS = [TeleworkAdminPages, DelegationPages]
