"""The sysadmin's view of the notifications outbox: what went out, what is waiting, what failed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from app import mail
from app.deps import DB
from app.security import Principal, requires
from app.web import NavItem, page_context

NAV = [NavItem("/admin/outbox", "nav.outbox", ("sysadmin",))]
PER_PAGE = 50

Status = Literal["pending", "sent", "logged", "failed"]


class OutboxPages(Controller):
    """Pages to watch mail delivery and send a failed message again."""

    guards = [requires("sysadmin")]
    include_in_schema = False

    @get("/admin/outbox", operation_id="outboxPage")
    async def page(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        status: FromQuery[Status | None] = None,
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        retried: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
    ) -> Template:
        """Newest messages first, optionally only one status, 50 a page."""
        rows, total = await mail.recent(db, status=status, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        return Template(
            "outbox.html",
            context=page_context(
                request,
                messages=rows,
                total=total,
                page=page,
                pages=max(1, -(-total // PER_PAGE)),
                status=status or "",
                statuses=mail.STATUSES,
                retried=retried,
                query=f"status={status}" if status else "",
            ),
        )

    @post("/admin/outbox/{id:int}/retry", operation_id="outboxRetry", status_code=303)
    async def retry(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)],
    ) -> Redirect:
        """Put a failed message back in the queue, e.g. after the mail server is fixed."""
        ip = request.client.host if request.client else ""
        await mail.requeue_failed(db, id, request.user, ip)
        return Redirect(f"/admin/outbox?retried={id}", status_code=303)
