"""iCalendar feeds: secret, revocable addresses for a person's own telework days or a unit head's unit.

A personal feed also carries the meetings the person organises or attends (scheduling.itip PUBLISH events).

The token is shown once when the feed is created; only its SHA-256 is stored, so a database leak
does not leak working calendars, and a lookup by hash does not compare secrets byte by byte.
A feed works only while its owner is active and, for a unit feed, still heads that unit (or a unit
above it): a change of post closes the door without anyone having to remember to revoke.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit import record
from app.errors import DomainError, Forbidden, NotFound
from app.i18n import translate
from app.security import Principal
from auth.models import OrgUnit, User
from auth.services import load_principal, subtree_ids
from scheduling import itip
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.ical import TZID, FeedDay, PartTimes, build_calendar, uid_host
from scheduling.invitations import meeting_event
from scheduling.models import (
    CalendarFeed,
    Meeting,
    MeetingAttendee,
    MeetingOccurrence,
    TeleworkDay,
    TeleworkRequest,
)

PUBLISHED_STATES = ("approved", "cancelled")
WINDOW_DAYS = 400  # days back and ahead of today that a feed carries
MAX_ACTIVE_FEEDS = 10  # per person
USE_RESOLUTION = timedelta(hours=1)  # last_used_at is written at most this often
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")

FeedKind = Literal["personal", "unit"]
Id = Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]


class CalendarFeedIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: FeedKind = "personal"
    unit_id: Id | None = None  # unit feeds: a unit the caller heads (or one below it)


class CalendarFeedRead(msgspec.Struct, kw_only=True):
    id: int
    kind: FeedKind
    unit_id: int | None
    unit_name: str | None
    created_at: datetime
    last_used_at: datetime | None


class CalendarFeedCreated(CalendarFeedRead, kw_only=True):
    token: str  # shown once: only its hash is kept
    url: str  # https://…/ical/<token>.ics, for "subscribe from URL"
    webcal_url: str  # the same with webcal://, which opens Apple Calendar and Outlook directly


@dataclass(frozen=True)
class RenderedFeed:
    body: bytes
    etag: str  # weak: the gzip middleware may change the bytes, not the meaning
    last_modified: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def feed_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/ical/{token}.ics"


def webcal_url(url: str) -> str:
    return re.sub(r"^https?://", "webcal://", url)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _unit_label(unit: OrgUnit | None, locale: str) -> str | None:
    if unit is None:
        return None
    return unit.name_en if locale == "en" and unit.name_en else unit.name


async def _unit_names(db: AsyncSession, unit_ids: set[int], locale: str) -> dict[int, str | None]:
    if not unit_ids:
        return {}
    units = (await db.execute(select(OrgUnit).where(col(OrgUnit.id).in_(unit_ids)))).scalars()
    return {u.id: _unit_label(u, locale) for u in units if u.id is not None}


def _read(feed: CalendarFeed, unit_name: str | None) -> CalendarFeedRead:
    return CalendarFeedRead(
        id=feed.id or 0,
        kind="unit" if feed.kind == "unit" else "personal",
        unit_id=feed.unit_id,
        unit_name=unit_name,
        created_at=feed.created_at,
        last_used_at=feed.last_used_at,
    )


async def create_feed(
    db: AsyncSession, principal: Principal, data: CalendarFeedIn, base_url: str, ip: str = ""
) -> CalendarFeedCreated:
    """A new feed for the caller; the token is in the answer and nowhere else."""
    if data.kind == "personal" and data.unit_id is not None:
        raise DomainError("ical.unit_not_allowed", field="unit_id")
    unit: OrgUnit | None = None
    if data.kind == "unit":
        if not principal.has("unit_head") or not principal.scope_unit_ids:
            raise Forbidden("ical.unit_head_only")
        if data.unit_id is None:
            raise DomainError("ical.unit_required", field="unit_id")
        if data.unit_id not in principal.scope_unit_ids:
            raise NotFound("ical.unit_not_found", field="unit_id")
        unit = await db.get(OrgUnit, data.unit_id)
        if unit is None:
            raise NotFound("ical.unit_not_found", field="unit_id")
    active = (
        await db.execute(
            select(func.count())
            .select_from(CalendarFeed)
            .where(col(CalendarFeed.user_id) == principal.id, col(CalendarFeed.revoked_at).is_(None))
        )
    ).scalar_one()
    if active >= MAX_ACTIVE_FEEDS:
        raise DomainError("ical.too_many", status_code=409, n=MAX_ACTIVE_FEEDS)
    token = secrets.token_urlsafe(32)
    feed = CalendarFeed(
        user_id=principal.id, kind=data.kind, unit_id=data.unit_id, token_hash=hash_token(token)
    )
    db.add(feed)
    await db.flush()
    record(
        db,
        "telework.feed.create",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="calendar_feed",
        entity_id=feed.id,
        after={"kind": feed.kind, "unit_id": feed.unit_id, "user_id": feed.user_id},
        ip=ip,
    )
    url = feed_url(base_url, token)
    base = _read(feed, _unit_label(unit, principal.locale))
    return CalendarFeedCreated(
        **msgspec.structs.asdict(base), token=token, url=url, webcal_url=webcal_url(url)
    )


async def my_feeds(db: AsyncSession, principal: Principal) -> list[CalendarFeedRead]:
    """The caller's active feeds, newest first (tokens cannot be shown again)."""
    feeds = list(
        (
            await db.execute(
                select(CalendarFeed)
                .where(col(CalendarFeed.user_id) == principal.id, col(CalendarFeed.revoked_at).is_(None))
                .order_by(col(CalendarFeed.id).desc())
            )
        ).scalars()
    )
    names = await _unit_names(db, {f.unit_id for f in feeds if f.unit_id is not None}, principal.locale)
    return [_read(f, names.get(f.unit_id) if f.unit_id is not None else None) for f in feeds]


