"""What `devices` contributes to the app (routes, menu, templates, jobs); wired by `app.main`."""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar

from app.modules import Module
from devices import controllers, measures, pages, reports


async def _demo(app: Litestar) -> None:
    """A small demo inventory on the embedded default's first start (see devices/demo.py)."""
    settings = app.state.settings
    if settings.seed_demo and settings.app_env == "dev" and os.environ.get("DEVICES_DEMO_DATA", "1") != "0":
        from devices.demo import seed_if_empty

        async with app.state.db_sessions() as db:
            if await seed_if_empty(db, settings.secret_key):
                await db.commit()


MODULE = Module(
    name="devices",
    route_handlers=[controllers.DevicesApi, pages.DevicePages],
    nav=pages.NAV,
    template_dir=Path(__file__).resolve().parent / "templates",
    home_notices=[reports.home_notices],
    home_panels=[reports.home_panel],
    measures=[measures.on_loan],
    jobs=[("devices-reminders", reports.run_jobs)],
    on_startup=[_demo],
)
