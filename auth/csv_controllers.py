"""HTTP for CSV export and import of org units and people (API and an admin page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, MultipartBody
from litestar.response import Template

from app.deps import DB
from app.errors import DomainError, describe
from app.i18n import translate
from app.security import Principal, requires
from app.web import NavItem, page_context, request_locale
from auth import org_csv
from auth.controllers import client_ip

NAV = [NavItem("/admin/import", "nav.import", ("hr_admin", "sysadmin"))]
CSV_ADMINS = ("hr_admin", "sysadmin")
# Room for the multipart envelope around a file at the size limit; larger bodies get 413 before parsing.
MAX_BODY = org_csv.MAX_BYTES + 64 * 1024
MAX_ERRORS_SHOWN = 500


@dataclass
class CsvUpload:
    file: UploadFile


@dataclass
class CsvForm:
    file: UploadFile
    dry_run: str = ""  # an unchecked checkbox is simply absent


def csv_file(body: bytes, stem: str) -> Response[bytes]:
    filename = f"{stem}-{date.today():%Y%m%d}.csv"
    return Response(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


async def multipart_only(request: Request[Any, Any, Any]) -> None:
    """An upload must be a multipart form; say so plainly instead of a generic 400."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise DomainError("csv.multipart_required", status_code=415)


def localized(report: org_csv.ImportReport, locale: str) -> org_csv.ImportReport:
    """The report with each row error's message key turned into words in the reader's language."""
    errors = [
        msgspec.structs.replace(e, message=translate(locale, e.code, **e.params)) for e in report.errors
    ]
    return msgspec.structs.replace(report, errors=errors)


async def run_import(
    request: Request[Principal, Any, Any], db: DB, kind: str, upload: UploadFile, dry_run: bool
) -> org_csv.ImportReport:
    """Import one uploaded file; on row errors nothing was written and, unless a dry run, the reply is 422."""
    data = await upload.read(org_csv.MAX_BYTES + 1)
    service = org_csv.import_units if kind == "units" else org_csv.import_users
    report = await service(db, request.user, data, dry_run=dry_run, ip=client_ip(request))
    if report.errors and not dry_run:
        errors = [msgspec.structs.asdict(e) for e in report.errors]
        raise DomainError("csv.has_errors", status_code=422, errors=errors, n=len(errors))
    return localized(report, request_locale(request))


class OrgCsvApi(Controller):
    """Org units and people as CSV files, for HR and sysadmins."""

    path = "/api/org"
    tags = ["org"]
    guards = [requires(*CSV_ADMINS)]

    @get("/units.csv", operation_id="exportUnitsCsv", media_type="text/csv")
    async def export_units(self, request: Request[Principal, Any, Any], db: DB) -> Response[bytes]:
        """Every unit as CSV (UTF-8 with BOM, CRLF), in the columns the import reads."""
        return csv_file(await org_csv.export_units(db, request_locale(request)), "org-units")

    @get("/users.csv", operation_id="exportUsersCsv", media_type="text/csv")
    async def export_users(self, request: Request[Principal, Any, Any], db: DB) -> Response[bytes]:
        """Every person as CSV (UTF-8 with BOM, CRLF), in the columns the import reads."""
        return csv_file(await org_csv.export_users(db, request_locale(request)), "users")

    @post(
        "/units/import",
        operation_id="importUnitsCsv",
        status_code=200,
        request_max_body_size=MAX_BODY,
        before_request=multipart_only,
    )
    async def import_units(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        data: MultipartBody[CsvUpload],
        dry_run: FromQuery[bool] = True,
    ) -> org_csv.ImportReport:
        """Create or update units from a CSV file; dry run (the default) only checks it."""
        return await run_import(request, db, "units", data.file, dry_run)

    @post(
        "/users/import",
        operation_id="importUsersCsv",
        status_code=200,
        request_max_body_size=MAX_BODY,
        before_request=multipart_only,
    )
    async def import_users(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        data: MultipartBody[CsvUpload],
        dry_run: FromQuery[bool] = True,
    ) -> org_csv.ImportReport:
        """Create or update people from a CSV file; dry run (the default) only checks it."""
        return await run_import(request, db, "users", data.file, dry_run)


class ImportPages(Controller):
    """The upload page: check a file first, then import it, with every row's problem listed."""

    include_in_schema = False
    guards = [requires(*CSV_ADMINS)]

    @get("/admin/import", operation_id="importPage")
    async def page(self, request: Request[Principal, Any, Any]) -> Template:
        return self.render(request)

    @post(
        "/admin/import/units",
        operation_id="importUnitsSubmit",
        status_code=200,
        request_max_body_size=MAX_BODY,
    )
    async def submit_units(
        self, request: Request[Principal, Any, Any], db: DB, data: MultipartBody[CsvForm]
    ) -> Template:
        return await self.submit(request, db, "units", data)

    @post(
        "/admin/import/users",
        operation_id="importUsersSubmit",
        status_code=200,
        request_max_body_size=MAX_BODY,
    )
    async def submit_users(
        self, request: Request[Principal, Any, Any], db: DB, data: MultipartBody[CsvForm]
    ) -> Template:
        return await self.submit(request, db, "users", data)

    async def submit(
        self, request: Request[Principal, Any, Any], db: DB, kind: str, data: CsvForm
    ) -> Template:
        try:
            report = await run_import(request, db, kind, data.file, bool(data.dry_run))
        except DomainError as exc:
            status, _title, detail, errors = describe(request, exc)
            return self.render(request, kind=kind, error=detail, errors=errors, status=status)
        return self.render(request, kind=kind, report=report, errors=report.errors)

    @staticmethod
    def render(request: Request[Principal, Any, Any], *, status: int = 200, **context: Any) -> Template:
        errors = context.get("errors") or []
        context.update(shown=errors[:MAX_ERRORS_SHOWN], hidden=max(0, len(errors) - MAX_ERRORS_SHOWN))
        context.setdefault("kind", "")
        return Template("auth/import.html", context=page_context(request, **context), status_code=status)
