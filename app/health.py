"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from sqlalchemy import text


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", operation_id="healthLive", cache_control=None)
    async def live(self) -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @get(
        "/ready",
        operation_id="healthReady",
        responses={503: ResponseSpec(dict[str, Any], description="Database or Redis not answering")},
    )
    async def ready(self, state: State) -> Response[dict[str, Any]]:
        """The database (and Redis, when configured) answer; 503 otherwise."""
        checks: dict[str, str] = {}
        try:
            async with state.db_sessions() as db:
                await db.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks["database"] = f"error: {type(exc).__name__}"
        if state.backends.redis is not None:
            try:
                await state.backends.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return Response(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )
