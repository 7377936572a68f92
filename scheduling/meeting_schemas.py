"""Input and output shapes of the meetings API (never table objects)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

Id = Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]
Freq = Literal["", "weekly", "monthly"]
DayCode = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
Answer = Literal["ACCEPTED", "DECLINED", "TENTATIVE"]
Email = Annotated[str, msgspec.Meta(max_length=254)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error."""


class MeetingIn(Strict, kw_only=True):
    """A new meeting. Times without an offset are Asia/Tokyo wall time.

    A series is described by fields, never by a raw RRULE: freq weekly (on ``byday``, default the start's
    weekday) or monthly (``monthly_by`` monthday | weekday), every ``interval`` weeks/months, ending after
    ``count`` meetings (2–100) or on ``until`` (within two years).
    """

    title: Annotated[str, msgspec.Meta(max_length=200)]
    agenda: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    start: datetime
    end: datetime
    attendee_ids: Annotated[list[Id], msgspec.Meta(max_length=200)] = msgspec.field(default_factory=list)
    cohost_ids: Annotated[list[Id], msgspec.Meta(max_length=200)] = msgspec.field(default_factory=list)
    emails: Annotated[list[Email], msgspec.Meta(max_length=200)] = msgspec.field(default_factory=list)
    lobby: bool = False
    freq: Freq = ""
    interval: Annotated[int, msgspec.Meta(ge=1, le=12)] = 1
    byday: Annotated[list[DayCode], msgspec.Meta(max_length=7)] = msgspec.field(default_factory=list)
    monthly_by: Literal["monthday", "weekday"] = "monthday"
    count: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    until: date | None = None


class MeetingUpdate(MeetingIn, kw_only=True):
    """The whole meeting as it should now be, and the ``sequence`` the edit was based on (stale: 409)."""

    sequence: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)]


class CancelIn(Strict, kw_only=True):
    sequence: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)] | None = None


class OccurrenceMoveIn(Strict, kw_only=True):
    """The new start and end of one occurrence (Asia/Tokyo wall time without an offset)."""

    start: datetime
    end: datetime
    sequence: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)] | None = None


class RespondIn(Strict, kw_only=True):
    answer: Answer
    sequence: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)] | None = None  # the version answered


class AttendeeRead(msgspec.Struct, kw_only=True):
    id: int
    user_id: int | None
    name: str
    email: str
    role: str
    partstat: str
    responded_at: datetime | None


class OccurrenceRead(msgspec.Struct, kw_only=True):
    recurrence_id: str  # original start, 20270308T010000Z: the key for move/cancel
    start: datetime
    end: datetime
    moved: bool
    cancelled: bool


class MeetingRead(msgspec.Struct, kw_only=True):
    id: int
    uid: str
    room_id: str
    join_url: str
    organizer_id: int
    organizer_name: str
    title: str
    agenda: str
    start: datetime
    end: datetime
    tz: str
    rrule: str
    freq: str
    interval: int
    byday: list[str]
    monthly_by: str
    count: int | None
    until: date | None
    series_end: datetime | None
    sequence: int
    status: str
    lobby: bool
    attendees: list[AttendeeRead]
    exceptions: list[OccurrenceRead]  # moved or cancelled occurrences
    my_role: str  # organizer, cohost, attendee
    my_answer: str | None  # my partstat when invited
    can_edit: bool
    can_cancel: bool


class MyOccurrenceRead(msgspec.Struct, kw_only=True):
    meeting_id: int
    title: str
    recurrence_id: str
    start: datetime
    end: datetime
    moved: bool
    series: bool
    room_id: str
    join_url: str
    organizer_name: str
    my_role: str
    my_answer: str | None


class MeetingList(msgspec.Struct, kw_only=True):
    items: list[MyOccurrenceRead]
    total: int
    page: int
    per_page: int


class DirectoryEntry(msgspec.Struct, kw_only=True):
    id: int
    name: str
    kana: str
    email: str
    employee_number: str
    unit: str


class BusyBlock(msgspec.Struct, kw_only=True):
    start: datetime
    end: datetime
    kind: Literal["meeting", "telework"]  # telework: a hint (can join online), not busy
    part: str = ""  # telework: full, am, pm
    tentative: bool = False  # a meeting not (yet) accepted


class FreeBusyUser(msgspec.Struct, kw_only=True):
    user_id: int
    name: str
    blocks: list[BusyBlock]


class FreeBusyRead(msgspec.Struct, kw_only=True):
    start: datetime
    end: datetime
    users: list[FreeBusyUser]