async def revoke_feed(
    db: AsyncSession, principal: Principal, feed_id: int, now: datetime, ip: str = ""
) -> None:
    """Stop one of the caller's feeds for good; someone else's feed is 'not found'."""
    feed = await db.get(CalendarFeed, feed_id)
    if feed is None or feed.user_id != principal.id or feed.revoked_at is not None:
        raise NotFound("ical.feed_not_found")
    feed.revoked_at = now
    db.add(feed)
    record(
        db,
        "telework.feed.revoke",
        actor_id=principal.id,
        actor_label=principal.name,
        entity_type="calendar_feed",
        entity_id=feed.id,
        before={"kind": feed.kind, "unit_id": feed.unit_id, "user_id": feed.user_id},
        after={"revoked_at": now.isoformat()},
        ip=ip,
    )


async def resolve(db: AsyncSession, token: str, now: datetime) -> tuple[CalendarFeed, Principal]:
    """The live feed behind a token and its owner as of now; 404 for anything else.

    Marks the feed used, at most once an hour, so a calendar polling every few minutes does not
    turn every read into a write.
    """
    if not TOKEN_SHAPE.match(token):
        raise NotFound("ical.not_found")
    feed = (
        await db.execute(
            select(CalendarFeed).where(
                col(CalendarFeed.token_hash) == hash_token(token), col(CalendarFeed.revoked_at).is_(None)
            )
        )
    ).scalar_one_or_none()
    if feed is None:
        raise NotFound("ical.not_found")
    owner = await load_principal(db, feed.user_id)  # None when deactivated
    if owner is None:
        raise NotFound("ical.not_found")
    if feed.kind == "unit" and (
        feed.unit_id is None or not owner.has("unit_head") or feed.unit_id not in owner.scope_unit_ids
    ):
        raise NotFound("ical.not_found")
    if feed.last_used_at is None or now - _aware(feed.last_used_at) >= USE_RESOLUTION:
        feed.last_used_at = now
        db.add(feed)
    return feed, owner


def part_times(config: TeleworkConfig) -> PartTimes:
    return PartTimes(
        am_start=config.workday_starts,
        am_end=config.am_end,
        pm_start=config.pm_start,
        pm_end=config.workday_ends,
    )


def window(config: TeleworkConfig) -> tuple[date, date]:
    """The days a feed carries: WINDOW_DAYS either side of today (Tokyo)."""
    today = config.today()
    return today - timedelta(days=WINDOW_DAYS), today + timedelta(days=WINDOW_DAYS)


@dataclass(frozen=True)
class FeedMeetings:
    events: list[itip.MeetingEvent]
    links: dict[str, itip.Links]  # by UID
    changed: datetime | None  # the latest change among them (or the owner's answers)


