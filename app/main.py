"""Composition root: wires settings, database, stores and every domain's controllers into one Litestar app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from os import PathLike
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from app import audit_controllers, db, mail, mail_controllers
from app.errors import handle_exception
from app.health import HealthController
from app.jobs import Jobs
from app.modules import Module
from app.openapi import document_problems
from app.pages import HomePage
from app.settings import Settings
from app.stores import Backends, Counter
from auth import account_pages, csv_controllers, sso_controllers
from auth import controllers as auth_controllers
from auth import pages as auth_pages
from auth.middleware import SessionAuthMiddleware
from auth.passwords import Passwords
from auth.sessions import SessionManager
from devices.module import MODULE as DEVICES
from rtc.module import MODULE as RTC
from scheduling.module import MODULE as SCHEDULING
from surveys import controllers as survey_controllers
from surveys import services as survey_services

HERE = Path(__file__).resolve().parent
TEMPLATE_DIRS: list[Path | PathLike[Any] | str] = [
    HERE / "templates",
    HERE.parent / "auth" / "templates",
    HERE.parent / "surveys" / "templates",
]
MODULES: list[Module] = [SCHEDULING, DEVICES, RTC]
TEMPLATE_DIRS += [m.template_dir for m in MODULES if m.template_dir is not None]

log = logging.getLogger("telework")


async def startup(app: Litestar) -> None:
    """Open the database and stores, migrate (embedded default) and seed the demo org when empty."""
    settings: Settings = app.state.settings
    engine = db.make_engine(settings.database_url)
    backends = Backends(settings)
    app.state.engine = engine
    app.state.db_sessions = db.session_maker(engine)
    app.state.backends = backends
    app.state.sessions = SessionManager(
        backends.store, settings.session_idle_minutes * 60, settings.session_absolute_hours * 3600
    )
    app.state.oidc = None
    if settings.sso_enabled:
        from auth.oidc import OidcClient

        app.state.oidc = OidcClient(
            issuer=settings.oidc_issuer or "",
            client_id=settings.oidc_client_id or "",
            client_secret=settings.oidc_client_secret or "",
            redirect_uri=settings.base_url + "/auth/sso/callback",
            scopes=settings.oidc_scopes,
            timeout=settings.oidc_timeout_seconds,
            leeway=settings.oidc_leeway_seconds,
        )
    if settings.migrate_on_start:
        await db.migrate(engine)
    if settings.seed_demo:
        from app.demo import seed_if_empty

        async with app.state.db_sessions() as session:
            await seed_if_empty(session, app.state.passwords)
    app.state.mail_task = None
    if settings.mail_poll_seconds > 0:
        app.state.mail_task = asyncio.create_task(
            mail.delivery_loop(app.state.db_sessions, settings), name="mail-delivery"
        )
    app.state.jobs = Jobs()
    app.state.jobs.every(
        "surveys", settings.jobs_interval_seconds, lambda: survey_services.run_jobs(app.state)
    )
    for module in MODULES:
        for name, job in module.jobs:
            app.state.jobs.every(name, settings.jobs_interval_seconds, _bind(job, app.state))
        for hook in module.on_startup:
            await hook(app)
    # What start-up built lives as long as the process: move it out of the collector's reach, so a
    # full collection scans what requests allocate, not 240,000 long-lived objects (130–500 ms pauses
    # that were the inbox's p95 in bench/telework.py).
    if settings.app_env != "test":  # tests start hundreds of apps in one process: nothing is frozen
        gc.collect()
        gc.freeze()


def _bind(job: Any, state: State) -> Any:
    return lambda: job(state)


async def shutdown(app: Litestar) -> None:
    gc.unfreeze()  # what start-up froze may be collected again once the app is gone
    await app.state.jobs.stop()
    for module in reversed(MODULES):
        for hook in module.on_shutdown:
            await hook(app)
    task: asyncio.Task[None] | None = getattr(app.state, "mail_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app.state.backends.close()
    await app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the application for these settings (read from the environment when omitted)."""
    settings = settings or Settings.from_env()

    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)

    def provide_settings() -> Settings:
        return settings

    def provide_passwords() -> Passwords:
        return passwords

    def provide_counter(state: State) -> Counter:
        return state.backends.counter

    def provide_sessions(state: State) -> SessionManager:
        return state.sessions

    nav = [
        *auth_controllers.NAV,
        *csv_controllers.NAV,
        *audit_controllers.NAV,
        *sso_controllers.NAV,
        *survey_controllers.NAV,
        *mail_controllers.NAV,
        *(item for module in MODULES for item in module.nav),
    ]
    app = Litestar(
        route_handlers=[
            HealthController,
            HomePage,
            auth_controllers.SignInPages,
            auth_controllers.AuthApi,
            auth_controllers.PeopleApi,
            auth_controllers.UnitsApi,
            auth_pages.AdminPages,
            account_pages.AccountPages,
            sso_controllers.SsoFlow,
            sso_controllers.SsoAdmin,
            survey_controllers.SurveyApi,
            survey_controllers.SurveyPages,
            csv_controllers.OrgCsvApi,
            csv_controllers.ImportPages,
            audit_controllers.AuditController,
            mail_controllers.OutboxPages,
            *(handler for module in MODULES for handler in module.route_handlers),
            create_static_files_router(
                path="/static", directories=[HERE / "static"], include_in_schema=False
            ),
        ],
        dependencies={
            "db": Provide(db.provide_db),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "passwords": Provide(provide_passwords, sync_to_thread=False),
            "counter": Provide(provide_counter, sync_to_thread=False),
            "sessions": Provide(provide_sessions, sync_to_thread=False),
        },
        on_startup=[startup],
        on_shutdown=[shutdown],
        plugins=[plugin for module in MODULES for plugin in module.plugins],
        middleware=[SessionAuthMiddleware()],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_secure=settings.production or settings.base_url.startswith("https"),
            cookie_samesite="lax",
        ),
        template_config=TemplateConfig(directory=TEMPLATE_DIRS, engine=JinjaTemplateEngine),
        exception_handlers={Exception: handle_exception},
        openapi_config=OpenAPIConfig(
            title="Telework Hub API",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        logging_config=LoggingConfig(
            root={"level": "INFO", "handlers": ["queue_listener"]},
            log_exceptions="debug",
        ),
        debug=False,
    )
    document_problems(app.openapi_schema)
    app.state.settings = settings
    app.state.passwords = passwords
    app.state.nav = nav
    app.state.home_panels = [panel for module in MODULES for panel in module.home_panels]
    app.state.measures = [measure for module in MODULES for measure in module.measures]
    app.state.home_notices = [
        survey_services.home_notices,
        *(source for module in MODULES for source in module.home_notices),
    ]
    return app
