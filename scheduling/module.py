"""What `scheduling` contributes to the app (routes, menu, templates, jobs); wired by `app.main`."""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State

from app.modules import Module
from scheduling import (
    admin_pages,
    approvals,
    feed_controllers,
    indicator,
    indicator_controllers,
    meeting_controllers,
    meeting_pages,
    pages,
)
from scheduling.config import TeleworkConfig
from scheduling.controllers import TeleworkApi

HERE = Path(__file__).resolve().parent


async def _configure(app: Litestar) -> None:
    settings = app.state.settings
    app.state.telework_config = TeleworkConfig.from_env(production=settings.production)
    if settings.seed_demo and settings.app_env == "dev" and os.environ.get("TELEWORK_DEMO_DATA", "1") != "0":
        from scheduling.demo import seed_if_empty

        async with app.state.db_sessions() as db:
            await seed_if_empty(db, app.state.telework_config, settings.base_url)


async def run_jobs(state: State) -> dict[str, int]:
    """Expire, remind and escalate; idempotent, so every worker may run it."""
    config: TeleworkConfig = state.telework_config
    now = config.now()
    done = {}
    for name, job in (
        ("expired", approvals.expire_due),
        ("escalated", approvals.escalate_due),
        ("reminded", approvals.remind_due),
    ):
        async with state.db_sessions() as db:
            done[name] = await job(db, config, now)
            await db.commit()
    async with state.db_sessions() as db:  # the indicator: finished months are closed once
        done["months_closed"] = await indicator.close_due(db, config, config.today())
        await db.commit()
    return done


MODULE = Module(
    name="scheduling",
    route_handlers=[
        TeleworkApi,
        *feed_controllers.ROUTE_HANDLERS,
        pages.TeleworkPages,
        indicator_controllers.IndicatorApi,
        indicator_controllers.IndicatorPages,
        *admin_pages.ROUTE_HANDLERS,
        meeting_controllers.MeetingApi,
        *meeting_pages.ROUTE_HANDLERS,
    ],
    nav=[*pages.NAV, *meeting_pages.NAV, *admin_pages.NAV, *indicator_controllers.NAV],
    home_panels=[pages.home_panel, meeting_pages.home_panel],
    template_dir=HERE / "templates",
    jobs=[("telework", run_jobs)],
    on_startup=[_configure],
)
