"""Pages: my equipment, inventory, items with history, loan wizard, IT queue, stocktakes, reports, labels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import segno
from litestar import Controller, MediaType, Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, MultipartBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from markupsafe import Markup
from sqlalchemy import or_, select
from sqlmodel import col

from app.deps import DB, SettingsDep
from app.errors import DomainError, describe, field_errors
from app.security import Principal, requires, signed_in
from app.web import NavItem, page_context, request_locale
from auth.controllers import client_ip
from auth.models import User
from devices import csvio, loans, reports, schemas, services
from devices.controllers import IT, MAX_BODY, READERS, REVEALERS, run_import
from devices.models import DEVICE_KINDS, DEVICE_STATUSES, LINE_STATUSES, SimCard

NAV = [
    NavItem("/devices/mine", "nav.devices_mine"),
    NavItem("/devices/inventory", "nav.devices_inventory", READERS),
    NavItem("/devices/loans", "nav.devices_loans", (*READERS, "unit_head")),
]
Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
PageNo = Annotated[int, QueryParameter(ge=1, le=100_000)]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Q = Annotated[str, QueryParameter(max_length=100)]
LOAN_PAGE_READERS = (*READERS, "unit_head")
PER_PAGE = 50


def pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def form_ids(form: Any, name: str) -> list[int]:
    values = form.getall(name, []) if hasattr(form, "getall") else []
    return [int(v) for v in values if str(v).isdigit() and 0 < int(v) < 2_147_483_647]


def opt_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError as exc:
        raise DomainError("devices.bad_date", status_code=422, field="expected_return") from exc


def qr_svg(data: str) -> Markup:
    """An inline SVG QR code (segno escapes nothing we feed it but a URL we built)."""
    svg = segno.make(data, error="m").svg_inline(scale=3, border=2, dark="#000")
    return Markup(svg)  # segno's own markup around a URL we built


def device_payload(form: Any) -> dict[str, Any]:
    """The device form's fields as DeviceIn input (msgspec then checks them)."""
    payload: dict[str, Any] = {
        k: str(form.get(k, "")).strip()
        for k in ("asset_tag", "kind", "serial", "imei", "maker", "model", "notes")
    }
    payload["imei"] = payload["imei"] or None
    for k in ("purchase_date", "warranty_end"):
        payload[k] = str(form.get(k, "")) or None
    cost = str(form.get("cost", "")).replace(",", "").strip()
    payload["cost"] = int(cost) if cost.isdigit() and len(cost) < 10 else (cost or None)
    return payload


