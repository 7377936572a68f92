"""Meeting pages: my meetings, schedule or change a meeting, one meeting with answers and actions.

Everything works without JavaScript: the people picker is a search button inside the form that adds
people one by one (the form keeps everything typed), and the free/busy hint is shown for the chosen
people and day each time the form comes back.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import DB, SettingsDep
from app.errors import DomainError, field_errors
from app.security import Principal, signed_in
from app.web import NavItem, page_context, request_locale
from auth.controllers import client_ip
from scheduling import meeting_queries as queries
from scheduling import meeting_schemas as ms
from scheduling import meetings
from scheduling.config import TOKYO
from scheduling.controllers import cfg
from scheduling.meeting_forms import (
    AnswerForm,
    MeetingForm,
    MoveForm,
    SequenceForm,
    form_of,
    jst,
    number,
    settled,
    to_meeting_in,
    wall_time,
)
from scheduling.meeting_recurrence import Occurrence, parse_rid, rid_text

NAV = [NavItem("/meetings", "nav.meetings")]
Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
Rid = Annotated[str, PathParameter(pattern=r"^\d{8}T\d{6}Z$", max_length=16)]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
PER_PAGE = 20


async def form_page(
    request: Request[Principal, Any, Any],
    db: AsyncSession,
    typed: MeetingForm,
    *,
    meeting: ms.MeetingRead | None = None,
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Template:
    """The schedule/edit form with the chosen people, search results and the day's free/busy hint."""
    locale = request_locale(request)
    chosen = await queries.people(db, typed.chosen())
    results = await queries.directory(db, typed.q, locale) if typed.q.strip() else []
    busy: ms.FreeBusyRead | None = None
    day: date | None = None
    try:
        day = date.fromisoformat(typed.day.strip()) if typed.day.strip() else None
    except ValueError:
        day = None
    if day is not None and chosen:
        first = datetime.combine(day, time(0, 0), tzinfo=TOKYO)
        busy = await queries.freebusy(
            db,
            cfg(request),
            [p.id for p in chosen],
            first,
            first + timedelta(days=1),
            exclude_meeting=meeting.id if meeting else None,
        )
    return Template(
        "scheduling/meetings/form.html",
        context=page_context(
            request,
            typed=typed,
            meeting=meeting,
            chosen=chosen,
            cohosts=set(typed.cohosts()),
            results=[r for r in results if r.id not in {p.id for p in chosen} and r.id != request.user.id],
            searched=bool(typed.q.strip()),
            busy=busy,
            day=day,
            jst=jst,
            errors=errors or [],
        ),
        status_code=status_code,
    )


async def _upcoming(db: AsyncSession, read: ms.MeetingRead, now: datetime) -> list[Occurrence]:
    """Occurrences of the meeting that have not ended (at most 100), for the detail page."""
    row = await meetings.load(db, read.id)
    return [o for o in queries.occurrences(row, await meetings.exceptions_of(db, read.id)) if o.end_at > now][
        :100
    ]


