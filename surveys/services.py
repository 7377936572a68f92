"""Surveys, rounds, invitations and anonymous answers. No HTTP here."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import audit
from app.db import utcnow
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.security import Principal
from auth.models import OrgUnit, RoleAssignment, User
from auth.services import subtree_ids
from surveys import schemas
from surveys.models import Invitation, Question, Response, Round, Survey, SurveySettings

TOKYO = ZoneInfo("Asia/Tokyo")
MAX_ROUND_DAYS = 90
REMINDER_DAYS = (3, 5, 7, 9, 11)
LIKERT_LABELS = ["とてもそう思わない", "そう思わない", "どちらともいえない", "そう思う", "とてもそう思う"]

BUILTIN_TEMPLATE: dict[str, Any] = {
    "title": "リモートワークに関するアンケート",
    "title_en": "Remote work survey",
    "description": "回答は匿名です。所属・回答内容から個人が特定されないよう、少人数の集計は表示しません。",
    "questions": [
        {
            "kind": "likert",
            "text": "リモートワークに満足している",
            "text_en": "I am satisfied with remote work",
            "options": LIKERT_LABELS,
        },
        {
            "kind": "likert",
            "text": "リモートワークの日も仕事の成果を上げられている",
            "text_en": "I get my work done on remote days",
            "options": LIKERT_LABELS,
        },
        {
            "kind": "likert",
            "text": "同僚や上司との連絡・相談に困っていない",
            "text_en": "Communicating with colleagues and my manager works well",
            "options": LIKERT_LABELS,
        },
        {
            "kind": "multi",
            "text": "困ったことがあれば選んでください（複数可）",
            "text_en": "Which problems did you have? (choose any)",
            "options": [
                "パソコンの性能",
                "通信回線・ポケットWi-Fi",
                "庁内システムへの接続（VPN）",
                "Web会議",
                "書類・押印",
                "特になし",
            ],
            "required": False,
        },
        {
            "kind": "enps",
            "text": "リモートワークを同僚にすすめたいと思う度合い（0〜10）",
            "text_en": "How likely are you to recommend remote work to a colleague? (0–10)",
        },
        {
            "kind": "text",
            "text": "ご意見・ご要望（任意）",
            "text_en": "Comments (optional)",
            "required": False,
            "max_length": 1000,
        },
    ],
}


def tokyo_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(TOKYO).date()


def question_read(q: Question) -> schemas.QuestionRead:
    return schemas.QuestionRead(
        id=q.id or 0,
        kind=q.kind,  # type: ignore[arg-type]
        text=q.text,
        text_en=q.text_en,
        options=json.loads(q.options_json),
        required=q.required,
        max_length=q.max_length,
    )


def frozen_questions(rnd: Round) -> list[schemas.QuestionRead]:
    return [schemas.QuestionRead(**q) for q in json.loads(rnd.questions_json)]


def _check_questions(questions: list[schemas.QuestionIn]) -> None:
    for i, q in enumerate(questions, start=1):
        if q.kind in ("single", "multi") and len(q.options) < 2:
            raise DomainError("survey.options_needed", n=i, status_code=422)
        if q.kind == "likert" and q.options and len(q.options) != 5:
            raise DomainError("survey.likert_labels", n=i, status_code=422)


async def create_survey(db: AsyncSession, actor: Principal, data: schemas.SurveyIn) -> Survey:
    """A survey and its questions; rounds later freeze a copy of them."""
    _check_questions(data.questions)
    survey = Survey(
        title=data.title, title_en=data.title_en, description=data.description, created_by=actor.id
    )
    db.add(survey)
    await db.flush()
    await _replace_questions(db, survey, data.questions)
    audit.record(
        db,
        "survey.create",
        actor_id=actor.id,
        entity_type="survey",
        entity_id=survey.id,
        after={"title": survey.title, "questions": len(data.questions)},
    )
    return survey


async def create_from_template(db: AsyncSession, actor: Principal) -> Survey:
    """The built-in Japanese remote-work survey, ready to edit."""
    return await create_survey(db, actor, _template())


def _template() -> schemas.SurveyIn:
    import msgspec

    return msgspec.convert(BUILTIN_TEMPLATE, schemas.SurveyIn)


async def _replace_questions(db: AsyncSession, survey: Survey, questions: list[schemas.QuestionIn]) -> None:
    existing = list(
        (await db.execute(select(Question).where(col(Question.survey_id) == survey.id))).scalars()
    )
    for old in existing:
        await db.delete(old)
    await db.flush()
    for position, q in enumerate(questions):
        options = q.options or (LIKERT_LABELS if q.kind == "likert" else [])
        db.add(
            Question(
                survey_id=survey.id or 0,
                position=position,
                kind=q.kind,
                text=q.text,
                text_en=q.text_en,
                options_json=json.dumps(options, ensure_ascii=False),
                required=q.required,
                max_length=q.max_length,
            )
        )
    await db.flush()


async def update_survey(db: AsyncSession, actor: Principal, survey_id: int, data: schemas.SurveyIn) -> Survey:
    """Edit title and questions; rounds already created keep the questions they were asked with."""
    survey = await get_survey(db, survey_id)
    _check_questions(data.questions)
    before = {"title": survey.title}
    survey.title, survey.title_en, survey.description = data.title, data.title_en, data.description
    await _replace_questions(db, survey, data.questions)
    audit.record(
        db,
        "survey.update",
        actor_id=actor.id,
        entity_type="survey",
        entity_id=survey.id,
        before=before,
        after={"title": survey.title, "questions": len(data.questions)},
    )
    return survey


async def questions_snapshot(db: AsyncSession, survey_id: int) -> str:
    """The survey's questions as they are now, frozen into a round so its answers stay comparable."""
    rows = await db.execute(
        select(Question).where(col(Question.survey_id) == survey_id).order_by(col(Question.position))
    )
    return json.dumps([msgspec_to_dict(question_read(q)) for q in rows.scalars()], ensure_ascii=False)


