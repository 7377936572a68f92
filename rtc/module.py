"""What `rtc` contributes to the app (routes, menu, templates, jobs); wired by `app.main`."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar

from app.modules import Module
from rtc import usage, usage_controllers
from rtc.controllers import NAV, GuestPages, RoomApi, RoomPages, asset
from rtc.signalling import RtcService, room_socket

HERE = Path(__file__).resolve().parent


async def start(app: Litestar) -> None:
    """The SFU and the signalling channels (Redis when configured, so several web workers share them)."""
    service = RtcService(app.state.settings, app.state.backends.redis, app.state.db_sessions)
    await service.start()
    app.state.rtc = service
    if app.state.settings.jobs_interval_seconds > 0:  # this worker's open stays: seen every 30 s
        beat = usage.HEARTBEAT_SECONDS
        app.state.jobs.every("rtc.heartbeat", beat, lambda: usage.heartbeat_job(app.state))


async def stop(app: Litestar) -> None:
    """Close every peer connection and the channels."""
    service: RtcService | None = getattr(app.state, "rtc", None)
    if service is not None:
        await service.stop()


MODULE = Module(
    name="rtc",
    route_handlers=[
        RoomApi,
        RoomPages,
        GuestPages,
        room_socket,
        asset,
        usage_controllers.UsageApi,
        usage_controllers.UsagePages,
    ],
    nav=[*NAV, *usage_controllers.NAV],
    template_dir=HERE / "templates",
    measures=[usage.measures],
    jobs=[("rtc.close_stale", usage.close_stale_job)],
    on_startup=[start],
    on_shutdown=[stop],
)
