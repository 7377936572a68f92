"""Turns the session cookie into ``connection.user`` (a Principal) on every HTTP and WebSocket request."""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from auth.services import load_principal
from auth.sessions import SessionManager

SESSION_COOKIE = "th_session"
SKIP_PREFIXES = ("/static/", "/health/live", "/favicon")


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


class SessionAuthMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        scope["user"] = None
        scope["auth"] = None
        path: str = scope.get("path", "")
        sid = _cookie(scope, SESSION_COOKIE)
        if sid and not path.startswith(SKIP_PREFIXES):
            state: Any = scope["litestar_app"].state
            sessions: SessionManager = state.sessions
            record = await sessions.load(sid)
            if record is not None:
                async with state.db_sessions() as db:
                    principal = await load_principal(db, record.user_id, record.sid)
                if principal is None:
                    await sessions.destroy(record.sid)
                else:
                    scope["user"] = principal
                    scope["auth"] = record
        await next_app(scope, receive, send)
