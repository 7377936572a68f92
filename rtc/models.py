"""What rtc keeps in the database: who was in which room and when (the meeting usage figures).

Live state (rosters, lobby, which worker holds a room) is in Redis or process memory; only attendance is
durable, written when someone joins and closed when they leave. A row left open by a worker that died is
closed at its last heartbeat (``seen_at``), so a crash costs at most a heartbeat's worth of minutes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import utcnow


class RoomAttendance(SQLModel, table=True):
    """One participant's stay in one room: from joining to leaving (or the worker's last heartbeat)."""

    __tablename__ = "rtc_attendance"
    __table_args__ = (
        Index("ix_rtc_attendance_joined", "joined_at"),
        Index("ix_rtc_attendance_room", "room_id"),
        Index("ix_rtc_attendance_left", "left_at"),  # a month: stays ended in it, or still open
    )

    id: int | None = Field(default=None, primary_key=True)
    room_id: str = Field(max_length=32)
    meeting_id: int | None = Field(default=None, foreign_key="meeting.id")  # a scheduled meeting's room
    user_id: int | None = Field(default=None, foreign_key="app_user.id")  # None: a guest from outside
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")  # the person's unit at joining
    guest: bool = Field(default=False)
    worker: str = Field(default="", max_length=64)
    joined_at: datetime = Field(default_factory=utcnow)
    left_at: datetime | None = None
    seen_at: datetime = Field(default_factory=utcnow)
