"""The home page: what each role needs first, and what is waiting for the person."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import DB
from app.security import Principal, signed_in
from app.web import page_context


@dataclass(frozen=True)
class Notice:
    """Something waiting for the person, shown on the home page with a link to act on it."""

    key: str
    link: str
    params: dict[str, Any]


NoticeSource = Callable[[AsyncSession, Principal], Awaitable[list[Notice]]]
# A domain's own block on the home page: (template name, its context), or None to show nothing.
HomePanel = Callable[
    [Request[Any, Any, Any], AsyncSession, Principal], Awaitable[tuple[str, dict[str, Any]] | None]
]


class HomePage(Controller):
    include_in_schema = False

    @get("/", operation_id="homePage", guards=[signed_in])
    async def home(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        notices: list[Notice] = []
        for source in request.app.state.home_notices:
            notices.extend(await source(db, request.user))
        panels = []
        for panel in getattr(request.app.state, "home_panels", []):
            shown = await panel(request, db, request.user)
            if shown is not None:
                panels.append(shown)
        return Template("home.html", context=page_context(request, notices=notices, panels=panels))
