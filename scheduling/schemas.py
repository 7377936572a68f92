"""Input and output shapes of the telework API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

Part = Literal["full", "am", "pm"]
Place = Literal["home", "satellite", "other"]
Kind = Literal["single", "range", "pattern"]
Decision = Literal["approve", "reject"]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
Reason = Annotated[str, msgspec.Meta(max_length=500)]
Comment = Annotated[str, msgspec.Meta(max_length=1000)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error."""


class RequestIn(Strict, kw_only=True):
    kind: Kind = "single"
    first_day: date
    last_day: date | None = None  # range and pattern
    weekdays: Annotated[list[Weekday], msgspec.Meta(max_length=7)] = msgspec.field(default_factory=list)
    part: Part = "full"
    place: Place = "home"
    place_note: Text200 = ""
    plan: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    contact: Text200 = ""


class ViolationRead(msgspec.Struct, kw_only=True):
    code: str
    hard: bool
    message: str
    params: dict[str, Any]


class PreviewDay(msgspec.Struct, kw_only=True):
    day: date
    part: Part
    violations: list[ViolationRead]


class PreviewRead(msgspec.Struct, kw_only=True):
    days: list[PreviewDay]
    skipped: list[dict[str, str]]  # non-working days left out of a range or pattern, with their names
    refused: bool  # a hard rule is broken: submitting would be refused
    warnings: int  # soft rules broken: the approver decides
    remaining: list[dict[str, Any]]
    emergency: bool
    approver: str | None


class DayRead(msgspec.Struct, kw_only=True):
    id: int
    request_id: int
    user_id: int
    user_name: str
    unit_id: int | None
    unit_name: str
    day: date
    part: Part
    state: str
    warnings: list[str]
    approver_id: int | None
    approver_name: str
    decided_by_name: str
    acting_for_name: str
    decided_at: datetime | None
    override_reason: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""


class RequestRead(msgspec.Struct, kw_only=True):
    id: int
    user_id: int
    kind: Kind
    first_day: date
    last_day: date
    weekdays: list[int]
    part: Part
    place: Place
    place_note: str
    plan: str
    contact: str
    created_at: datetime
    days: list[DayRead]


class StepRead(msgspec.Struct, kw_only=True):
    action: str
    actor_name: str
    acting_for_name: str
    comment: str
    at: datetime


class DecisionIn(Strict, kw_only=True):
    decision: Decision
    comment: Comment = ""
    override_reason: Reason = ""


class BulkDecisionIn(Strict, kw_only=True):
    day_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=1000)]
    decision: Decision
    comment: Comment = ""
    override_reason: Reason = ""


class DecisionResult(msgspec.Struct, kw_only=True):
    decided: int
    state: str
    day_ids: list[int]


class CommentIn(Strict, kw_only=True):
    comment: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class InboxItem(msgspec.Struct, kw_only=True):
    day: DayRead
    place: str  # home, satellite, other
    place_note: str
    plan: str
    acting_for_name: str  # when the item is in the inbox through a delegation
    onsite: float | None
    members: int
    minimum: int | None
    would_break_coverage: bool


class InboxRead(msgspec.Struct, kw_only=True):
    items: list[InboxItem]
    total: int
    page: int
    per_page: int


class CoverageRow(msgspec.Struct, kw_only=True):
    user_id: int
    name: str
    days: dict[str, str]  # ISO day → part or "" ; pending shown with a '?' suffix


class CoverageRead(msgspec.Struct, kw_only=True):
    unit_id: int
    unit_name: str
    month: str
    days: list[date]
    working: dict[str, bool]
    day_off_names: dict[str, str]
    rows: list[CoverageRow]
    onsite: dict[str, float]
    minimum: dict[str, int | None]
    short: list[date]
    members: int


class DelegationIn(Strict, kw_only=True):
    to_user_id: Id
    starts: date
    ends: date
    unit_id: Id | None = None


class DelegationRead(msgspec.Struct, kw_only=True):
    id: int
    from_user_id: int
    from_name: str
    to_user_id: int
    to_name: str
    starts: date
    ends: date
    unit_id: int | None
    unit_name: str
    revoked: bool


class ReportIn(Strict, kw_only=True):
    at: datetime | None = None  # default: now
    summary: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class PolicyIn(Strict, kw_only=True):
    unit_id: Id
    valid_from: date
    weekly_cap: Annotated[float, msgspec.Meta(ge=0, le=7)] | None = None
    monthly_cap: Annotated[float, msgspec.Meta(ge=0, le=31)] | None = None
    notice_days: Annotated[int, msgspec.Meta(ge=0, le=60)] | None = None
    notice_cutoff: Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "17:00"
    max_consecutive: Annotated[int, msgspec.Meta(ge=1, le=31)] | None = None
    min_onsite_count: Annotated[int, msgspec.Meta(ge=0, le=10000)] | None = None
    min_onsite_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    eligible_types: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=20)]], msgspec.Meta(max_length=10)
    ] = msgspec.field(default_factory=list)
    blackout_dates: Annotated[list[date], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    require_reports: bool = True
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class PolicyRead(msgspec.Struct, kw_only=True):
    id: int
    unit_id: int
    unit_name: str
    valid_from: date
    valid_to: date | None
    weekly_cap: float | None
    monthly_cap: float | None
    notice_days: int | None
    notice_cutoff: str
    max_consecutive: int | None
    min_onsite_count: int | None
    min_onsite_ratio: float | None
    eligible_types: list[str]
    blackout_dates: list[date]
    require_reports: bool
    note: str
    inherited_from: int | None = None


class ClosureIn(Strict, kw_only=True):
    day: date
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    name_en: Annotated[str, msgspec.Meta(max_length=100)] = ""


class EmergencyIn(Strict, kw_only=True):
    starts: date
    ends: date
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    unit_id: Id | None = None


class CalendarDayRead(msgspec.Struct, kw_only=True):
    day: date
    working: bool
    kind: str
    name: str


class NotificationRead(msgspec.Struct, kw_only=True):
    id: int
    key: str
    message: str
    link: str
    created_at: datetime
    read: bool


class FeedRead(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    unit_id: int | None
    url: str | None  # only when just created: the token is not stored
    created_at: datetime
    last_used_at: datetime | None


class FeedIn(Strict, kw_only=True):
    kind: Literal["personal", "unit"] = "personal"
    unit_id: Id | None = None