async def meetings_for(
    db: AsyncSession, user_id: int, first: date, last: date, base_url: str, locale: str
) -> FeedMeetings:
    """Meetings a person organises or attends (unless they declined) that touch the window, cancelled too.

    Each keeps the UID and SEQUENCE of its invitations, so a calendar that has both merges them.
    """
    start = datetime.combine(first, datetime.min.time(), tzinfo=TOKYO).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=TOKYO).astimezone(UTC)
    invited = (
        sa_select(col(MeetingAttendee.meeting_id))
        .where(col(MeetingAttendee.user_id) == user_id, col(MeetingAttendee.partstat) != "DECLINED")
        .scalar_subquery()
    )
    query = (
        select(Meeting)
        .where(
            (col(Meeting.organizer_id) == user_id) | col(Meeting.id).in_(invited),
            col(Meeting.start_at) < end,
            # a single event by its end; a series by the end of its last occurrence (None: open-ended)
            ((col(Meeting.rrule) == "") & (col(Meeting.end_at) > start))
            | ((col(Meeting.rrule) != "") & col(Meeting.series_end_at).is_(None))
            | ((col(Meeting.rrule) != "") & (col(Meeting.series_end_at) > start)),
        )
        .order_by(col(Meeting.start_at), col(Meeting.id))
    )
    meetings = list((await db.execute(query)).scalars())
    if not meetings:
        return FeedMeetings([], {}, None)
    ids = [m.id for m in meetings if m.id is not None]
    occurrences: dict[int, list[MeetingOccurrence]] = {}
    for occ in (
        await db.execute(
            select(MeetingOccurrence)
            .where(col(MeetingOccurrence.meeting_id).in_(ids))
            .order_by(col(MeetingOccurrence.recurrence_id))
        )
    ).scalars():
        occurrences.setdefault(occ.meeting_id, []).append(occ)
    organizers = {
        u.id: u
        for u in (
            await db.execute(select(User).where(col(User.id).in_({m.organizer_id for m in meetings})))
        ).scalars()
    }
    answered = (
        await db.execute(
            sa_select(func.max(col(MeetingAttendee.responded_at))).where(
                col(MeetingAttendee.user_id) == user_id, col(MeetingAttendee.meeting_id).in_(ids)
            )
        )
    ).scalar_one_or_none()
    root = base_url.rstrip("/")
    events, links = [], {}
    stamps = [_aware(answered)] if answered is not None else []
    for m in meetings:
        occs = occurrences.get(m.id or 0, [])
        stamps += [_aware(m.updated_at), *(_aware(o.updated_at) for o in occs)]
        # The feed has one zone (Asia/Tokyo); the times are absolute either way. No attendees in PUBLISH.
        event = meeting_event(m, organizers.get(m.organizer_id), [], occs)
        events.append(dataclasses.replace(event, tz=TZID))
        links[m.uid] = itip.Links(
            join_url=f"{root}/rooms/{m.room_id}", app_url=f"{root}/meetings/{m.id}", locales=(locale,)
        )
    return FeedMeetings(events, links, max(stamps))


async def render(
    db: AsyncSession, feed: CalendarFeed, owner: Principal, config: TeleworkConfig, base_url: str
) -> RenderedFeed:
    """The feed's calendar: one query for the days (with place, plan and names joined in)."""
    first, last = window(config)
    locale = owner.locale
    unit_feed = feed.kind == "unit"
    query = (
        sa_select(  # sqlmodel's select is typed for at most four columns
            col(TeleworkDay.id),
            col(TeleworkDay.day),
            col(TeleworkDay.part),
            col(TeleworkDay.state),
            col(TeleworkDay.sequence),
            col(TeleworkDay.updated_at),
            col(TeleworkRequest.place),
            col(TeleworkRequest.place_note),
            col(TeleworkRequest.plan),
            col(User.name),
        )
        .join(TeleworkRequest, col(TeleworkRequest.id) == col(TeleworkDay.request_id))
        .join(User, col(User.id) == col(TeleworkDay.user_id))
        .where(
            col(TeleworkDay.state).in_(PUBLISHED_STATES),
            col(TeleworkDay.day) >= first,
            col(TeleworkDay.day) <= last,
        )
        .order_by(col(TeleworkDay.day), col(TeleworkDay.id))
    )
    meetings = FeedMeetings([], {}, None)
    if unit_feed:
        assert feed.unit_id is not None  # resolve() refuses a unit feed without one
        units = await subtree_ids(db, [feed.unit_id])
        query = query.where(col(TeleworkDay.unit_id).in_(units))
        unit = await db.get(OrgUnit, feed.unit_id)
        name = translate(locale, "ical.calname.unit", unit=_unit_label(unit, locale) or "")
    else:
        query = query.where(col(TeleworkDay.user_id) == owner.id)
        name = translate(locale, "ical.calname.personal", name=owner.name)
        meetings = await meetings_for(db, owner.id, first, last, base_url, locale)
    days = [
        FeedDay(
            id=row[0] or 0,
            day=row[1],
            part=row[2],
            state=row[3],
            sequence=row[4],
            updated_at=row[5],
            place=row[6],
            place_note=row[7],
            plan=row[8],
            person=row[9] if unit_feed else None,
        )
        for row in (await db.execute(query)).all()
    ]
    body = build_calendar(
        days,
        locale=locale,
        host=uid_host(base_url),
        name=name,
        description_text=translate(locale, "ical.caldesc"),
        times=part_times(config),
        details=not unit_feed,
        events=[
            event for m in meetings.events for event in itip.publish_events(m, meetings.links.get(m.uid))
        ],
    )
    changed = max(
        [_aware(d.updated_at) for d in days] + ([meetings.changed] if meetings.changed else []),
        default=_aware(feed.created_at),
    )
    return RenderedFeed(
        body=body,
        etag='W/"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        last_modified=changed.replace(microsecond=0),
    )