class RequestForm(msgspec.Struct, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    needed_from: Annotated[str, msgspec.Meta(max_length=20)] = ""
    needed_until: Annotated[str, msgspec.Meta(max_length=20)] = ""


class AcceptForm(msgspec.Struct, kw_only=True):
    terms_version: Annotated[str, msgspec.Meta(max_length=20)] = ""
    agree: Annotated[str, msgspec.Meta(max_length=5)] = ""


class RevealForm(msgspec.Struct, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class StatusForm(msgspec.Struct, kw_only=True):
    status: Annotated[str, msgspec.Meta(max_length=20)] = ""
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class LostForm(msgspec.Struct, kw_only=True):
    kind: Annotated[str, msgspec.Meta(max_length=10)] = ""
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class AnswerForm(msgspec.Struct, kw_only=True):
    status: Annotated[str, msgspec.Meta(max_length=10)] = ""
    answer: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class NameForm(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=120)] = ""


class ScanForm(msgspec.Struct, kw_only=True):
    asset_tag: Annotated[str, msgspec.Meta(max_length=300)] = ""


@dataclass
class CsvForm:
    file: UploadFile
    dry_run: str = ""


class DevicePages(Controller):
    """HTML pages for devices; the rules live in services, these only translate forms and render."""

    include_in_schema = False

    # ------------------------------------------------------------ my equipment

    async def _mine(
        self, request: Request[Principal, Any, Any], db: DB, status: int = 200, **extra: Any
    ) -> Template:
        context = page_context(
            request,
            loans=await loans.my_loans(db, request.user),
            requests=await loans.list_requests(db, status=None, user_id=request.user.id),
            terms_version=loans.TERMS_VERSION,
            wanted=("laptop", "router", "smartphone", "tablet", "line"),
            periods=await loans.my_telework_periods(db, request.user),
            **extra,
        )
        context.setdefault("errors", [])
        return Template("devices/mine.html", context=context, status_code=status)

    @get("/devices/mine", operation_id="myEquipmentPage", guards=[signed_in])
    async def mine(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        done: Annotated[str, QueryParameter(max_length=20)] = "",
    ) -> Template:
        return await self._mine(request, db, done=done)

    @post(
        "/devices/mine/requests",
        operation_id="requestEquipmentSubmit",
        guards=[signed_in],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def request_submit(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        form = await request.form()
        kinds = [str(k) for k in (form.getall("kinds", []) if hasattr(form, "getall") else [])]
        payload: dict[str, Any] = {
            "kinds": kinds,
            "reason": str(form.get("reason", "")).strip(),
            "needed_from": str(form.get("needed_from", "")) or None,
            "needed_until": str(form.get("needed_until", "")) or None,
        }
        telework = str(form.get("telework_request_id", ""))
        if telework.isdigit() and 0 < int(telework) < 2_147_483_647:
            payload["telework_request_id"] = int(telework)
        try:
            await loans.create_request(
                db, request.user, msgspec.convert(payload, schemas.RequestIn), client_ip(request)
            )
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            errors = field_errors(request_locale(request), exc)
            return await self._mine(request, db, status=422, errors=errors, typed=payload)
        return Redirect("/devices/mine?done=requested", status_code=303)

    @post(
        "/devices/requests/{request_id:int}/cancel",
        operation_id="cancelRequestSubmit",
        guards=[signed_in],
        status_code=303,
    )
    async def cancel_request(self, request: Request[Principal, Any, Any], db: DB, request_id: Id) -> Redirect:
        await loans.cancel_request(db, request.user, request_id, client_ip(request))
        return Redirect("/devices/mine?done=cancelled", status_code=303)

    @post(
        "/devices/loans/{loan_id:int}/accept",
        operation_id="acceptLoanSubmit",
        guards=[signed_in],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def accept_submit(
        self, request: Request[Principal, Any, Any], db: DB, loan_id: Id, data: Annotated[AcceptForm, Form]
    ) -> Any:
        try:
            await loans.accept(
                db,
                request.user,
                loan_id,
                schemas.AcceptIn(terms_version=data.terms_version, agree=data.agree == "on"),
                client_ip(request),
            )
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            await db.rollback()
            return await self._mine(
                request, db, status=exc.status_code, errors=field_errors(request_locale(request), exc)
            )
        return Redirect("/devices/mine?done=accepted", status_code=303)

    # ------------------------------------------------------------ inventory

    @get("/devices/inventory", operation_id="inventoryPage", guards=[requires(*READERS)])
    async def inventory(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Q = "",
        kind: Annotated[str, QueryParameter(max_length=12)] = "",
        status: Annotated[str, QueryParameter(max_length=12)] = "",
        page: PageNo = 1,
    ) -> Template:
        kind_f = kind if kind in DEVICE_KINDS else None
        status_f = status if status in DEVICE_STATUSES else None
        result = await services.list_devices(
            db, q=q, kind=kind_f, status=status_f, page=page, per_page=PER_PAGE
        )
        query = urlencode(
            {k: v for k, v in (("q", q), ("kind", kind_f or ""), ("status", status_f or "")) if v}
        )
        return Template(
            "devices/inventory.html",
            context=page_context(
                request,
                result=result,
                q=q,
                kind=kind_f or "",
                status=status_f or "",
                kinds=DEVICE_KINDS,
                statuses=DEVICE_STATUSES,
                page=result.page,
                pages=pages(result.total, PER_PAGE),
                query=query,
                errors=[],
                typed={},
            ),
        )

    @post(
        "/devices/inventory",
        operation_id="createDeviceSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def create_device(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        form = await request.form()
        payload = device_payload(form)
        try:
            device = await services.create_device(
                db, request.user, msgspec.convert(payload, schemas.DeviceIn), client_ip(request)
            )
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            result = await services.list_devices(db, per_page=PER_PAGE)
            return Template(
                "devices/inventory.html",
                context=page_context(
                    request,
                    result=result,
                    q="",
                    kind="",
                    status="",
                    kinds=DEVICE_KINDS,
                    statuses=DEVICE_STATUSES,
                    page=1,
                    pages=pages(result.total, PER_PAGE),
                    query="",
                    errors=field_errors(request_locale(request), exc),
                    typed=payload,
                ),
                status_code=422,
            )
        return Redirect(f"/devices/items/{device.id}", status_code=303)

    async def _item(
        self, request: Request[Principal, Any, Any], db: DB, device_id: int, status: int = 200, **extra: Any
    ) -> Template:
        device = await services.get_device(db, device_id)
        holders = await services.open_holders(db, device_ids=[device_id])
        sims = list((await db.execute(select(SimCard).where(col(SimCard.device_id) == device_id))).scalars())
        context = page_context(
            request,
            device=services.device_read(device, holders.get(device_id)),
            history=await services.history(db, "device", device_id),
            incidents=await services.list_incidents(db, device_id=device_id),
            sims=await services.sim_reads(db, sims),
            **extra,
        )
        context.setdefault("errors", [])
        return Template("devices/item.html", context=context, status_code=status)

    @get("/devices/items/{device_id:int}", operation_id="devicePage", guards=[requires(*READERS)])
    async def item(self, request: Request[Principal, Any, Any], db: DB, device_id: Id) -> Template:
        return await self._item(request, db, device_id)

    @post(
        "/devices/items/{device_id:int}/edit",
        operation_id="editDeviceSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def item_edit(self, request: Request[Principal, Any, Any], db: DB, device_id: Id) -> Any:
        form = await request.form()
        payload = device_payload(form)
        try:
            data = msgspec.convert(payload, schemas.DeviceIn)
            await services.update_device(db, request.user, device_id, data, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 404:
                raise
            await db.rollback()
            errors = field_errors(request_locale(request), exc)
            return await self._item(request, db, device_id, status=422, errors=errors, typed=payload)
        return Redirect(f"/devices/items/{device_id}", status_code=303)

    @post(
        "/devices/items/{device_id:int}/status",
        operation_id="deviceStatusSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def item_status(
        self, request: Request[Principal, Any, Any], db: DB, device_id: Id, data: Annotated[StatusForm, Form]
    ) -> Any:
        try:
            change = msgspec.convert({"status": data.status, "note": data.note}, schemas.StatusIn)
            await services.set_device_status(db, request.user, device_id, change, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 404:
                raise
            await db.rollback()
            return await self._item(
                request, db, device_id, status=422, errors=field_errors(request_locale(request), exc)
            )
        return Redirect(f"/devices/items/{device_id}", status_code=303)

    @post(
        "/devices/items/{device_id:int}/lost",
        operation_id="reportLostSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def item_lost(
        self, request: Request[Principal, Any, Any], db: DB, device_id: Id, data: Annotated[LostForm, Form]
    ) -> Any:
        try:
            change = msgspec.convert({"kind": data.kind, "description": data.description}, schemas.IncidentIn)
            await services.report_lost(db, request.user, device_id, change, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 404:
                raise
            await db.rollback()
            return await self._item(
                request, db, device_id, status=422, errors=field_errors(request_locale(request), exc)
            )
        return Redirect(f"/devices/items/{device_id}", status_code=303)

    @post(
        "/devices/catalog/{what:str}",
        operation_id="catalogSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def catalog_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        what: Annotated[str, PathParameter(max_length=10)],
    ) -> Any:
        """A carrier (name, MCC, MNC) or a plan (name, carrier, monthly fee, data GB) from the lines page."""
        form = await request.form()
        try:
            if what == "carriers":
                carrier = {k: str(form.get(k, "")).strip() for k in ("name", "mcc", "mnc")}
                await services.create_carrier(
                    db, request.user, msgspec.convert(carrier, schemas.CarrierIn), client_ip(request)
                )
            elif what == "plans":
                plan: dict[str, Any] = {"name": str(form.get("name", "")).strip()}
                for key in ("carrier_id", "monthly_fee", "data_gb"):
                    raw = str(form.get(key, "")).replace(",", "").strip()
                    plan[key] = int(raw) if raw.isdigit() and int(raw) < 2_147_483_647 else (raw or None)
                plan["monthly_fee"] = plan["monthly_fee"] or 0
                await services.create_plan(
                    db, request.user, msgspec.convert(plan, schemas.PlanIn), client_ip(request)
                )
            else:
                raise DomainError("devices.bad_step", status_code=404)
        except (msgspec.ValidationError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 404:
                raise
            await db.rollback()
            return await self._lines(request, db, code=422, errors=field_errors(request_locale(request), exc))
        return Redirect("/devices/lines", status_code=303)

    @post(
        "/devices/lines/{line_id:int}/sims",
        operation_id="addSimSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def add_sim(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, line_id: Id
    ) -> Any:
        form = await request.form()
        await services.get_line(db, line_id)
        try:
            tag = str(form.get("asset_tag", "")).strip()
            device = await services.device_by_tag(db, tag) if tag else None
            if tag and device is None:
                raise DomainError(
                    "devices.csv_unknown_device", status_code=422, field="asset_tag", value=tag[:32]
                )
            payload = {
                "iccid": str(form.get("iccid", "")),
                "form_factor": str(form.get("form_factor", "nano")),
                "line_id": line_id,
                "device_id": device.id if device else None,
                "pin": str(form.get("pin", "")) or None,
                "puk": str(form.get("puk", "")) or None,
            }
            box = services.secret_box(settings.secret_key)
            await services.create_sim(
                db, request.user, box, msgspec.convert(payload, schemas.SimIn), client_ip(request)
            )
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            return await self._line(
                request, db, line_id, status=422, errors=field_errors(request_locale(request), exc)
            )
        return Redirect(f"/devices/lines/{line_id}", status_code=303)

    async def _lines(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        *,
        q: str = "",
        status: str | None = None,
        page: int = 1,
        code: int = 200,
        **extra: Any,
    ) -> Template:
        result = await services.list_lines(db, q=q, status=status, page=page, per_page=PER_PAGE)
        query = urlencode({k: v for k, v in (("q", q), ("status", status or "")) if v})
        context = page_context(
            request,
            result=result,
            q=q,
            status=status or "",
            statuses=LINE_STATUSES,
            page=result.page,
            pages=pages(result.total, PER_PAGE),
            query=query,
            today=services.today(),
            carriers=await services.list_carriers(db),
            plans=await services.list_plans(db),
            **extra,
        )
        context.setdefault("errors", [])
        context.setdefault("typed", {})
        return Template("devices/lines.html", context=context, status_code=code)

    @get("/devices/lines", operation_id="linesPage", guards=[requires(*READERS)])
    async def lines(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Q = "",
        status: Annotated[str, QueryParameter(max_length=12)] = "",
        page: PageNo = 1,
    ) -> Template:
        return await self._lines(
            request, db, q=q, status=status if status in LINE_STATUSES else None, page=page
        )

    @post(
        "/devices/lines",
        operation_id="createLineSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def create_line(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        form = await request.form()
        payload: dict[str, Any] = {
            "number": str(form.get("number", "")).strip(),
            "notes": str(form.get("notes", "")),
        }
        for key in ("carrier_id", "plan_id"):
            raw = str(form.get(key, ""))
            payload[key] = int(raw) if raw.isdigit() and 0 < int(raw) < 2_147_483_647 else None
        for key in ("contract_start", "min_term_end", "contract_end"):
            payload[key] = str(form.get(key, "")) or None
        days = str(form.get("notice_days", "")).strip()
        payload["notice_days"] = int(days) if days.isdigit() else (days or 30)
        try:
            line = await services.create_line(
                db, request.user, msgspec.convert(payload, schemas.LineIn), client_ip(request)
            )
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            errors = field_errors(request_locale(request), exc)
            return await self._lines(request, db, code=422, errors=errors, typed=payload)
        return Redirect(f"/devices/lines/{line.id}", status_code=303)

    async def _line(
        self, request: Request[Principal, Any, Any], db: DB, line_id: int, status: int = 200, **extra: Any
    ) -> Template:
        line = (await services.line_reads(db, [await services.get_line(db, line_id)]))[0]
        sims = list((await db.execute(select(SimCard).where(col(SimCard.line_id) == line_id))).scalars())
        context = page_context(
            request,
            line=line,
            history=await services.history(db, "line", line_id),
            sims=await services.sim_reads(db, sims),
            today=services.today(),
            forms=("nano", "micro", "standard", "esim"),
            **extra,
        )
        context.setdefault("errors", [])
        return Template("devices/line.html", context=context, status_code=status)

    @get("/devices/lines/{line_id:int}", operation_id="linePage", guards=[requires(*READERS)])
    async def line(self, request: Request[Principal, Any, Any], db: DB, line_id: Id) -> Template:
        return await self._line(request, db, line_id)

    async def _sim(
        self, request: Request[Principal, Any, Any], db: DB, sim_id: int, status: int = 200, **extra: Any
    ) -> Template:
        sim = (await services.sim_reads(db, [await services.get_sim(db, sim_id)]))[0]
        context = page_context(
            request, sim=sim, reveals=await services.reveal_log(db, sim_id), revealed=None, **extra
        )
        context.setdefault("errors", [])
        return Template(
            "devices/sim.html", context=context, status_code=status, headers={"Cache-Control": "no-store"}
        )

    @get("/devices/sims/{sim_id:int}", operation_id="simPage", guards=[requires(*READERS)])
    async def sim(self, request: Request[Principal, Any, Any], db: DB, sim_id: Id) -> Template:
        return await self._sim(request, db, sim_id)

    @post(
        "/devices/sims/{sim_id:int}/reveal",
        operation_id="revealSubmit",
        guards=[requires(*REVEALERS)],
        status_code=200,
    )
    async def reveal(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        sim_id: Id,
        data: Annotated[RevealForm, Form],
    ) -> Template:
        box = services.secret_box(settings.secret_key)
        try:
            shown = await services.reveal(db, request.user, box, sim_id, data.reason, client_ip(request))
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            await db.rollback()
            return await self._sim(
                request, db, sim_id, status=422, errors=field_errors(request_locale(request), exc)
            )
        page = await self._sim(request, db, sim_id)
        page.context["revealed"] = shown
        return page

    # ------------------------------------------------------------ loans

    @get("/devices/loans", operation_id="loansPage", guards=[requires(*LOAN_PAGE_READERS)])
    async def loans_page(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Q = "",
        status: Annotated[str, QueryParameter(max_length=20)] = "open",
        overdue: FromQuery[bool] = False,
        page: PageNo = 1,
    ) -> Template:
        status_f = status if status in ("open", "awaiting_acceptance", "active", "returned") else None
        result = await loans.list_loans(
            db, request.user, status=status_f, overdue=overdue, q=q, page=page, per_page=PER_PAGE
        )
        query = urlencode(
            {
                k: v
                for k, v in (("q", q), ("status", status_f or "all"), ("overdue", "true" if overdue else ""))
                if v
            }
        )
        return Template(
            "devices/loans.html",
            context=page_context(
                request,
                result=result,
                q=q,
                status=status_f or "all",
                overdue=overdue,
                page=result.page,
                pages=pages(result.total, PER_PAGE),
                query=query,
            ),
        )

    async def _wizard(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        status: int = 200,
        holder_q: str = "",
        **extra: Any,
    ) -> Template:
        holders: list[User] = []
        if holder_q.strip():
            needle = holder_q.strip()
            holders = list(
                (
                    await db.execute(
                        select(User)
                        .where(
                            col(User.active),
                            or_(
                                col(User.name).contains(needle),
                                col(User.kana).contains(needle),
                                col(User.employee_number) == needle,
                            ),
                        )
                        .order_by(col(User.employee_number))
                        .limit(20)
                    )
                ).scalars()
            )
        item_q = str(extra.pop("item_q", ""))
        devices = await services.list_devices(db, status="in_stock", q=item_q, per_page=100)
        lines = await services.list_lines(db, status="in_stock", per_page=100)
        open_requests = await loans.list_requests(db, status="open")
        context = page_context(
            request,
            holder_q=holder_q,
            holders=holders,
            devices=devices.items,
            lines=lines.items,
            requests=open_requests,
            item_q=item_q,
            today=services.today(),
            **extra,
        )
        context.setdefault("errors", [])
        context.setdefault("typed", {})
        return Template("devices/wizard.html", context=context, status_code=status)

    @get("/devices/loans/new", operation_id="loanWizardPage", guards=[requires(*IT)])
    async def wizard(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        holder_q: Q = "",
        holder_id: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
        request_id: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
        item_q: Q = "",
    ) -> Template:
        holder = await db.get(User, holder_id) if holder_id else None
        return await self._wizard(
            request, db, holder_q=holder_q, holder=holder, request_id=request_id, item_q=item_q
        )

    @post(
        "/devices/loans/new",
        operation_id="checkoutSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def checkout(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        form = await request.form()
        holder_raw = str(form.get("holder_id", ""))
        request_raw = str(form.get("request_id", ""))
        typed = {
            "device_ids": form_ids(form, "device_ids"),
            "line_ids": form_ids(form, "line_ids"),
            "expected_return": str(form.get("expected_return", "")),
            "notes": str(form.get("notes", "")),
        }
        try:
            data = schemas.LoanIn(
                holder_id=int(holder_raw) if holder_raw.isdigit() else 0,
                device_ids=typed["device_ids"],  # type: ignore[arg-type]
                line_ids=typed["line_ids"],  # type: ignore[arg-type]
                expected_return=opt_date(typed["expected_return"]),
                request_id=int(request_raw) if request_raw.isdigit() else None,
                notes=str(typed["notes"])[:1000],
            )
            if data.holder_id < 1:
                raise DomainError("devices.holder_not_found", status_code=422, field="holder_id")
            loan = await loans.checkout(db, request.user, data, client_ip(request))
        except DomainError as exc:
            await db.rollback()
            holder = (
                await db.get(User, int(holder_raw))
                if holder_raw.isdigit() and int(holder_raw) < 2_147_483_647
                else None
            )
            return await self._wizard(
                request,
                db,
                status=exc.status_code if exc.status_code in (409, 422) else 422,
                errors=field_errors(request_locale(request), exc),
                holder=holder,
                typed=typed,
                request_id=int(request_raw) if request_raw.isdigit() else None,
            )
        return Redirect(f"/devices/loans/{loan.id}", status_code=303)

    async def _loan(
        self, request: Request[Principal, Any, Any], db: DB, loan_id: int, status: int = 200, **extra: Any
    ) -> Template:
        loan = await loans.loan_for(db, request.user, loan_id)
        context = page_context(
            request,
            loan=(await loans.loan_reads(db, [loan]))[0],
            history=[h for h in await services.history_of_loan(db, loan_id)],
            terms_version=loans.TERMS_VERSION,
            conditions=("good", "worn", "damaged", "missing_parts"),
            **extra,
        )
        context.setdefault("errors", [])
        return Template("devices/loan.html", context=context, status_code=status)

    @get("/devices/loans/{loan_id:int}", operation_id="loanPage", guards=[signed_in])
    async def loan(self, request: Request[Principal, Any, Any], db: DB, loan_id: Id) -> Template:
        return await self._loan(request, db, loan_id)

    @post(
        "/devices/loans/{loan_id:int}/return",
        operation_id="returnSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def return_submit(self, request: Request[Principal, Any, Any], db: DB, loan_id: Id) -> Any:
        form = await request.form()
        items = []
        for key in form:
            if key.startswith("condition-") and key[10:].isdigit():
                item_id = int(key[10:])
                items.append(
                    {
                        "item_id": item_id,
                        "condition": str(form.get(key)),
                        "note": str(form.get(f"note-{item_id}", ""))[:500],
                    }
                )
        try:
            data = msgspec.convert(
                {"items": items, "notes": str(form.get("notes", ""))[:1000]}, schemas.ReturnIn
            )
            await loans.return_loan(db, request.user, loan_id, data, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 404:
                raise
            await db.rollback()
            status = exc.status_code if isinstance(exc, DomainError) else 422
            return await self._loan(
                request, db, loan_id, status=status, errors=field_errors(request_locale(request), exc)
            )
        return Redirect(f"/devices/loans/{loan_id}", status_code=303)

    # ------------------------------------------------------------ IT queue and incidents

    @get("/devices/requests", operation_id="requestQueuePage", guards=[requires(*IT)])
    async def queue(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        return Template(
            "devices/requests.html",
            context=page_context(request, requests=await loans.list_requests(db, status="open"), errors=[]),
        )

    @post(
        "/devices/requests/{request_id:int}/answer",
        operation_id="answerRequestSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def answer(
        self, request: Request[Principal, Any, Any], db: DB, request_id: Id, data: Annotated[AnswerForm, Form]
    ) -> Any:
        try:
            change = msgspec.convert({"status": data.status, "answer": data.answer}, schemas.RequestAnswerIn)
            await loans.answer_request(db, request.user, request_id, change, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 404:
                raise
            await db.rollback()
            return Template(
                "devices/requests.html",
                context=page_context(
                    request,
                    requests=await loans.list_requests(db, status="open"),
                    errors=field_errors(request_locale(request), exc),
                ),
                status_code=422,
            )
        return Redirect("/devices/requests", status_code=303)

    @get("/devices/incidents", operation_id="incidentsPage", guards=[requires(*READERS)])
    async def incidents(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        return Template(
            "devices/incidents.html",
            context=page_context(request, incidents=await services.list_incidents(db)),
        )

    @post(
        "/devices/incidents/{incident_id:int}/{step:str}",
        operation_id="incidentStepSubmit",
        guards=[requires(*IT)],
        status_code=303,
    )
    async def incident_step(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        incident_id: Id,
        step: Annotated[str, PathParameter(max_length=20)],
    ) -> Redirect:
        await services.incident_step(
            db, request.user, incident_id, step.replace("-", "_"), client_ip(request)
        )
        return Redirect("/devices/incidents", status_code=303)

    # ------------------------------------------------------------ stocktakes, reports, CSV, labels

    @get("/devices/stocktakes", operation_id="stocktakesPage", guards=[requires(*READERS)])
    async def stocktakes(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        return Template(
            "devices/stocktakes.html",
            context=page_context(request, stocktakes=await reports.list_stocktakes(db), errors=[]),
        )

    @post(
        "/devices/stocktakes",
        operation_id="openStocktakeSubmit",
        guards=[requires(*IT)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def open_stocktake(
        self, request: Request[Principal, Any, Any], db: DB, data: Annotated[NameForm, Form]
    ) -> Any:
        try:
            take = await reports.open_stocktake(
                db,
                request.user,
                msgspec.convert({"name": data.name.strip()}, schemas.StocktakeIn),
                client_ip(request),
            )
        except msgspec.ValidationError as exc:
            return Template(
                "devices/stocktakes.html",
                context=page_context(
                    request,
                    stocktakes=await reports.list_stocktakes(db),
                    errors=field_errors(request_locale(request), exc),
                ),
                status_code=422,
            )
        return Redirect(f"/devices/stocktakes/{take.id}", status_code=303)

    async def _stocktake(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        stocktake_id: int,
        status: int = 200,
        **extra: Any,
    ) -> Template:
        take = await reports.get_stocktake(db, stocktake_id)
        context = page_context(request, take=await reports.stocktake_read(db, take), **extra)
        context.setdefault("errors", [])
        context.setdefault("last", "")
        return Template("devices/stocktake.html", context=context, status_code=status)

    @get("/devices/stocktakes/{stocktake_id:int}", operation_id="stocktakePage", guards=[requires(*READERS)])
    async def stocktake(self, request: Request[Principal, Any, Any], db: DB, stocktake_id: Id) -> Template:
        return await self._stocktake(request, db, stocktake_id)

    @post(
        "/devices/stocktakes/{stocktake_id:int}/scans",
        operation_id="scanSubmit",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def scan(
        self, request: Request[Principal, Any, Any], db: DB, stocktake_id: Id, data: Annotated[ScanForm, Form]
    ) -> Template:
        try:
            entry = await reports.scan(db, request.user, stocktake_id, data.asset_tag, client_ip(request))
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            await db.rollback()
            return await self._stocktake(
                request,
                db,
                stocktake_id,
                status=exc.status_code,
                errors=field_errors(request_locale(request), exc),
            )
        return await self._stocktake(request, db, stocktake_id, last=entry.asset_tag)

    @post(
        "/devices/stocktakes/{stocktake_id:int}/close",
        operation_id="closeStocktakeSubmit",
        guards=[requires(*IT)],
        status_code=303,
    )
    async def close_stocktake(
        self, request: Request[Principal, Any, Any], db: DB, stocktake_id: Id
    ) -> Redirect:
        await reports.close_stocktake(db, request.user, stocktake_id, client_ip(request))
        return Redirect(f"/devices/stocktakes/{stocktake_id}", status_code=303)

    @get("/devices/reports", operation_id="reportsPage", guards=[requires(*READERS)])
    async def reports_page(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        within_days: Annotated[int, QueryParameter(ge=1, le=730)] = 60,
        idle_months: Annotated[int, QueryParameter(ge=1, le=24)] = 3,
    ) -> Template:
        data = await reports.report(
            db, within_days=within_days, idle_months=idle_months, locale=request_locale(request)
        )
        return Template("devices/reports.html", context=page_context(request, r=data))

    @get("/devices/import", operation_id="devicesImportPage", guards=[requires(*IT)])
    async def import_page(self, request: Request[Principal, Any, Any]) -> Template:
        return Template(
            "devices/import.html", context=page_context(request, kinds=csvio.IMPORTERS, errors=[], kind="")
        )

    @post(
        "/devices/import/{kind:str}",
        operation_id="devicesImportSubmit",
        guards=[requires(*IT)],
        status_code=200,
        request_max_body_size=MAX_BODY,
    )
    async def import_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        kind: Annotated[str, PathParameter(max_length=10)],
        data: MultipartBody[CsvForm],
    ) -> Template:
        context: dict[str, Any] = {"kinds": csvio.IMPORTERS, "kind": kind}
        status = 200
        try:
            body = await data.file.read(5 * 1024 * 1024 + 1)
            report = await run_import(request, db, settings.secret_key, kind, body, bool(data.dry_run))
            context.update(report=report, errors=report.errors)
        except DomainError as exc:
            await db.rollback()
            status, _title, detail, errors = describe(request, exc)
            context.update(error=detail, errors=errors)
        context["shown"] = (context.get("errors") or [])[:500]
        return Template("devices/import.html", context=page_context(request, **context), status_code=status)

    @get("/devices/labels", operation_id="labelsPage", guards=[requires(*READERS)])
    async def labels(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        ids: Annotated[str, QueryParameter(max_length=2000)] = "",
        q: Q = "",
        kind: Annotated[str, QueryParameter(max_length=12)] = "",
        status: Annotated[str, QueryParameter(max_length=12)] = "",
    ) -> Template:
        wanted = [int(x) for x in ids.split(",") if x.strip().isdigit() and 0 < int(x) < 2_147_483_647][:200]
        if wanted:
            items = [services.device_read(await services.get_device(db, i)) for i in dict.fromkeys(wanted)]
        else:
            items = (
                await services.list_devices(
                    db,
                    q=q,
                    kind=kind if kind in DEVICE_KINDS else None,
                    status=status if status in DEVICE_STATUSES else None,
                    per_page=100,
                )
            ).items
        base = settings.base_url.rstrip("/")
        labels = [(d, qr_svg(f"{base}/devices/tag/{d.asset_tag}")) for d in items]
        return Template("devices/labels.html", context=page_context(request, labels=labels))

    @get(
        "/devices/tag/{tag:str}",
        operation_id="deviceByTag",
        guards=[requires(*READERS)],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def by_tag(self, db: DB, tag: Annotated[str, PathParameter(max_length=40)]) -> Redirect:
        """Where a label's QR code points: the item page."""
        device = await services.device_by_tag(db, tag)
        if device is None:
            raise DomainError("devices.device_not_found", status_code=404)
        return Redirect(f"/devices/items/{device.id}", status_code=303)
