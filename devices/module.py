"""What `devices` contributes to the app (routes, menu, templates, jobs); wired by `app.main`."""

from __future__ import annotations

from pathlib import Path

from app.modules import Module
from devices import controllers, pages, reports

MODULE = Module(
    name="devices",
    route_handlers=[controllers.DevicesApi, pages.DevicePages],
    nav=pages.NAV,
    template_dir=Path(__file__).resolve().parent / "templates",
    home_notices=[reports.home_notices],
    jobs=[("devices-reminders", reports.run_jobs)],
)
