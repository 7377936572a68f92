"""Telework: the working calendar, policies as data, requests and their per-day items, approvals, reports.

A request (`TeleworkRequest`) is what the person submitted: one day, a range or a weekly pattern.
It expands into `TeleworkDay` rows, one per working day, each decided, cancelled and reported on its
own. History is never rewritten: a policy change is a new `Policy` version; decisions and comments
are `ApprovalStep` rows; every state change also writes an audit event in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.db import utcnow

PARTS = ("full", "am", "pm")
PLACES = ("home", "satellite", "other")
KINDS = ("single", "range", "pattern")
STATES = ("submitted", "approved", "rejected", "withdrawn", "expired", "cancelled")
ACTIVE_STATES = ("submitted", "approved")


class Closure(SQLModel, table=True):
    """A day the city office is closed, besides weekends, national holidays and the year-end closure."""

    __tablename__ = "telework_closure"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(unique=True, index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=100)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Policy(SQLModel, table=True):
    """One version of a unit's telework rules, valid from a day until the next version starts.

    A unit without a version of its own follows its nearest ancestor's. Empty limits mean 'no limit'.
    """

    __tablename__ = "telework_policy"
    __table_args__ = (UniqueConstraint("unit_id", "valid_from", name="uq_telework_policy_version"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="org_unit.id", index=True)
    valid_from: date
    valid_to: date | None = None  # inclusive; set when a later version starts
    weekly_cap: float | None = None  # days per week (a half day counts 0.5)
    monthly_cap: float | None = None
    notice_days: int | None = None  # working days are not counted: calendar days before the day
    notice_cutoff: str = Field(default="17:00", max_length=5)  # on the deadline day, until this time
    max_consecutive: int | None = None  # consecutive working days
    min_onsite_count: int | None = None  # people on site in the unit each working day
    min_onsite_ratio: float | None = None  # share of the unit's staff on site (0–1)
    eligible_types: str = Field(default="", max_length=200)  # comma-separated employment types; empty: all
    blackout_dates: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # ISO, comma
    require_reports: bool = Field(default=True)
    note: str = Field(default="", max_length=500)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)


class EmergencyPeriod(SQLModel, table=True):
    """Emergency mode (disaster, infection): caps, notice and consecutive-day limits are lifted."""

    __tablename__ = "telework_emergency"

    id: int | None = Field(default=None, primary_key=True)
    starts: date
    ends: date
    reason: str = Field(max_length=500)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")  # None: the whole city
    ended_early_at: datetime | None = None
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)


class TeleworkRequest(SQLModel, table=True):
    """What the person asked for, as submitted; its days carry the states."""

    __tablename__ = "telework_request"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")  # the requester's unit then
    kind: str = Field(max_length=10)  # single, range, pattern
    first_day: date
    last_day: date
    weekdays: str = Field(default="", max_length=20)  # pattern: ISO weekdays "1,4"
    part: str = Field(default="full", max_length=4)
    place: str = Field(default="home", max_length=10)
    place_note: str = Field(default="", max_length=200)
    plan: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    contact: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class TeleworkDay(SQLModel, table=True):
    """One day (or half day) of a request: decided, cancelled, reported and counted on its own."""

    __tablename__ = "telework_day"
    __table_args__ = (
        # A person holds at most one live booking per day and part; full vs half overlap is a service rule.
        Index(
            "uq_telework_day_active",
            "user_id",
            "day",
            "part",
            unique=True,
            sqlite_where=text("state IN ('submitted', 'approved')"),
            postgresql_where=text("state IN ('submitted', 'approved')"),
        ),
        Index("ix_telework_day_unit_day", "unit_id", "day"),
        Index("ix_telework_day_approver_state", "approver_id", "state"),
        Index("ix_telework_day_user_day", "user_id", "day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="telework_request.id", index=True)
    user_id: int = Field(foreign_key="app_user.id")
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")
    day: date
    part: str = Field(default="full", max_length=4)
    state: str = Field(default="submitted", max_length=10)
    approver_id: int | None = Field(default=None, foreign_key="app_user.id")  # whose inbox it is in
    escalated_from_id: int | None = Field(default=None, foreign_key="app_user.id")
    warnings: str = Field(default="", max_length=500)  # soft rules broken when submitted, comma-separated
    decided_by: int | None = Field(default=None, foreign_key="app_user.id")
    acting_for: int | None = Field(default=None, foreign_key="app_user.id")  # delegated approval
    decided_at: datetime | None = None
    override_reason: str = Field(default="", max_length=500)
    reminded: bool = Field(default=False)
    sequence: int = Field(default=0)  # iCalendar SEQUENCE: bumped on every change
    updated_at: datetime = Field(default_factory=utcnow)


class ApprovalStep(SQLModel, table=True):
    """A decision, comment, escalation or cancellation on one day, in order."""

    __tablename__ = "telework_approval_step"

    id: int | None = Field(default=None, primary_key=True)
    day_id: int = Field(foreign_key="telework_day.id", index=True)
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    acting_for: int | None = Field(default=None, foreign_key="app_user.id")
    action: str = Field(max_length=12)  # approve, reject, comment, escalate, withdraw, cancel, expire
    comment: str = Field(default="", max_length=1000)
    at: datetime = Field(default_factory=utcnow)


class Delegation(SQLModel, table=True):
    """代理承認: a unit head lets someone decide in their place for a period, optionally for one subtree."""

    __tablename__ = "telework_delegation"

    id: int | None = Field(default=None, primary_key=True)
    from_user_id: int = Field(foreign_key="app_user.id", index=True)
    to_user_id: int = Field(foreign_key="app_user.id", index=True)
    starts: date
    ends: date
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")  # None: all the head's units
    revoked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WorkReport(SQLModel, table=True):
    """業務開始・終了報告: start and end of work on an approved telework day."""

    __tablename__ = "telework_report"

    id: int | None = Field(default=None, primary_key=True)
    day_id: int = Field(foreign_key="telework_day.id", unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = Field(default="", max_length=2000)
    updated_at: datetime = Field(default_factory=utcnow)


class Notification(SQLModel, table=True):
    """An in-app message (the same event also goes out by e-mail through the outbox)."""

    __tablename__ = "telework_notification"
    __table_args__ = (Index("ix_telework_notification_user_read", "user_id", "read_at"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id")
    key: str = Field(max_length=60)
    params_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    link: str = Field(default="", max_length=200)
    read_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class CalendarFeed(SQLModel, table=True):
    """A secret, revocable iCalendar address; only the token's SHA-256 is stored."""

    __tablename__ = "telework_calendar_feed"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    kind: str = Field(default="personal", max_length=10)  # personal, unit
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")
    token_hash: str = Field(max_length=64, unique=True)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class IndicatorMonth(SQLModel, table=True):
    """リモートワーク実施回数（月間）: one month as closed; a correction is a new revision, never an edit."""

    __tablename__ = "indicator_month"
    __table_args__ = (UniqueConstraint("month", "revision", name="uq_indicator_month_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    month: date = Field(index=True)  # first day of the month
    revision: int = Field(default=1)
    count: int
    staff: int  # distinct people with at least one counted instance
    headcount: int  # active staff when closed (for the share who teleworked)
    rule_version: int
    breakdown_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    reason: str = Field(default="", max_length=500)  # why a revision was made
    closed_by: int | None = Field(default=None, foreign_key="app_user.id")  # None: the monthly job or CLI
    closed_at: datetime = Field(default_factory=utcnow)


class IndicatorTarget(SQLModel, table=True):
    """The monthly target and the baseline shown on the dashboard, per fiscal year (April–March)."""

    __tablename__ = "indicator_target"

    fiscal_year: int = Field(primary_key=True)
    monthly_target: int
    baseline: int
    note: str = Field(default="", max_length=500)
    updated_by: int | None = Field(default=None, foreign_key="app_user.id")
    updated_at: datetime = Field(default_factory=utcnow)


MEETING_STATUSES = ("scheduled", "cancelled")
ATTENDEE_ROLES = ("attendee", "cohost")
PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE")


class Meeting(SQLModel, table=True):
    """A scheduled online meeting (one event or a weekly/monthly series) and its room.

    ``uid`` is the iCalendar UID and never changes; ``sequence`` is bumped on every change that is sent
    to attendees (RFC 5546). Times are stored in UTC; ``tz`` is the zone they were entered in (Asia/Tokyo).
    ``rrule`` is an RFC 5545 RRULE value (FREQ=WEEKLY or MONTHLY, with COUNT or UNTIL) or empty for one event.
    """

    __tablename__ = "meeting"
    __table_args__ = (Index("ix_meeting_start", "start_at"),)

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=120, unique=True)
    room_id: str = Field(max_length=32, unique=True)  # the rtc room's id: /rooms/<room_id>
    organizer_id: int = Field(foreign_key="app_user.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")  # organizer's unit when created
    title: str = Field(max_length=200)
    agenda: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    start_at: datetime
    end_at: datetime
    tz: str = Field(default="Asia/Tokyo", max_length=40)
    rrule: str = Field(default="", max_length=200)
    series_end_at: datetime | None = None  # end of the last occurrence (None: one event, or unbounded)
    sequence: int = Field(default=0)
    status: str = Field(default="scheduled", max_length=10)
    lobby: bool = Field(default=False)  # hold everyone but the hosts in the lobby (guests always wait)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class MeetingAttendee(SQLModel, table=True):
    """Someone invited: a person from the directory (``user_id``) or an outside e-mail address."""

    __tablename__ = "meeting_attendee"
    __table_args__ = (
        UniqueConstraint("meeting_id", "email", name="uq_meeting_attendee_email"),
        Index("ix_meeting_attendee_user", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    email: str = Field(max_length=254)
    name: str = Field(default="", max_length=100)
    role: str = Field(default="attendee", max_length=10)
    partstat: str = Field(default="NEEDS-ACTION", max_length=12)
    responded_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class MeetingOccurrence(SQLModel, table=True):
    """An exception to a series: one occurrence moved (new start/end) or cancelled.

    ``recurrence_id`` is the occurrence's original start (UTC), as RECURRENCE-ID identifies it.
    """

    __tablename__ = "meeting_occurrence"
    __table_args__ = (UniqueConstraint("meeting_id", "recurrence_id", name="uq_meeting_occurrence"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    recurrence_id: datetime
    start_at: datetime | None = None
    end_at: datetime | None = None
    cancelled: bool = Field(default=False)
    sequence: int = Field(default=0)
    updated_at: datetime = Field(default_factory=utcnow)
