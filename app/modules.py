"""What a domain package contributes to the app, so the composition root wires each one the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from app.pages import HomePanel, NoticeSource
from app.web import NavItem

Hook = Callable[[Litestar], Awaitable[None]]
# A figure another domain adds to the indicator dashboard for a period: [(message key, value), ...].
Measure = Callable[[AsyncSession, date, date], Awaitable[list[tuple[str, int]]]]
Job = Callable[[State], Awaitable[object]]


@dataclass
class Module:
    """One domain's routes, menu entries, templates, plugins, home-page notices, jobs and lifecycle hooks."""

    name: str
    route_handlers: list[Any] = field(default_factory=list)
    nav: list[NavItem] = field(default_factory=list)
    template_dir: Path | None = None
    plugins: list[Any] = field(default_factory=list)
    home_notices: list[NoticeSource] = field(default_factory=list)
    home_panels: list[HomePanel] = field(default_factory=list)  # shown first on the home page
    measures: list[Measure] = field(default_factory=list)  # beside the indicator (devices on loan, meetings)
    jobs: list[tuple[str, Job]] = field(default_factory=list)  # run every JOBS_INTERVAL_SECONDS
    on_startup: list[Hook] = field(default_factory=list)  # after migrations and the demo seed
    on_shutdown: list[Hook] = field(default_factory=list)  # before stores and the engine close
