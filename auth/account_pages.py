"""A person's own sign-in sessions: where and when each began, and ending one or all the others (ASVS 7.5.2).

The page names sessions by a handle (a hash of the id), so the page never shows or takes a session id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, MediaType, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from app import audit
from app.deps import DB
from app.errors import NotFound
from app.security import Principal, signed_in
from app.web import page_context
from auth.controllers import SessionsDep, client_ip
from auth.sessions import SessionRecord

CITY_ZONE = ZoneInfo("Asia/Tokyo")


class EndSessionForm(msgspec.Struct, kw_only=True):
    handle: Annotated[str, msgspec.Meta(max_length=40)] = ""  # one session, or "others": all but this one


def browser_label(agent: str) -> str:
    """A short, recognisable name for a User-Agent ("Chrome on Windows"); the raw string is in a tooltip."""
    lowered = agent.lower()
    browser = next(
        (
            name
            for key, name in (
                ("edg/", "Edge"),
                ("firefox/", "Firefox"),
                ("chrome/", "Chrome"),
                ("chromium/", "Chromium"),
                ("safari/", "Safari"),
                ("python-httpx", "httpx"),
                ("curl/", "curl"),
            )
            if key in lowered
        ),
        "",
    )
    system = next(
        (
            name
            for key, name in (
                ("windows", "Windows"),
                ("iphone", "iPhone"),
                ("ipad", "iPad"),
                ("android", "Android"),
                ("mac os", "macOS"),
                ("linux", "Linux"),
            )
            if key in lowered
        ),
        "",
    )
    return " / ".join(part for part in (browser, system) if part) or agent[:40]


def _row(record: SessionRecord, current: str) -> dict[str, Any]:
    return {
        "handle": record.handle,
        "current": record.sid == current,
        "started": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
        "started_local": datetime.fromtimestamp(record.created, CITY_ZONE).strftime("%Y-%m-%d %H:%M"),
        "method": record.auth_method,
        "ip": record.ip,
        "browser": browser_label(record.agent),
        "agent": record.agent,
    }


class AccountPages(Controller):
    """/account/sessions: the signed-in person's sessions."""

    path = "/account/sessions"
    guards = [signed_in]
    include_in_schema = False

    @get("/", operation_id="mySessionsPage", media_type=MediaType.HTML)
    async def sessions_page(self, request: Request[Principal, Any, Any], sessions: SessionsDep) -> Template:
        current = request.scope["auth"].sid
        rows = [_row(r, current) for r in await sessions.live_for(request.user.id)]
        ended = request.query_params.get("ended", "")
        ended = ended if ended in ("one", "others", "none") else ""
        return Template("auth/sessions.html", context=page_context(request, rows=rows, ended=ended))

    @post("/end", operation_id="endMySession", status_code=303)
    async def end(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        sessions: SessionsDep,
        data: Annotated[EndSessionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        """End one session by handle (the current one signs this browser out), or every other one."""
        person = request.user
        current = request.scope["auth"].sid
        if data.handle == "others":
            others = [r for r in await sessions.live_for(person.id) if r.sid != current]
            for record in others:
                await sessions.destroy(record.sid)
            outcome, count = ("others" if others else "none"), len(others)
        elif await sessions.destroy_handle(person.id, data.handle):
            outcome, count = "one", 1
        else:
            raise NotFound("account.session_not_found")
        audit.record(
            db,
            "auth.session.end",
            actor_id=person.id,
            actor_label=person.employee_number,
            entity_type="user",
            entity_id=person.id,
            after={"ended": count, "which": data.handle if data.handle == "others" else "one"},
            ip=client_ip(request),
        )
        await db.commit()
        if not await sessions.load(current):
            return Redirect("/login", status_code=303)
        return Redirect(f"/account/sessions?ended={outcome}", status_code=303)
