"""Input and output shapes of the survey API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

Kind = Literal["likert", "enps", "single", "multi", "rating", "text"]
Recurrence = Literal["none", "weekly", "monthly", "quarterly"]
Role = Literal["employee", "unit_head", "it_admin", "hr_admin", "auditor", "sysadmin"]
EmploymentType = Literal["regular", "fixed_term", "part_time", "reappointed"]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error."""


class QuestionIn(Strict, kw_only=True):
    kind: Kind
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    text_en: Annotated[str, msgspec.Meta(max_length=500)] = ""
    options: Annotated[list[Label], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    required: bool = True
    max_length: Annotated[int, msgspec.Meta(ge=10, le=5000)] = 1000


class SurveyIn(Strict, kw_only=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    title_en: Annotated[str, msgspec.Meta(max_length=200)] = ""
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    questions: Annotated[list[QuestionIn], msgspec.Meta(min_length=1, max_length=50)]


class QuestionRead(msgspec.Struct, kw_only=True):
    id: int
    kind: Kind
    text: str
    text_en: str
    options: list[str]
    required: bool
    max_length: int


class RoundBrief(msgspec.Struct, kw_only=True):
    id: int
    title: str
    opens_at: datetime
    closes_at: datetime
    status: str
    recurrence: Recurrence


class SurveyRead(msgspec.Struct, kw_only=True):
    id: int
    title: str
    title_en: str
    description: str
    archived: bool
    questions: list[QuestionRead]
    rounds: list[RoundBrief]


class SurveyList(msgspec.Struct, kw_only=True):
    items: list[SurveyRead]
    total: int


class Audience(Strict, kw_only=True):
    unit_codes: Annotated[list[Code], msgspec.Meta(max_length=500)] = msgspec.field(default_factory=list)
    roles: Annotated[list[Role], msgspec.Meta(max_length=6)] = msgspec.field(default_factory=list)
    employment_types: Annotated[list[EmploymentType], msgspec.Meta(max_length=4)] = msgspec.field(
        default_factory=list
    )


class RoundIn(Strict, kw_only=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    opens_at: datetime
    closes_at: datetime
    recurrence: Recurrence = "none"
    audience: Audience = msgspec.field(default_factory=Audience)
    max_reminders: Annotated[int, msgspec.Meta(ge=0, le=5)] = 2


class RoundRead(msgspec.Struct, kw_only=True):
    id: int
    survey_id: int
    survey_title: str
    title: str
    opens_at: datetime
    closes_at: datetime
    status: str
    recurrence: Recurrence
    invited: int
    questions: list[QuestionRead]


class MyRound(msgspec.Struct, kw_only=True):
    id: int
    survey_title: str
    title: str
    closes_at: datetime
    answered: bool


class AnswersIn(Strict, kw_only=True):
    answers: Annotated[dict[str, Any], msgspec.Meta(max_length=50)]


class SettingsIn(Strict, kw_only=True):
    k_min: Annotated[int, msgspec.Meta(ge=3, le=100)]
    k_text: Annotated[int, msgspec.Meta(ge=3, le=100)]


class SettingsRead(msgspec.Struct, kw_only=True):
    k_min: int
    k_text: int
    min_invited_for_rate: int


class Bar(msgspec.Struct, kw_only=True):
    label: str
    count: int


class QuestionResult(msgspec.Struct, kw_only=True):
    id: int
    kind: Kind
    text: str
    text_en: str = ""
    n: int | None
    hidden: bool
    distribution: list[Bar] | None = None
    mean: float | None = None
    favourable: float | None = None
    enps: float | None = None
    comments: list[str] | None = None


class UnitSlice(msgspec.Struct, kw_only=True):
    unit_id: int | None  # None: people directly in the parent unit, or in no unit
    name: str
    name_en: str = ""
    n: int | None
    hidden: bool
    participation: float | None = None
    favourable: float | None = None


class TrendPoint(msgspec.Struct, kw_only=True):
    round_id: int
    title: str
    day: date
    n: int | None
    favourable: float | None
    participation: float | None


class RoundResults(msgspec.Struct, kw_only=True):
    round: RoundBrief
    unit_id: int | None
    k_min: int
    k_text: int
    responses: int | None
    hidden: bool
    participation: float | None
    questions: list[QuestionResult]
    units: list[UnitSlice]
    trend: list[TrendPoint]