async def get_survey(db: AsyncSession, survey_id: int) -> Survey:
    survey = await db.get(Survey, survey_id)
    if survey is None:
        raise NotFound("survey.not_found")
    return survey


async def survey_read(db: AsyncSession, survey: Survey) -> schemas.SurveyRead:
    qs = await db.execute(
        select(Question).where(col(Question.survey_id) == survey.id).order_by(col(Question.position))
    )
    rounds = await db.execute(
        select(Round).where(col(Round.survey_id) == survey.id).order_by(col(Round.opens_at))
    )
    return schemas.SurveyRead(
        id=survey.id or 0,
        title=survey.title,
        title_en=survey.title_en,
        description=survey.description,
        archived=survey.archived,
        questions=[question_read(q) for q in qs.scalars()],
        rounds=[round_brief(r) for r in rounds.scalars()],
    )


def round_brief(r: Round) -> schemas.RoundBrief:
    return schemas.RoundBrief(
        id=r.id or 0,
        title=r.title,
        opens_at=r.opens_at,
        closes_at=r.closes_at,
        status=r.status,
        recurrence=r.recurrence,  # type: ignore[arg-type]
    )


async def list_surveys(db: AsyncSession) -> list[schemas.SurveyRead]:
    surveys = (await db.execute(select(Survey).order_by(col(Survey.id).desc()))).scalars()
    return [await survey_read(db, s) for s in surveys]


# ---------------------------------------------------------------- rounds


async def create_round(
    db: AsyncSession, actor: Principal, survey_id: int, data: schemas.RoundIn, now: datetime | None = None
) -> Round:
    """Schedule a round; it opens by itself at opens_at (at once when that has passed)."""
    now = now or utcnow()
    survey = await get_survey(db, survey_id)
    opens, closes = _aware(data.opens_at), _aware(data.closes_at)
    if closes <= opens:
        raise DomainError("survey.round_closes_before_opening", status_code=422)
    if closes - opens > timedelta(days=MAX_ROUND_DAYS):
        raise DomainError("survey.round_too_long", days=MAX_ROUND_DAYS, status_code=422)
    if closes <= now:
        raise DomainError("survey.round_in_past", status_code=422)
    for code in data.audience.unit_codes:
        if (await db.execute(select(col(OrgUnit.id)).where(col(OrgUnit.code) == code))).first() is None:
            raise DomainError("org.unit_code_unknown", code=code, status_code=422)
    frozen = await questions_snapshot(db, survey.id or 0)
    rnd = Round(
        survey_id=survey.id or 0,
        title=data.title,
        opens_at=opens,
        closes_at=closes,
        recurrence=data.recurrence,
        audience_json=json.dumps(msgspec_to_dict(data.audience)),
        questions_json=frozen,
        max_reminders=data.max_reminders,
        created_by=actor.id,
    )
    db.add(rnd)
    await db.flush()
    audit.record(
        db,
        "survey.round.create",
        actor_id=actor.id,
        entity_type="survey_round",
        entity_id=rnd.id,
        after={"title": rnd.title, "opens_at": opens.isoformat(), "closes_at": closes.isoformat()},
    )
    if opens <= now:
        await open_round(db, rnd)
    return rnd


