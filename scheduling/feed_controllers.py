"""HTTP for iCalendar feeds: manage my feed addresses (signed in) and serve a feed (by secret token)."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, head, post
from litestar.params import JSONBody, PathParameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.deps import DB, SettingsDep
from app.errors import NotFound
from app.security import Principal, signed_in
from scheduling import feeds
from scheduling.config import TeleworkConfig

Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
Token = Annotated[str, PathParameter(min_length=1, max_length=200)]
ICS_MEDIA_TYPE = "text/calendar"  # Litestar adds "; charset=utf-8" to text types


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def _config(request: Request[Any, Any, Any]) -> TeleworkConfig:
    """The app's telework settings when the module put them in state; else read from the environment."""
    config = getattr(request.app.state, "telework_config", None)
    if isinstance(config, TeleworkConfig):
        return config
    return TeleworkConfig.from_env(production=request.app.state.settings.production)


class FeedApi(Controller):
    """My iCalendar feed addresses: personal, or for a unit I head. The secret is shown once."""

    path = "/api/telework/feeds"
    tags = ["telework"]
    guards = [signed_in]

    @get("/", operation_id="listCalendarFeeds")
    async def list_feeds(self, request: Request[Principal, Any, Any], db: DB) -> list[feeds.CalendarFeedRead]:
        """My active feeds (their addresses cannot be shown again; revoke and create a new one)."""
        return await feeds.my_feeds(db, request.user)

    @post("/", operation_id="createCalendarFeed")
    async def create_feed(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: JSONBody[feeds.CalendarFeedIn],
    ) -> feeds.CalendarFeedCreated:
        """A new secret address to subscribe to from Outlook, Google or Apple Calendar."""
        return await feeds.create_feed(db, request.user, data, settings.base_url, _ip(request))

    @delete("/{feed_id:int}", operation_id="revokeCalendarFeed", status_code=204)
    async def revoke_feed(self, request: Request[Principal, Any, Any], db: DB, feed_id: Id) -> None:
        """Revoke one of my feeds: its address stops working at once."""
        await feeds.revoke_feed(db, request.user, feed_id, utcnow(), _ip(request))


def _matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2) against a list of entity tags or '*'."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


async def _feed(
    request: Request[Any, Any, Any], db: AsyncSession, base_url: str, token: str
) -> tuple[feeds.RenderedFeed, dict[str, str]]:
    if not token.endswith(".ics"):
        raise NotFound("ical.not_found")
    feed, owner = await feeds.resolve(db, token.removesuffix(".ics"), utcnow())
    rendered = await feeds.render(db, feed, owner, _config(request), base_url)
    headers = {
        "ETag": rendered.etag,
        "Last-Modified": format_datetime(rendered.last_modified, usegmt=True),
        # The address is the secret: no shared caches, no referrers, no search engines.
        "Cache-Control": "private, no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "Content-Disposition": 'inline; filename="telework.ics"',
    }
    return rendered, headers


@get(
    "/ical/{token:str}",
    operation_id="calendarFeed",
    include_in_schema=False,
    media_type=ICS_MEDIA_TYPE,
    cache_control=None,
)
async def calendar_feed(
    request: Request[Any, Any, Any], db: DB, settings: SettingsDep, token: Token
) -> Response[bytes]:
    """A feed by its secret address `/ical/<token>.ics` (no sign-in: calendar apps cannot sign in)."""
    rendered, headers = await _feed(request, db, settings.base_url, token)
    if _matches(request.headers.get("if-none-match", ""), rendered.etag):
        return Response(b"", status_code=304, headers=headers, media_type=ICS_MEDIA_TYPE)
    return Response(rendered.body, headers=headers, media_type=ICS_MEDIA_TYPE)


@head(
    "/ical/{token:str}", operation_id="calendarFeedHead", include_in_schema=False, media_type=ICS_MEDIA_TYPE
)
async def calendar_feed_head(
    request: Request[Any, Any, Any], db: DB, settings: SettingsDep, token: Token
) -> Response[None]:
    """The same answer without the body: some calendar services check an address with HEAD first."""
    rendered, headers = await _feed(request, db, settings.base_url, token)
    status = 304 if _matches(request.headers.get("if-none-match", ""), rendered.etag) else 200
    return Response(None, status_code=status, headers=headers, media_type=ICS_MEDIA_TYPE)


ROUTE_HANDLERS = [FeedApi, calendar_feed, calendar_feed_head]
