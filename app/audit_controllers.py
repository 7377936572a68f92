"""The audit trail for auditors: filter, page through, export as CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template

from app import audit
from app.csvutil import excel_csv
from app.deps import DB
from app.security import requires
from app.web import NavItem, page_context

NAV = [NavItem("/audit", "nav.audit", ("auditor", "sysadmin"))]
EXPORT_LIMIT = 100_000


class AuditEventRead(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    actor_id: int | None
    actor_label: str
    action: str
    entity_type: str
    entity_id: str
    before: Any
    after: Any
    ip: str


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEventRead]
    total: int
    limit: int
    offset: int


def _read(e: audit.AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        id=e.id or 0,
        at=e.at,
        actor_id=e.actor_id,
        actor_label=e.actor_label,
        action=e.action,
        entity_type=e.entity_type,
        entity_id=e.entity_id,
        before=msgspec.json.decode(e.before) if e.before else None,
        after=msgspec.json.decode(e.after) if e.after else None,
        ip=e.ip,
    )


def _bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(since, time.min, tzinfo=UTC) if since else None
    end = datetime.combine(until, time.min, tzinfo=UTC) + timedelta(days=1) if until else None
    return start, end


Action = Annotated[str | None, QueryParameter(max_length=80)]
EntityType = Annotated[str | None, QueryParameter(max_length=60)]
EntityId = Annotated[str | None, QueryParameter(max_length=80)]
ActorId = Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)]


class AuditController(Controller):
    """Read-only access to the append-only audit trail."""

    guards = [requires("auditor", "sysadmin")]
    tags = ["audit"]

    @get("/api/audit", operation_id="listAuditEvents")
    async def list_events(
        self,
        db: DB,
        action: Action = None,
        actor_id: ActorId = None,
        entity_type: EntityType = None,
        entity_id: EntityId = None,
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> AuditPage:
        """Newest first; action filters by prefix (e.g. 'auth.login')."""
        start, end = _bounds(since, until)
        rows, total = await audit.search(
            db,
            action=action,
            actor_id=actor_id,
            entity_type=entity_type,
            entity_id=entity_id,
            since=start,
            until=end,
            limit=limit,
            offset=offset,
        )
        return AuditPage(items=[_read(e) for e in rows], total=total, limit=limit, offset=offset)

    @get("/api/audit.csv", operation_id="exportAuditEvents", media_type="text/csv")
    async def export_events(
        self,
        db: DB,
        action: Action = None,
        actor_id: ActorId = None,
        entity_type: EntityType = None,
        entity_id: EntityId = None,
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
    ) -> Response[bytes]:
        """The filtered trail as CSV (UTF-8 with BOM so Excel shows Japanese correctly)."""
        start, end = _bounds(since, until)
        rows, _ = await audit.search(
            db,
            action=action,
            actor_id=actor_id,
            entity_type=entity_type,
            entity_id=entity_id,
            since=start,
            until=end,
            limit=EXPORT_LIMIT,
        )
        header = [
            "id",
            "at",
            "actor_id",
            "actor_label",
            "action",
            "entity_type",
            "entity_id",
            "before",
            "after",
            "ip",
        ]
        body = excel_csv(
            header,
            (
                [
                    e.id,
                    e.at.isoformat(),
                    e.actor_id or "",
                    e.actor_label,
                    e.action,
                    e.entity_type,
                    e.entity_id,
                    e.before or "",
                    e.after or "",
                    e.ip,
                ]
                for e in rows
            ),
        )
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )

    @get("/audit", operation_id="auditPage", include_in_schema=False)
    async def page(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        action: Action = None,
        entity_type: EntityType = None,
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
    ) -> Template:
        per_page = 50
        start, end = _bounds(since, until)
        rows, total = await audit.search(
            db,
            action=action,
            entity_type=entity_type,
            since=start,
            until=end,
            limit=per_page,
            offset=(page - 1) * per_page,
        )
        filters = {
            "action": action or "",
            "entity_type": entity_type or "",
            "since": since.isoformat() if since else "",
            "until": until.isoformat() if until else "",
        }
        return Template(
            "audit.html",
            context=page_context(
                request,
                events=rows,
                total=total,
                page=page,
                pages=max(1, -(-total // per_page)),
                filters=filters,
                query="&".join(f"{k}={v}" for k, v in filters.items() if v),
            ),
        )