def msgspec_to_dict(value: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(value)  # type: ignore[no-any-return]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=TOKYO) if value.tzinfo is None else value.astimezone(UTC)


async def audience_user_ids(db: AsyncSession, audience: dict[str, Any]) -> list[tuple[int, int | None]]:
    """(user id, unit id) of every active person the audience names; empty criteria mean everyone."""
    query = select(col(User.id), col(User.unit_id)).where(col(User.active))
    if audience.get("unit_codes"):
        roots = (
            await db.execute(select(col(OrgUnit.id)).where(col(OrgUnit.code).in_(audience["unit_codes"])))
        ).scalars()
        query = query.where(col(User.unit_id).in_(await subtree_ids(db, [r for r in roots if r is not None])))
    if audience.get("employment_types"):
        query = query.where(col(User.employment_type).in_(audience["employment_types"]))
    if audience.get("roles"):
        holders = select(col(RoleAssignment.user_id)).where(col(RoleAssignment.role).in_(audience["roles"]))
        query = query.where(col(User.id).in_(holders))
    return [(uid, unit) for uid, unit in (await db.execute(query)).all() if uid is not None]


async def open_round(db: AsyncSession, rnd: Round) -> int:
    """Invite the audience, remembering each person's unit at this moment."""
    people = await audience_user_ids(db, json.loads(rnd.audience_json))
    for user_id, unit_id in people:
        db.add(Invitation(round_id=rnd.id or 0, user_id=user_id, unit_id=unit_id))
    rnd.status = "open"
    await db.flush()
    audit.record(
        db,
        "survey.round.open",
        actor_label="system",
        entity_type="survey_round",
        entity_id=rnd.id,
        after={"invited": len(people)},
    )
    return len(people)


def next_window(rnd: Round) -> tuple[datetime, datetime] | None:
    steps = {"weekly": timedelta(days=7), "monthly": timedelta(days=30), "quarterly": timedelta(days=91)}
    step = steps.get(rnd.recurrence)
    if step is None:
        return None
    if rnd.recurrence == "monthly":
        opens = _add_months(rnd.opens_at, 1)
    elif rnd.recurrence == "quarterly":
        opens = _add_months(rnd.opens_at, 3)
    else:
        opens = rnd.opens_at + step
    return opens, opens + (rnd.closes_at - rnd.opens_at)


def _add_months(value: datetime, months: int) -> datetime:
    month = value.month - 1 + months
    year, month = value.year + month // 12, month % 12 + 1
    day = min(value.day, 28)
    return value.replace(year=year, month=month, day=day)


async def _claim(db: AsyncSession, rnd: Round, current: str, new: str) -> bool:
    """Move a round on only if nobody else did first: several workers may run the same job."""
    result = await db.execute(
        update(Round)
        .where(col(Round.id) == rnd.id, col(Round.status) == current)
        .values(status=new)
        .execution_options(synchronize_session=False)
    )
    rnd.status = new
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def tick(
    db: AsyncSession, now: datetime | None = None, mailer: Any = None, base_url: str = ""
) -> dict[str, int]:
    """Open due rounds, close finished ones (scheduling the next of a series), send reminders. Idempotent."""
    now = now or utcnow()
    done = {"opened": 0, "closed": 0, "reminded": 0}
    due = await db.execute(select(Round).where(col(Round.status) == "scheduled", col(Round.opens_at) <= now))
    for rnd in list(due.scalars()):
        if await _claim(db, rnd, "scheduled", "opening"):
            await open_round(db, rnd)
            done["opened"] += 1
    ended = await db.execute(select(Round).where(col(Round.status) == "open", col(Round.closes_at) <= now))
    for rnd in list(ended.scalars()):
        if not await _claim(db, rnd, "open", "closed"):
            continue
        done["closed"] += 1
        window = next_window(rnd)
        if window is not None:
            survey = await get_survey(db, rnd.survey_id)
            frozen = await questions_snapshot(db, survey.id or 0)
            db.add(
                Round(
                    survey_id=rnd.survey_id,
                    series_id=rnd.series_id,
                    title=f"{survey.title} {window[0]:%Y-%m-%d}",
                    opens_at=window[0],
                    closes_at=window[1],
                    recurrence=rnd.recurrence,
                    audience_json=rnd.audience_json,
                    questions_json=frozen,
                    max_reminders=rnd.max_reminders,
                    created_by=rnd.created_by,
                )
            )
        audit.record(
            db, "survey.round.close", actor_label="system", entity_type="survey_round", entity_id=rnd.id
        )
    await db.flush()
    if mailer is not None:
        done["reminded"] = await send_reminders(db, now, mailer, base_url)
    return done


async def send_reminders(db: AsyncSession, now: datetime, mailer: Any, base_url: str = "") -> int:
    """Remind people who have not answered, on day 3 and 5 (up to the round's limit); never name who has."""
    sent = 0
    rounds = await db.execute(select(Round).where(col(Round.status) == "open"))
    for rnd in rounds.scalars():
        days_open = (now - rnd.opens_at).days
        due_count = sum(1 for d in REMINDER_DAYS[: rnd.max_reminders] if days_open >= d)
        if due_count == 0:
            continue
        pending = await db.execute(
            select(Invitation, User)
            .join(User, col(User.id) == col(Invitation.user_id))
            .where(
                col(Invitation.round_id) == rnd.id,
                ~col(Invitation.answered),
                col(Invitation.reminders_sent) < due_count,
                col(User.active),
            )
        )
        for invitation, user in pending.all():
            invitation.reminders_sent = due_count
            deadline = f"{rnd.closes_at.astimezone(TOKYO):%m/%d %H:%M}"
            body = (
                f"{user.name} 様\n\n「{rnd.title}」へのご回答をお願いします（{deadline} まで）。\n"
                f"回答は匿名で集計されます。\n\n{base_url}/surveys\n"
            )
            await mailer(
                db,
                user.email,
                f"【アンケートのお願い】{rnd.title}",
                body,
                dedupe_key=f"survey-reminder:{rnd.id}:{user.id}:{due_count}",
            )
            sent += 1
    await db.flush()
    return sent


async def get_round(db: AsyncSession, round_id: int) -> Round:
    rnd = await db.get(Round, round_id)
    if rnd is None:
        raise NotFound("survey.round_not_found")
    return rnd


async def round_read(db: AsyncSession, rnd: Round) -> schemas.RoundRead:
    survey = await get_survey(db, rnd.survey_id)
    invited = (await db.execute(select(func.count()).where(col(Invitation.round_id) == rnd.id))).scalar_one()
    return schemas.RoundRead(
        id=rnd.id or 0,
        survey_id=rnd.survey_id,
        survey_title=survey.title,
        title=rnd.title,
        opens_at=rnd.opens_at,
        closes_at=rnd.closes_at,
        status=rnd.status,
        recurrence=rnd.recurrence,  # type: ignore[arg-type]
        invited=int(invited),
        questions=frozen_questions(rnd),
    )


async def my_rounds(db: AsyncSession, principal: Principal) -> list[schemas.MyRound]:
    rows = await db.execute(
        select(Round, Invitation, Survey)
        .join(Invitation, col(Invitation.round_id) == col(Round.id))
        .join(Survey, col(Survey.id) == col(Round.survey_id))
        .where(
            col(Invitation.user_id) == principal.id,
            col(Round.status) == "open",
            col(Round.closes_at) > utcnow(),
        )
        .order_by(col(Round.closes_at))
    )
    return [
        schemas.MyRound(
            id=r.id or 0, survey_title=s.title, title=r.title, closes_at=r.closes_at, answered=i.answered
        )
        for r, i, s in rows.all()
    ]


async def _invitation(db: AsyncSession, round_id: int, user_id: int) -> Invitation | None:
    query = select(Invitation).where(col(Invitation.round_id) == round_id, col(Invitation.user_id) == user_id)
    return (await db.execute(query)).scalar()


async def round_for_answering(db: AsyncSession, principal: Principal, round_id: int) -> tuple[Round, bool]:
    rnd = await get_round(db, round_id)
    invitation = await _invitation(db, round_id, principal.id)
    if invitation is None:
        raise NotFound("survey.not_invited")
    return rnd, invitation.answered


def validate_answers(questions: list[schemas.QuestionRead], answers: dict[str, Any]) -> dict[str, Any]:
    """Check every answer against the frozen question; return the clean answer sheet."""
    by_id = {str(q.id): q for q in questions}
    unknown = sorted(set(answers) - set(by_id))
    if unknown:
        raise DomainError("survey.unknown_question", id=unknown[0], status_code=422)
    clean: dict[str, Any] = {}
    for key, q in by_id.items():
        value = answers.get(key)
        if value in (None, "", []):
            if q.required:
                raise DomainError("survey.answer_required", text=q.text, status_code=422)
            continue
        clean[key] = _one_answer(q, value)
    return clean


def _one_answer(q: schemas.QuestionRead, value: Any) -> Any:
    ranges = {"likert": (1, 5), "rating": (1, 5), "enps": (0, 10)}
    if q.kind in ranges:
        low, high = ranges[q.kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DomainError("survey.answer_out_of_range", text=q.text, low=low, high=high, status_code=422)
        return value
    if q.kind == "single":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(q.options):
            raise DomainError("survey.answer_bad_choice", text=q.text, status_code=422)
        return value
    if q.kind == "multi":
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise DomainError("survey.answer_bad_choice", text=q.text, status_code=422)
        if len(set(value)) != len(value) or any(not 0 <= v < len(q.options) for v in value):
            raise DomainError("survey.answer_bad_choice", text=q.text, status_code=422)
        return sorted(value)
    if not isinstance(value, str):
        raise DomainError("survey.answer_bad_text", text=q.text, status_code=422)
    if len(value) > q.max_length:
        raise DomainError("survey.answer_too_long", text=q.text, n=q.max_length, status_code=422)
    return value.strip()


async def submit(
    db: AsyncSession,
    principal: Principal,
    round_id: int,
    answers: dict[str, Any],
    now: datetime | None = None,
) -> None:
    """Mark the invitation used and store the answers apart, in one transaction; a second try is refused.

    Deliberately no audit event: the trail would tie a person to the moment an answer appeared.
    """
    now = now or utcnow()
    rnd = await get_round(db, round_id)
    if rnd.status != "open" or not (rnd.opens_at <= now < rnd.closes_at):
        raise DomainError("survey.round_not_open", status_code=409)
    clean = validate_answers(frozen_questions(rnd), answers)
    invitation = await _invitation(db, round_id, principal.id)
    if invitation is None:
        raise Forbidden("survey.not_invited")
    claimed = await db.execute(
        update(Invitation)
        .where(col(Invitation.id) == invitation.id, ~col(Invitation.answered))
        .values(answered=True)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("survey.already_answered")
    db.add(
        Response(
            round_id=round_id,
            unit_id=invitation.unit_id,
            day=tokyo_today(now),
            answers_json=json.dumps(clean, ensure_ascii=False, sort_keys=True),
        )
    )
    await db.flush()


async def settings(db: AsyncSession) -> SurveySettings:
    row = (await db.execute(select(SurveySettings).order_by(col(SurveySettings.id)))).scalars().first()
    if row is None:
        row = SurveySettings()
        db.add(row)
        await db.flush()
    return row


async def update_settings(db: AsyncSession, actor: Principal, data: schemas.SettingsIn) -> SurveySettings:
    """Thresholds can be raised freely but never set below 3."""
    row = await settings(db)
    before = {"k_min": row.k_min, "k_text": row.k_text}
    row.k_min, row.k_text, row.updated_at = data.k_min, max(data.k_text, data.k_min), utcnow()
    audit.record(
        db,
        "survey.settings",
        actor_id=actor.id,
        entity_type="survey_settings",
        entity_id=row.id,
        before=before,
        after={"k_min": row.k_min, "k_text": row.k_text},
    )
    await db.flush()
    return row


async def home_notices(db: AsyncSession, principal: Principal) -> list[Any]:
    """In-app reminder: open rounds the person has not answered yet."""
    from app.pages import Notice

    pending = [r for r in await my_rounds(db, principal) if not r.answered]
    if not pending:
        return []
    return [Notice(key="survey.home_pending", link="/surveys", params={"n": len(pending)})]


async def run_jobs(state: Any) -> dict[str, int]:
    """The background job: open, close and remind, in one transaction."""
    from app.mail import enqueue

    async with state.db_sessions() as db:
        done = await tick(db, mailer=enqueue, base_url=state.settings.base_url)
        await db.commit()
    return done
