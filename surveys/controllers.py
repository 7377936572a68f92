"""HTTP for pulse surveys: staff answer, HR runs surveys and rounds, results obey the thresholds."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from app.deps import DB
from app.errors import DomainError, field_errors
from app.security import Principal, requires, signed_in
from app.web import NavItem, page_context, request_locale
from surveys import results, schemas, services

NAV = [
    NavItem("/surveys", "nav.surveys"),
    NavItem("/admin/surveys", "nav.survey_admin", ("hr_admin", "sysadmin")),
]
Id = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
UnitFilter = Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)]
RESULT_READERS = ("hr_admin", "auditor", "sysadmin", "unit_head")
ADMINS = ("hr_admin", "sysadmin")


class SurveyApi(Controller):
    """Surveys and rounds (HR), my surveys and answers (staff), thresholded results."""

    path = "/api/surveys"
    tags = ["surveys"]

    @get("/", operation_id="listSurveys", guards=[requires(*ADMINS)])
    async def list_surveys(self, db: DB) -> schemas.SurveyList:
        """Every survey with its questions and rounds."""
        items = await services.list_surveys(db)
        return schemas.SurveyList(items=items, total=len(items))

    @post("/", operation_id="createSurvey", guards=[requires(*ADMINS)])
    async def create_survey(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.SurveyIn]
    ) -> schemas.SurveyRead:
        """A new survey with its questions."""
        return await services.survey_read(db, await services.create_survey(db, request.user, data))

    @post("/from-template", operation_id="createSurveyFromTemplate", guards=[requires(*ADMINS)])
    async def from_template(self, request: Request[Principal, Any, Any], db: DB) -> schemas.SurveyRead:
        """The built-in Japanese remote-work survey."""
        return await services.survey_read(db, await services.create_from_template(db, request.user))

    @get("/{survey_id:int}", operation_id="getSurvey", guards=[requires(*ADMINS)])
    async def get_survey(self, db: DB, survey_id: Id) -> schemas.SurveyRead:
        """One survey."""
        return await services.survey_read(db, await services.get_survey(db, survey_id))

    @put("/{survey_id:int}", operation_id="updateSurvey", guards=[requires(*ADMINS)])
    async def update_survey(
        self, request: Request[Principal, Any, Any], db: DB, survey_id: Id, data: JSONBody[schemas.SurveyIn]
    ) -> schemas.SurveyRead:
        """Edit a survey; rounds already created keep their questions."""
        return await services.survey_read(db, await services.update_survey(db, request.user, survey_id, data))

    @post("/{survey_id:int}/rounds", operation_id="createRound", guards=[requires(*ADMINS)])
    async def create_round(
        self, request: Request[Principal, Any, Any], db: DB, survey_id: Id, data: JSONBody[schemas.RoundIn]
    ) -> schemas.RoundRead:
        """Schedule a round (opens by itself; at once when its opening time has passed)."""
        return await services.round_read(db, await services.create_round(db, request.user, survey_id, data))

    @get("/rounds/{round_id:int}", operation_id="getRound", guards=[signed_in])
    async def get_round(
        self, request: Request[Principal, Any, Any], db: DB, round_id: Id
    ) -> schemas.RoundRead:
        """A round with its frozen questions (for invited staff, HR and result readers)."""
        rnd = await services.get_round(db, round_id)
        if not request.user.has(*RESULT_READERS):
            await services.round_for_answering(db, request.user, round_id)
        return await services.round_read(db, rnd)

    @get("/mine", operation_id="mySurveys", guards=[signed_in])
    async def mine(self, request: Request[Principal, Any, Any], db: DB) -> list[schemas.MyRound]:
        """Open rounds I am invited to, and whether I have answered."""
        return await services.my_rounds(db, request.user)

    @post("/rounds/{round_id:int}/answers", operation_id="answerRound", guards=[signed_in], status_code=204)
    async def answer(
        self, request: Request[Principal, Any, Any], db: DB, round_id: Id, data: JSONBody[schemas.AnswersIn]
    ) -> None:
        """Answer once, anonymously."""
        await services.submit(db, request.user, round_id, data.answers)

    @get("/rounds/{round_id:int}/results", operation_id="roundResults", guards=[requires(*RESULT_READERS)])
    async def round_results(
        self, request: Request[Principal, Any, Any], db: DB, round_id: Id, unit_id: UnitFilter = None
    ) -> schemas.RoundResults:
        """Results that pass the anonymity thresholds (unit heads: their subtree)."""
        return await results.round_results(db, request.user, round_id, unit_id)

    @get(
        "/rounds/{round_id:int}/results.csv",
        operation_id="roundResultsCsv",
        guards=[requires(*RESULT_READERS)],
        media_type="text/csv",
    )
    async def round_results_csv(
        self, request: Request[Principal, Any, Any], db: DB, round_id: Id, unit_id: UnitFilter = None
    ) -> Response[bytes]:
        """The same thresholded results as CSV for Excel."""
        data = await results.round_results(db, request.user, round_id, unit_id)
        return Response(
            results.results_csv(data),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="survey-round-{round_id}.csv"'},
        )

    @get("/settings", operation_id="getSurveySettings", guards=[requires(*ADMINS)])
    async def get_settings(self, db: DB) -> schemas.SettingsRead:
        """Anonymity thresholds."""
        row = await services.settings(db)
        return schemas.SettingsRead(
            k_min=row.k_min, k_text=row.k_text, min_invited_for_rate=row.min_invited_for_rate
        )

    @put("/settings", operation_id="updateSurveySettings", guards=[requires(*ADMINS)])
    async def put_settings(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.SettingsIn]
    ) -> schemas.SettingsRead:
        """Change the thresholds (never below 3)."""
        row = await services.update_settings(db, request.user, data)
        return schemas.SettingsRead(
            k_min=row.k_min, k_text=row.k_text, min_invited_for_rate=row.min_invited_for_rate
        )


class RoundForm(msgspec.Struct, kw_only=True):
    title: Annotated[str, msgspec.Meta(max_length=400)] = ""
    opens_at: Annotated[str, msgspec.Meta(max_length=40)] = ""
    closes_at: Annotated[str, msgspec.Meta(max_length=40)] = ""
    recurrence: Annotated[str, msgspec.Meta(max_length=20)] = "none"
    unit_codes: Annotated[str, msgspec.Meta(max_length=2000)] = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class SurveyPages(Controller):
    """Pages: my surveys and the answer form for staff; survey admin and results for HR."""

    include_in_schema = False

    @get("/surveys", operation_id="mySurveysPage", guards=[signed_in])
    async def mine(
        self, request: Request[Principal, Any, Any], db: DB, thanks: FromQuery[bool] = False
    ) -> Template:
        rounds = await services.my_rounds(db, request.user)
        return Template("surveys/mine.html", context=page_context(request, rounds=rounds, thanks=thanks))

    @get("/surveys/rounds/{round_id:int}", operation_id="answerPage", guards=[signed_in])
    async def answer_page(self, request: Request[Principal, Any, Any], db: DB, round_id: Id) -> Template:
        rnd, answered = await services.round_for_answering(db, request.user, round_id)
        return Template(
            "surveys/answer.html",
            context=page_context(
                request, round=await services.round_read(db, rnd), answered=answered, errors=[], values={}
            ),
        )

    @post(
        "/surveys/rounds/{round_id:int}",
        operation_id="answerSubmit",
        guards=[signed_in],
        status_code=303,
        media_type=MediaType.HTML,
    )
    async def answer_submit(self, request: Request[Principal, Any, Any], db: DB, round_id: Id) -> Any:
        form = await request.form()
        rnd, answered = await services.round_for_answering(db, request.user, round_id)
        answers = _answers_from_form(services.frozen_questions(rnd), form)
        try:
            await services.submit(db, request.user, round_id, answers)
        except DomainError as exc:
            await db.rollback()  # expires `rnd`: load it again rather than touch it lazily (async)
            rnd = await services.get_round(db, round_id)
            return Template(
                "surveys/answer.html",
                context=page_context(
                    request,
                    round=await services.round_read(db, rnd),
                    answered=answered,
                    errors=field_errors(request_locale(request), exc),
                    values=answers,
                ),
                status_code=exc.status_code,
            )
        return Redirect("/surveys?thanks=true", status_code=303)

    @get("/admin/surveys", operation_id="surveysAdminPage", guards=[requires(*ADMINS)])
    async def admin(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        surveys = await services.list_surveys(db)
        return Template("surveys/admin.html", context=page_context(request, surveys=surveys, errors=[]))

    @post(
        "/admin/surveys/from-template",
        operation_id="surveyFromTemplateSubmit",
        guards=[requires(*ADMINS)],
        status_code=303,
    )
    async def admin_from_template(self, request: Request[Principal, Any, Any], db: DB) -> Any:
        await services.create_from_template(db, request.user)
        return Redirect("/admin/surveys", status_code=303)

    @post(
        "/admin/surveys/{survey_id:int}/rounds",
        operation_id="roundSubmit",
        guards=[requires(*ADMINS)],
        status_code=303,
    )
    async def admin_round(
        self, request: Request[Principal, Any, Any], db: DB, survey_id: Id, data: Annotated[RoundForm, Form]
    ) -> Any:
        payload = {
            "title": data.title,
            "opens_at": _local_datetime(data.opens_at),
            "closes_at": _local_datetime(data.closes_at),
            "recurrence": data.recurrence or "none",
            "audience": {"unit_codes": [c for c in data.unit_codes.replace(",", " ").split() if c]},
        }
        try:
            round_in = msgspec.convert(payload, schemas.RoundIn)
            await services.create_round(db, request.user, survey_id, round_in)
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            surveys = await services.list_surveys(db)
            return Template(
                "surveys/admin.html",
                context=page_context(
                    request,
                    surveys=surveys,
                    errors=field_errors(request_locale(request), exc),
                    typed=data,
                    typed_for=survey_id,
                ),
                status_code=422,
            )
        return Redirect("/admin/surveys", status_code=303)

    @get("/admin/surveys/{survey_id:int}/edit", operation_id="surveyEditPage", guards=[requires(*ADMINS)])
    async def edit_page(self, request: Request[Principal, Any, Any], db: DB, survey_id: Id) -> Template:
        survey = await services.survey_read(db, await services.get_survey(db, survey_id))
        return Template("surveys/edit.html", context=page_context(request, survey=survey, errors=[]))

    @post(
        "/admin/surveys/{survey_id:int}/edit",
        operation_id="surveyEditSubmit",
        guards=[requires(*ADMINS)],
        status_code=303,
    )
    async def edit_submit(self, request: Request[Principal, Any, Any], db: DB, survey_id: Id) -> Any:
        form = await request.form()
        payload = _survey_from_form(form)
        try:
            await services.update_survey(
                db, request.user, survey_id, msgspec.convert(payload, schemas.SurveyIn)
            )
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            survey = await services.survey_read(db, await services.get_survey(db, survey_id))
            return Template(
                "surveys/edit.html",
                context=page_context(
                    request, survey=survey, errors=field_errors(request_locale(request), exc)
                ),
                status_code=422,
            )
        return Redirect("/admin/surveys", status_code=303)

    @get(
        "/admin/surveys/rounds/{round_id:int}/results",
        operation_id="resultsPage",
        guards=[requires(*RESULT_READERS)],
    )
    async def results_page(
        self, request: Request[Principal, Any, Any], db: DB, round_id: Id, unit_id: UnitFilter = None
    ) -> Template:
        data = await results.round_results(db, request.user, round_id, unit_id)
        return Template("surveys/results.html", context=page_context(request, r=data))


def _local_datetime(value: str) -> str:
    """A `datetime-local` input sends minutes only (2026-11-27T09:30); RFC 3339 parsing needs seconds."""
    value = value.strip()
    return f"{value}:00" if len(value) == 16 and value[10:11] == "T" else value


def _answers_from_form(questions: list[schemas.QuestionRead], form: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for q in questions:
        key = str(q.id)
        if q.kind == "multi":
            picked = form.getall(f"q{key}", []) if hasattr(form, "getall") else []
            answers[key] = [int(v) for v in picked if str(v).isdigit()]
        elif q.kind == "text":
            answers[key] = str(form.get(f"q{key}", ""))
        else:
            raw = str(form.get(f"q{key}", ""))
            answers[key] = int(raw) if raw.isdigit() else (None if raw == "" else raw)
    return answers


def _survey_from_form(form: Any) -> dict[str, Any]:
    """The editor posts q-<n>-<field> for each question row; empty new rows are skipped."""
    questions = []
    for n in range(60):
        kind = str(form.get(f"q-{n}-kind", ""))
        text = str(form.get(f"q-{n}-text", "")).strip()
        if not kind:
            break
        if not text or form.get(f"q-{n}-delete") == "on":
            continue
        options = [o.strip() for o in str(form.get(f"q-{n}-options", "")).splitlines() if o.strip()]
        questions.append(
            {
                "kind": kind,
                "text": text,
                "text_en": str(form.get(f"q-{n}-text_en", "")).strip(),
                "options": options,
                "required": form.get(f"q-{n}-required") == "on",
            }
        )
    return {
        "title": str(form.get("title", "")).strip(),
        "title_en": str(form.get("title_en", "")).strip(),
        "description": str(form.get("description", "")).strip(),
        "questions": questions,
    }