class MeetingPages(Controller):
    """Pages over the meeting services (same rules and messages as the API)."""

    include_in_schema = False
    guards = [signed_in]

    @get("/meetings", operation_id="myMeetingsPage")
    async def mine(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
    ) -> Template:
        found = await queries.list_mine(
            db, request.user, None, None, cfg(request).now(), settings.base_url, page=page, per_page=PER_PAGE
        )
        return Template(
            "scheduling/meetings/list.html",
            context=page_context(
                request,
                items=found.items,
                total=found.total,
                page=page,
                pages=max(1, -(-found.total // PER_PAGE)),
                query="",
                jst=jst,
            ),
        )

    @get("/meetings/new", operation_id="newMeetingPage")
    async def new(self, request: Request[Principal, Any, Any], db: DB, day: FromQuery[str] = "") -> Template:
        return await form_page(request, db, MeetingForm(day=day[:10], start_time="10:00", end_time="11:00"))

    @post("/meetings/new", operation_id="newMeetingSubmit", status_code=303, media_type=MediaType.HTML)
    async def new_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: Annotated[MeetingForm, Form],
    ) -> Any:
        if data.action != "save" or data.add or data.remove:
            return await form_page(request, db, settled(data))
        try:
            created = await meetings.create(
                db, settings, request.user, to_meeting_in(data), cfg(request).now(), ip=client_ip(request)
            )
        except DomainError as exc:
            await db.rollback()
            return await form_page(
                request,
                db,
                data,
                errors=field_errors(request_locale(request), exc),
                status_code=exc.status_code,
            )
        return Redirect(f"/meetings/{created.id}?done=created", status_code=303)

    @get("/meetings/{meeting_id:int}", operation_id="meetingPage")
    async def detail(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        done: FromQuery[str] = "",
    ) -> Template:
        return await self._detail(request, db, settings.base_url, meeting_id, done=done)

    async def _detail(
        self,
        request: Request[Principal, Any, Any],
        db: AsyncSession,
        base_url: str,
        meeting_id: int,
        *,
        done: str = "",
        errors: list[dict[str, str]] | None = None,
        status_code: int = 200,
    ) -> Template:
        read = await queries.get_meeting(db, request.user, meeting_id, base_url)
        now = cfg(request).now()
        upcoming = await _upcoming(db, read, now) if read.rrule and read.status == "scheduled" else []
        return Template(
            "scheduling/meetings/detail.html",
            context=page_context(
                request,
                m=read,
                upcoming=upcoming,
                rid_text=rid_text,
                jst=jst,
                done=done if done in DONE else "",
                errors=errors or [],
                now=now,
            ),
            status_code=status_code,
        )

    async def _refused(
        self,
        request: Request[Principal, Any, Any],
        db: AsyncSession,
        base_url: str,
        meeting_id: int,
        exc: DomainError,
    ) -> Template:
        """An action refused (stale, bad input): undo it and show the meeting again with the message."""
        await db.rollback()
        return await self._detail(
            request,
            db,
            base_url,
            meeting_id,
            errors=field_errors(request_locale(request), exc),
            status_code=exc.status_code,
        )

    @post(
        "/meetings/{meeting_id:int}/respond",
        operation_id="respondMeetingSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def respond(
        self, request: Request[Principal, Any, Any], db: DB, meeting_id: Id, data: Annotated[AnswerForm, Form]
    ) -> Any:
        seq = data.sequence.strip()
        await meetings.respond(
            db,
            request.user,
            meeting_id,
            data.answer,
            cfg(request).now(),
            ip=client_ip(request),
            based_on=int(seq) if seq.isascii() and seq.isdigit() and len(seq) < 10 else None,
        )
        return Redirect(f"/meetings/{meeting_id}?done=answered", status_code=303)

    @post(
        "/meetings/{meeting_id:int}/cancel",
        operation_id="cancelMeetingSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def cancel(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        data: Annotated[SequenceForm, Form],
    ) -> Any:
        await meetings.editable(db, meeting_id, request.user, organizer_only=True)  # 403/404 first
        try:
            if data.confirm != "yes":
                raise DomainError("mt.actions.confirm_missing", status_code=422)
            await meetings.cancel_meeting(
                db,
                settings,
                request.user,
                meeting_id,
                cfg(request).now(),
                based_on=number(data.sequence),
                ip=client_ip(request),
            )
        except DomainError as exc:
            if exc.status_code not in (409, 422):
                raise
            return await self._refused(request, db, settings.base_url, meeting_id, exc)
        return Redirect(f"/meetings/{meeting_id}?done=cancelled", status_code=303)

    @get("/meetings/{meeting_id:int}/edit", operation_id="editMeetingPage")
    async def edit(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, meeting_id: Id
    ) -> Template:
        await meetings.editable(db, meeting_id, request.user, organizer_only=False)
        read = await queries.get_meeting(db, request.user, meeting_id, settings.base_url)
        return await form_page(request, db, form_of(read), meeting=read)

    @post(
        "/meetings/{meeting_id:int}/edit",
        operation_id="editMeetingSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def edit_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        data: Annotated[MeetingForm, Form],
    ) -> Any:
        await meetings.editable(db, meeting_id, request.user, organizer_only=False)
        read = await queries.get_meeting(db, request.user, meeting_id, settings.base_url)
        if data.action != "save" or data.add or data.remove:
            return await form_page(request, db, settled(data), meeting=read)
        try:
            sequence = number(data.sequence)
            if sequence is None:
                raise DomainError("meeting.stale", status_code=409)
            update = msgspec.convert(
                {**msgspec.to_builtins(to_meeting_in(data)), "sequence": sequence},
                ms.MeetingUpdate,
            )
            await meetings.update_meeting(
                db, settings, request.user, meeting_id, update, cfg(request).now(), ip=client_ip(request)
            )
        except DomainError as exc:
            await db.rollback()
            return await form_page(
                request,
                db,
                data,
                meeting=read,
                errors=field_errors(request_locale(request), exc),
                status_code=exc.status_code,
            )
        return Redirect(f"/meetings/{meeting_id}?done=updated", status_code=303)

    @post(
        "/meetings/{meeting_id:int}/occurrences/{recurrence_id:str}/move",
        operation_id="moveMeetingOccurrenceSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def move(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        recurrence_id: Rid,
        data: Annotated[MoveForm, Form],
    ) -> Any:
        rid = parse_rid(recurrence_id)
        await meetings.editable(db, meeting_id, request.user, organizer_only=False)  # 403/404 before 422
        try:
            move = ms.OccurrenceMoveIn(
                start=wall_time(data.day, data.start_time, "mt_start"),
                end=wall_time(data.day, data.end_time, "mt_end"),
                sequence=number(data.sequence),
            )
            await meetings.move_occurrence(
                db, settings, request.user, meeting_id, rid, move, cfg(request).now(), ip=client_ip(request)
            )
        except DomainError as exc:
            if exc.status_code in (403, 404):
                raise
            return await self._refused(request, db, settings.base_url, meeting_id, exc)
        return Redirect(f"/meetings/{meeting_id}?done=moved", status_code=303)

    @post(
        "/meetings/{meeting_id:int}/occurrences/{recurrence_id:str}/cancel",
        operation_id="cancelMeetingOccurrenceSubmit",
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def cancel_occurrence(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        recurrence_id: Rid,
        data: Annotated[SequenceForm, Form],
    ) -> Any:
        try:
            await meetings.cancel_occurrence(
                db,
                settings,
                request.user,
                meeting_id,
                parse_rid(recurrence_id),
                cfg(request).now(),
                based_on=number(data.sequence),
                ip=client_ip(request),
            )
        except DomainError as exc:
            if exc.status_code in (403, 404):
                raise
            return await self._refused(request, db, settings.base_url, meeting_id, exc)
        return Redirect(f"/meetings/{meeting_id}?done=occurrence_cancelled", status_code=303)


DONE = ("created", "updated", "cancelled", "answered", "moved", "occurrence_cancelled")


ROUTE_HANDLERS = [MeetingPages]


async def home_panel(
    request: Request[Any, Any, Any], db: AsyncSession, principal: Principal
) -> tuple[str, dict[str, Any]] | None:
    """Today's meetings that have not ended, each with its join link (nothing shown on a day without)."""
    now = cfg(request).now()
    end_of_day = datetime.combine(now.astimezone(TOKYO).date() + timedelta(days=1), time(0, 0), tzinfo=TOKYO)
    found = await queries.list_mine(
        db, principal, now, end_of_day, now, request.app.state.settings.base_url, per_page=10
    )
    if not found.items:
        return None
    return "scheduling/meetings/home_panel.html", {"meetings": found.items, "jst": jst}
