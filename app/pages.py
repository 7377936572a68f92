"""The home page: what each role needs first."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from app.security import Principal, signed_in
from app.web import page_context


class HomePage(Controller):
    include_in_schema = False

    @get("/", operation_id="homePage", guards=[signed_in])
    async def home(self, request: Request[Principal, Any, Any]) -> Template:
        return Template("home.html", context=page_context(request))
