"""Meetings JSON API under /api/meetings (thin: HTTP ↔ scheduling.meetings / meeting_queries)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.deps import DB, SettingsDep
from app.errors import DomainError
from app.security import Principal, signed_in
from app.web import request_locale
from auth.controllers import client_ip
from scheduling import meeting_queries as queries
from scheduling import meeting_schemas as ms
from scheduling import meetings
from scheduling.controllers import cfg
from scheduling.meeting_recurrence import parse_rid

Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
Rid = Annotated[str, PathParameter(pattern=r"^\d{8}T\d{6}Z$", max_length=16)]
Moment = Annotated[datetime | None, QueryParameter()]


def user_ids(raw: str) -> list[int]:
    """ "1,2,3" → [1, 2, 3]; anything else is a clear 400."""
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit() and len(part) <= 10 and 1 <= int(part) <= 2_147_483_647):
            raise DomainError("meeting.bad_users", field="mt_users", status_code=400)
        ids.append(int(part))
    if len(ids) > queries.FREEBUSY_USERS:
        raise DomainError(
            "meeting.too_many_users", field="mt_users", n=queries.FREEBUSY_USERS, status_code=400
        )
    return ids


class MeetingApi(Controller):
    """Schedule online meetings, answer invitations, find people and their free/busy times."""

    path = "/api/meetings"
    tags = ["meetings"]
    guards = [signed_in]

    @get("/", operation_id="listMyMeetings")
    async def mine(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        start: Annotated[datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[datetime | None, QueryParameter(name="to")] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 20,
    ) -> ms.MeetingList:
        """My meetings (organizer or invited) as occurrences between from and to (default: next 3 months)."""
        return await queries.list_mine(
            db,
            request.user,
            start,
            end,
            cfg(request).now(),
            settings.base_url,
            page=page,
            per_page=per_page,
        )

    @post("/", operation_id="createMeeting")
    async def create(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: JSONBody[ms.MeetingIn],
    ) -> ms.MeetingRead:
        """Schedule a meeting or a weekly/monthly series; everyone invited gets an invitation."""
        meeting = await meetings.create(
            db, settings, request.user, data, cfg(request).now(), ip=client_ip(request)
        )
        return await queries.meeting_read(db, meeting, request.user, "organizer", settings.base_url)

    @get("/directory", operation_id="meetingDirectory")
    async def directory(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Annotated[str, QueryParameter(max_length=100)] = "",
    ) -> list[ms.DirectoryEntry]:
        """Active people by name, reading (kana), e-mail or employee number (at most 20), to invite."""
        return await queries.directory(db, q, request_locale(request))

    @get("/freebusy", operation_id="meetingFreeBusy")
    async def freebusy(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        users: Annotated[str, QueryParameter(max_length=600)],
        start: Annotated[datetime, QueryParameter(name="from")],
        end: Annotated[datetime, QueryParameter(name="to")],
        exclude: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
    ) -> ms.FreeBusyRead:
        """Busy times (other meetings) and approved telework (a hint: can join online), at most 31 days."""
        return await queries.freebusy(
            db,
            cfg(request),
            user_ids(users),
            meetings.local(start, "mt_window"),
            meetings.local(end, "mt_window"),
            exclude_meeting=exclude,
        )

    @get("/{meeting_id:int}", operation_id="getMeeting")
    async def get_one(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, meeting_id: Id
    ) -> ms.MeetingRead:
        """One meeting with attendees and answers (organizer and invited people only)."""
        return await queries.get_meeting(db, request.user, meeting_id, settings.base_url)

    @put("/{meeting_id:int}", operation_id="updateMeeting")
    async def update(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        data: JSONBody[ms.MeetingUpdate],
    ) -> ms.MeetingRead:
        """Change a meeting (organizer, co-hosts); send the sequence it was based on: stale gives 409."""
        await meetings.update_meeting(
            db, settings, request.user, meeting_id, data, cfg(request).now(), ip=client_ip(request)
        )
        return await queries.get_meeting(db, request.user, meeting_id, settings.base_url)

    @post("/{meeting_id:int}/cancel", operation_id="cancelMeeting", status_code=200)
    async def cancel(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        data: JSONBody[ms.CancelIn],
    ) -> ms.MeetingRead:
        """Cancel the whole meeting or series (organizer only); everyone invited is told."""
        await meetings.cancel_meeting(
            db,
            settings,
            request.user,
            meeting_id,
            cfg(request).now(),
            based_on=data.sequence,
            ip=client_ip(request),
        )
        return await queries.get_meeting(db, request.user, meeting_id, settings.base_url)

    @post(
        "/{meeting_id:int}/occurrences/{recurrence_id:str}/move",
        operation_id="moveMeetingOccurrence",
        status_code=200,
    )
    async def move(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        recurrence_id: Rid,
        data: JSONBody[ms.OccurrenceMoveIn],
    ) -> ms.MeetingRead:
        """Move one occurrence of a series (its original start in UTC, 20270308T010000Z, names it)."""
        await meetings.move_occurrence(
            db,
            settings,
            request.user,
            meeting_id,
            parse_rid(recurrence_id),
            data,
            cfg(request).now(),
            ip=client_ip(request),
        )
        return await queries.get_meeting(db, request.user, meeting_id, settings.base_url)

    @post(
        "/{meeting_id:int}/occurrences/{recurrence_id:str}/cancel",
        operation_id="cancelMeetingOccurrence",
        status_code=200,
    )
    async def cancel_occurrence(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        recurrence_id: Rid,
        data: JSONBody[ms.CancelIn],
    ) -> ms.MeetingRead:
        """Cancel one occurrence of a series; the rest stay."""
        await meetings.cancel_occurrence(
            db,
            settings,
            request.user,
            meeting_id,
            parse_rid(recurrence_id),
            cfg(request).now(),
            based_on=data.sequence,
            ip=client_ip(request),
        )
        return await queries.get_meeting(db, request.user, meeting_id, settings.base_url)

    @post("/{meeting_id:int}/respond", operation_id="respondToMeeting", status_code=200)
    async def respond(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        meeting_id: Id,
        data: JSONBody[ms.RespondIn],
    ) -> ms.MeetingRead:
        """Answer an invitation: ACCEPTED (yes), DECLINED (no) or TENTATIVE (maybe)."""
        await meetings.respond(
            db,
            request.user,
            meeting_id,
            data.answer,
            cfg(request).now(),
            ip=client_ip(request),
            based_on=data.sequence,
        )
        return await queries.get_meeting(db, request.user, meeting_id, settings.base_url)
