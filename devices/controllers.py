"""JSON API for devices, lines, SIMs, loans, requests, incidents, stocktakes, reports and CSV files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, JSONBody, MultipartBody, PathParameter, QueryParameter

from app.deps import DB, SettingsDep
from app.errors import DomainError
from app.i18n import translate
from app.security import Principal, requires, signed_in
from app.web import request_locale
from auth.controllers import client_ip
from auth.csv_controllers import multipart_only
from auth.org_csv import ImportReport
from devices import csvio, loans, reports, schemas, services

Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
Page = Annotated[int, QueryParameter(ge=1, le=100_000)]
PerPage = Annotated[int, QueryParameter(ge=1, le=100)]
Days = Annotated[int, QueryParameter(ge=1, le=730)]
Months = Annotated[int, QueryParameter(ge=1, le=24)]
IT = ("it_admin", "sysadmin")
READERS = ("it_admin", "sysadmin", "auditor")
REVEALERS = ("it_admin",)
LOG_READERS = ("it_admin", "auditor", "sysadmin")
MAX_BODY = 5 * 1024 * 1024 + 64 * 1024


@dataclass
class CsvUpload:
    file: UploadFile


def csv_response(body: bytes, stem: str) -> Response[bytes]:
    return Response(
        body,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{stem}-{date.today():%Y%m%d}.csv"',
            "Cache-Control": "no-store",
        },
    )


async def run_import(
    request: Request[Principal, Any, Any], db: DB, secret_key: str, kind: str, data: bytes, dry_run: bool
) -> ImportReport:
    """Check, and unless a dry run import, one file; with row errors nothing is written (422)."""
    if kind not in csvio.IMPORTERS:
        raise DomainError("devices.csv_unknown_kind", status_code=404)
    ip = client_ip(request)
    if kind == "devices":
        report = await csvio.import_devices(db, request.user, data, dry_run=dry_run, ip=ip)
    elif kind == "lines":
        report = await csvio.import_lines(db, request.user, data, dry_run=dry_run, ip=ip)
    elif kind == "sims":
        report = await csvio.import_sims(db, request.user, secret_key, data, dry_run=dry_run, ip=ip)
    else:
        report = await csvio.import_usage(db, request.user, data, dry_run=dry_run, ip=ip)
    if report.errors and not dry_run:
        errors = [msgspec.structs.asdict(e) for e in report.errors]
        raise DomainError("csv.has_errors", status_code=422, errors=errors, n=len(errors))
    locale = request_locale(request)
    return csvio.localized(report, lambda key, **p: translate(locale, key, **p))


class DevicesApi(Controller):
    """Inventory for IT (auditors read); loans for holders, IT and unit heads; requests from anyone."""

    path = "/api/devices"
    tags = ["devices"]

    # ------------------------------------------------------------ devices

    @get("/items", operation_id="listDevices", guards=[requires(*READERS)])
    async def list_devices(
        self,
        db: DB,
        q: Annotated[str, QueryParameter(max_length=100)] = "",
        kind: Annotated[schemas.Kind | None, QueryParameter()] = None,
        status: Annotated[schemas.DeviceStatus | None, QueryParameter()] = None,
        page: Page = 1,
        per_page: PerPage = 50,
    ) -> schemas.DeviceList:
        """Search by tag, serial, IMEI, maker or model; filter by kind and status."""
        return await services.list_devices(db, q=q, kind=kind, status=status, page=page, per_page=per_page)

    @post("/items", operation_id="createDevice", guards=[requires(*IT)], status_code=201)
    async def create_device(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.DeviceIn]
    ) -> schemas.DeviceRead:
        """Register a device (IMEI checked)."""
        return services.device_read(await services.create_device(db, request.user, data, client_ip(request)))

    @get("/items/{device_id:int}", operation_id="getDevice", guards=[requires(*READERS)])
    async def get_device(self, db: DB, device_id: Id) -> schemas.DeviceRead:
        """One device and who holds it."""
        device = await services.get_device(db, device_id)
        holders = await services.open_holders(db, device_ids=[device_id])
        return services.device_read(device, holders.get(device_id))

    @put("/items/{device_id:int}", operation_id="updateDevice", guards=[requires(*IT)])
    async def update_device(
        self, request: Request[Principal, Any, Any], db: DB, device_id: Id, data: JSONBody[schemas.DeviceIn]
    ) -> schemas.DeviceRead:
        """Correct a device's details."""
        return services.device_read(
            await services.update_device(db, request.user, device_id, data, client_ip(request))
        )

    @post(
        "/items/{device_id:int}/status",
        operation_id="setDeviceStatus",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def set_status(
        self, request: Request[Principal, Any, Any], db: DB, device_id: Id, data: JSONBody[schemas.StatusIn]
    ) -> schemas.DeviceRead:
        """In stock, in repair or retired (loans and incidents set the other statuses)."""
        return services.device_read(
            await services.set_device_status(db, request.user, device_id, data, client_ip(request))
        )

    @get("/items/{device_id:int}/history", operation_id="deviceHistory", guards=[requires(*READERS)])
    async def device_history(self, db: DB, device_id: Id) -> list[schemas.HistoryEntry]:
        """Every audited change and loan step of the device."""
        await services.get_device(db, device_id)
        return await services.history(db, "device", device_id)

    @post("/items/{device_id:int}/lost", operation_id="reportLost", guards=[requires(*IT)], status_code=201)
    async def report_lost(
        self, request: Request[Principal, Any, Any], db: DB, device_id: Id, data: JSONBody[schemas.IncidentIn]
    ) -> schemas.IncidentRead:
        """Mark lost or stolen, request the line's suspension, open an incident: one action."""
        incident = await services.report_lost(db, request.user, device_id, data, client_ip(request))
        return (await services.incident_reads(db, [incident]))[0]

    @get("/items.csv", operation_id="exportDevicesCsv", guards=[requires(*READERS)], media_type="text/csv")
    async def export_devices(self, db: DB) -> Response[bytes]:
        """Every device, for Excel (UTF-8 with BOM)."""
        return csv_response(await csvio.export_devices(db), "devices")

    # ------------------------------------------------------------ carriers, plans, lines, SIMs

    @get("/carriers", operation_id="listCarriers", guards=[requires(*READERS)])
    async def list_carriers(self, db: DB) -> list[schemas.CarrierRead]:
        """Carriers by name."""
        return await services.list_carriers(db)

    @post("/carriers", operation_id="createCarrier", guards=[requires(*IT)], status_code=201)
    async def create_carrier(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.CarrierIn]
    ) -> schemas.CarrierRead:
        """A carrier, unique by MCC/MNC."""
        c = await services.create_carrier(db, request.user, data, client_ip(request))
        return schemas.CarrierRead(id=c.id or 0, name=c.name, mcc=c.mcc, mnc=c.mnc)

    @get("/plans", operation_id="listPlans", guards=[requires(*READERS)])
    async def list_plans(self, db: DB) -> list[schemas.PlanRead]:
        """Plans with their monthly fee."""
        return await services.list_plans(db)

    @post("/plans", operation_id="createPlan", guards=[requires(*IT)], status_code=201)
    async def create_plan(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.PlanIn]
    ) -> schemas.PlanRead:
        """A plan: monthly fee and data allowance."""
        return services.plan_read(await services.create_plan(db, request.user, data, client_ip(request)))

    @get("/lines", operation_id="listLines", guards=[requires(*READERS)])
    async def list_lines(
        self,
        db: DB,
        q: Annotated[str, QueryParameter(max_length=40)] = "",
        status: Annotated[schemas.LineStatus | None, QueryParameter()] = None,
        page: Page = 1,
        per_page: PerPage = 50,
    ) -> schemas.LineList:
        """Search by number (090-… or +81…)."""
        return await services.list_lines(db, q=q, status=status, page=page, per_page=per_page)

    @post("/lines", operation_id="createLine", guards=[requires(*IT)], status_code=201)
    async def create_line(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.LineIn]
    ) -> schemas.LineRead:
        """A line; the number is stored in E.164."""
        line = await services.create_line(db, request.user, data, client_ip(request))
        return (await services.line_reads(db, [line]))[0]

    @get("/lines/{line_id:int}", operation_id="getLine", guards=[requires(*READERS)])
    async def get_line(self, db: DB, line_id: Id) -> schemas.LineRead:
        """One line with its contract deadlines and holder."""
        return (await services.line_reads(db, [await services.get_line(db, line_id)]))[0]

    @put("/lines/{line_id:int}", operation_id="updateLine", guards=[requires(*IT)])
    async def update_line(
        self, request: Request[Principal, Any, Any], db: DB, line_id: Id, data: JSONBody[schemas.LineIn]
    ) -> schemas.LineRead:
        """Correct a line's number, plan or contract dates."""
        line = await services.update_line(db, request.user, line_id, data, client_ip(request))
        return (await services.line_reads(db, [line]))[0]

    @get("/lines/{line_id:int}/history", operation_id="lineHistory", guards=[requires(*READERS)])
    async def line_history(self, db: DB, line_id: Id) -> list[schemas.HistoryEntry]:
        """Every audited change and loan step of the line."""
        await services.get_line(db, line_id)
        return await services.history(db, "line", line_id)

    @get("/lines.csv", operation_id="exportLinesCsv", guards=[requires(*READERS)], media_type="text/csv")
    async def export_lines(self, db: DB) -> Response[bytes]:
        """Every line, for Excel."""
        return csv_response(await csvio.export_lines(db), "lines")

    @get("/sims", operation_id="listSims", guards=[requires(*READERS)])
    async def list_sims(
        self,
        db: DB,
        q: Annotated[str, QueryParameter(max_length=40)] = "",
        page: Page = 1,
        per_page: PerPage = 50,
    ) -> schemas.SimList:
        """SIM cards (never their PIN or PUK)."""
        return await services.list_sims(db, q=q, page=page, per_page=per_page)

    @post("/sims", operation_id="createSim", guards=[requires(*IT)], status_code=201)
    async def create_sim(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: JSONBody[schemas.SimIn],
    ) -> schemas.SimRead:
        """A SIM (ICCID checked); PIN and PUK are encrypted at once."""
        box = services.secret_box(settings.secret_key)
        sim = await services.create_sim(db, request.user, box, data, client_ip(request))
        return (await services.sim_reads(db, [sim]))[0]

    @put("/sims/{sim_id:int}", operation_id="updateSim", guards=[requires(*IT)])
    async def update_sim(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        sim_id: Id,
        data: JSONBody[schemas.SimIn],
    ) -> schemas.SimRead:
        """Move a SIM or set a new PIN/PUK (omitted secrets are kept)."""
        box = services.secret_box(settings.secret_key)
        sim = await services.update_sim(db, request.user, box, sim_id, data, client_ip(request))
        return (await services.sim_reads(db, [sim]))[0]

    @post(
        "/sims/{sim_id:int}/reveal",
        operation_id="revealSimSecrets",
        guards=[requires(*REVEALERS)],
        status_code=200,
    )
    async def reveal(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        sim_id: Id,
        data: JSONBody[schemas.RevealIn],
    ) -> Response[schemas.RevealRead]:
        """IT sees one SIM's PIN and PUK after giving a reason; the reveal is logged."""
        box = services.secret_box(settings.secret_key)
        shown = await services.reveal(db, request.user, box, sim_id, data.reason, client_ip(request))
        return Response(shown, headers={"Cache-Control": "no-store"})

    @get("/reveals", operation_id="listSecretReveals", guards=[requires(*LOG_READERS)])
    async def reveals(
        self, db: DB, sim_id: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None
    ) -> list[schemas.RevealLog]:
        """Who revealed which SIM's secrets, when and why."""
        return await services.reveal_log(db, sim_id)

    @get("/sims.csv", operation_id="exportSimsCsv", guards=[requires(*READERS)], media_type="text/csv")
    async def export_sims(self, db: DB) -> Response[bytes]:
        """Every SIM, for Excel (no PIN or PUK)."""
        return csv_response(await csvio.export_sims(db), "sims")

    @post(
        "/import/{kind:str}",
        operation_id="importDevicesCsv",
        guards=[requires(*IT)],
        status_code=200,
        request_max_body_size=MAX_BODY,
        before_request=multipart_only,
    )
    async def import_csv(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        kind: Annotated[str, PathParameter(max_length=10)],
        data: MultipartBody[CsvUpload],
        dry_run: FromQuery[bool] = True,
    ) -> ImportReport:
        """Devices, lines, sims or usage from CSV (UTF-8 or Shift_JIS); dry run (the default) only checks."""
        body = await data.file.read(5 * 1024 * 1024 + 1)
        return await run_import(request, db, settings.secret_key, kind, body, dry_run)

    # ------------------------------------------------------------ loans

    @get("/loans", operation_id="listLoans", guards=[signed_in])
    async def list_loans(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        status: Annotated[
            str | None, QueryParameter(pattern="^(open|awaiting_acceptance|active|returned)$")
        ] = None,
        overdue: FromQuery[bool] = False,
        q: Annotated[str, QueryParameter(max_length=100)] = "",
        page: Page = 1,
        per_page: PerPage = 50,
    ) -> schemas.LoanList:
        """Loans I may see: all (IT, auditors), my units' (unit heads), my own (everyone)."""
        return await loans.list_loans(
            db, request.user, status=status, overdue=overdue, q=q, page=page, per_page=per_page
        )

    @post("/loans", operation_id="checkoutLoan", guards=[requires(*IT)], status_code=201)
    async def checkout(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.LoanIn]
    ) -> schemas.LoanRead:
        """Lend a bundle of devices and lines to one person; they accept it online."""
        loan = await loans.checkout(db, request.user, data, client_ip(request))
        return (await loans.loan_reads(db, [loan]))[0]

    @get("/loans/{loan_id:int}", operation_id="getLoan", guards=[signed_in])
    async def get_loan(self, request: Request[Principal, Any, Any], db: DB, loan_id: Id) -> schemas.LoanRead:
        """One loan (holder, IT, auditors, the holder's unit head)."""
        return (await loans.loan_reads(db, [await loans.loan_for(db, request.user, loan_id)]))[0]

    @post("/loans/{loan_id:int}/accept", operation_id="acceptLoan", guards=[signed_in], status_code=200)
    async def accept(
        self, request: Request[Principal, Any, Any], db: DB, loan_id: Id, data: JSONBody[schemas.AcceptIn]
    ) -> schemas.LoanRead:
        """The holder accepts the whole bundle once."""
        loan = await loans.accept(db, request.user, loan_id, data, client_ip(request))
        return (await loans.loan_reads(db, [loan]))[0]

    @post("/loans/{loan_id:int}/return", operation_id="returnLoan", guards=[requires(*IT)], status_code=200)
    async def return_loan(
        self, request: Request[Principal, Any, Any], db: DB, loan_id: Id, data: JSONBody[schemas.ReturnIn]
    ) -> schemas.LoanRead:
        """Take the bundle back with a condition per item."""
        loan = await loans.return_loan(db, request.user, loan_id, data, client_ip(request))
        return (await loans.loan_reads(db, [loan]))[0]

    @get("/mine", operation_id="myEquipment", guards=[signed_in])
    async def mine(self, request: Request[Principal, Any, Any], db: DB) -> list[schemas.LoanRead]:
        """What I hold now, and what waits for my acceptance."""
        return await loans.my_loans(db, request.user)

    # ------------------------------------------------------------ requests and incidents

    @post("/requests", operation_id="requestEquipment", guards=[signed_in], status_code=201)
    async def create_request(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.RequestIn]
    ) -> schemas.RequestRead:
        """Ask IT for equipment."""
        row = await loans.create_request(db, request.user, data, client_ip(request))
        return loans.request_read(row, request.user.name)

    @get("/requests", operation_id="listEquipmentRequests", guards=[requires(*IT)])
    async def list_requests(
        self,
        db: DB,
        status: Annotated[
            str | None, QueryParameter(pattern="^(open|fulfilled|declined|cancelled)$")
        ] = "open",
    ) -> list[schemas.RequestRead]:
        """The IT queue, oldest first."""
        return await loans.list_requests(db, status=status)

    @post(
        "/requests/{request_id:int}/answer",
        operation_id="answerEquipmentRequest",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def answer_request(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        request_id: Id,
        data: JSONBody[schemas.RequestAnswerIn],
    ) -> schemas.RequestRead:
        """Fulfil or decline a request."""
        row = await loans.answer_request(db, request.user, request_id, data, client_ip(request))
        return loans.request_read(row, "")

    @get("/incidents", operation_id="listIncidents", guards=[requires(*READERS)])
    async def incidents(self, db: DB, open_only: FromQuery[bool] = False) -> list[schemas.IncidentRead]:
        """Lost and stolen devices, newest first."""
        return await services.list_incidents(db, open_only=open_only)

    @post(
        "/incidents/{incident_id:int}/line-suspended",
        operation_id="incidentLineSuspended",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def line_suspended(
        self, request: Request[Principal, Any, Any], db: DB, incident_id: Id
    ) -> schemas.IncidentRead:
        """The carrier confirmed the line is suspended."""
        incident = await services.incident_step(
            db, request.user, incident_id, "line_suspended", client_ip(request)
        )
        return (await services.incident_reads(db, [incident]))[0]

    @post(
        "/incidents/{incident_id:int}/close",
        operation_id="closeIncident",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def close_incident(
        self, request: Request[Principal, Any, Any], db: DB, incident_id: Id
    ) -> schemas.IncidentRead:
        """Close the incident."""
        incident = await services.incident_step(db, request.user, incident_id, "close", client_ip(request))
        return (await services.incident_reads(db, [incident]))[0]

    # ------------------------------------------------------------ stocktakes and reports

    @post("/stocktakes", operation_id="openStocktake", guards=[requires(*IT)], status_code=201)
    async def open_stocktake(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.StocktakeIn]
    ) -> schemas.StocktakeRead:
        """Start a count of the devices expected on site."""
        take = await reports.open_stocktake(db, request.user, data, client_ip(request))
        return await reports.stocktake_read(db, take)

    @get("/stocktakes/{stocktake_id:int}", operation_id="getStocktake", guards=[requires(*READERS)])
    async def get_stocktake(self, db: DB, stocktake_id: Id) -> schemas.StocktakeRead:
        """Expected, found, missing and unexpected."""
        return await reports.stocktake_read(db, await reports.get_stocktake(db, stocktake_id))

    @post(
        "/stocktakes/{stocktake_id:int}/scans",
        operation_id="scanTag",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def scan(
        self, request: Request[Principal, Any, Any], db: DB, stocktake_id: Id, data: JSONBody[schemas.ScanIn]
    ) -> schemas.StocktakeRead:
        """One scanned label (its URL) or typed asset tag."""
        await reports.scan(db, request.user, stocktake_id, data.asset_tag, client_ip(request))
        return await reports.stocktake_read(db, await reports.get_stocktake(db, stocktake_id))

    @post(
        "/stocktakes/{stocktake_id:int}/close",
        operation_id="closeStocktake",
        guards=[requires(*IT)],
        status_code=200,
    )
    async def close_stocktake(
        self, request: Request[Principal, Any, Any], db: DB, stocktake_id: Id
    ) -> schemas.StocktakeRead:
        """Finish counting."""
        take = await reports.close_stocktake(db, request.user, stocktake_id, client_ip(request))
        return await reports.stocktake_read(db, take)

    @get("/reports", operation_id="deviceReports", guards=[requires(*READERS)])
    async def report(
        self, request: Request[Principal, Any, Any], db: DB, within_days: Days = 60, idle_months: Months = 3
    ) -> schemas.Report:
        """Counts, open and overdue loans, contract deadlines, monthly cost by unit, idle lines."""
        return await reports.report(
            db, within_days=within_days, idle_months=idle_months, locale=request_locale(request)
        )
