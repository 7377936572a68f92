"""Pulse surveys. The identity side (invitations) and the answer side (responses) never link.

A response carries no user id, no invitation id and no time finer than a day; its primary key is a
random UUID so row ids do not betray order. The unit stored with it is the person's unit when the
round opened, copied from the invitation when the answer is submitted.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import utcnow

QUESTION_KINDS = ("likert", "enps", "single", "multi", "rating", "text")
RECURRENCES = ("none", "weekly", "monthly", "quarterly")


def new_uuid() -> str:
    return str(uuid.uuid4())


class Survey(SQLModel, table=True):
    __tablename__ = "survey"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    title_en: str = Field(default="", max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    archived: bool = Field(default=False)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Question(SQLModel, table=True):
    """A question of the survey as currently edited; rounds keep their own frozen copy."""

    __tablename__ = "survey_question"

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    position: int = Field(default=0)
    kind: str = Field(max_length=10)
    text: str = Field(max_length=500)
    text_en: str = Field(default="", max_length=500)
    options_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    required: bool = Field(default=True)
    max_length: int = Field(default=1000)


class Round(SQLModel, table=True):
    """One asking of a survey: its audience, its window, and the questions exactly as asked."""

    __tablename__ = "survey_round"

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    series_id: str = Field(default_factory=new_uuid, max_length=36, index=True)
    title: str = Field(max_length=200)
    opens_at: datetime
    closes_at: datetime
    recurrence: str = Field(default="none", max_length=10)
    audience_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    questions_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    status: str = Field(default="scheduled", max_length=10, index=True)  # scheduled, open, closed
    max_reminders: int = Field(default=2)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Invitation(SQLModel, table=True):
    """Who was asked, and whether they answered: never which answer is theirs."""

    __tablename__ = "survey_invitation"
    __table_args__ = (UniqueConstraint("round_id", "user_id", name="uq_survey_invitation"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="survey_round.id", index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")  # unit when the round opened
    answered: bool = Field(default=False)
    reminders_sent: int = Field(default=0)


class Response(SQLModel, table=True):
    """An anonymous answer sheet: round, unit snapshot, day, answers. Nothing else, by design."""

    __tablename__ = "survey_response"

    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    round_id: int = Field(foreign_key="survey_round.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")
    day: date
    answers_json: str = Field(sa_column=Column(Text, nullable=False))


class SurveySettings(SQLModel, table=True):
    """Anonymity thresholds, set by HR; one row."""

    __tablename__ = "survey_settings"

    id: int | None = Field(default=None, primary_key=True)
    k_min: int = Field(default=5)
    k_text: int = Field(default=10)
    min_invited_for_rate: int = Field(default=5)
    updated_at: datetime = Field(default_factory=utcnow)
