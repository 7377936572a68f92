"""Pulse surveys: anonymity by design, thresholds in the query layer, one answer per invitation."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import func, select

from app.db import utcnow
from app.security import Principal
from surveys import services
from surveys.models import Invitation, Response, Round
from surveys.results import suppress

HR = Principal(
    id=8, employee_number="100008", name="hr", locale="ja", roles=frozenset({"hr_admin"}), unit_id=None
)


def test_response_table_cannot_identify_a_person():
    """Fails if anyone adds a column that could tie an answer to a person or a moment."""
    columns = {c.name: c for c in Response.__table__.columns}
    assert set(columns) == {"id", "round_id", "unit_id", "day", "answers_json"}
    assert isinstance(columns["day"].type, sa.Date)  # a day, never a time
    assert not columns["id"].autoincrement or not isinstance(columns["id"].type, sa.Integer)  # random UUID
    for fk in Response.__table__.foreign_keys:
        assert fk.column.table.name in {"survey_round", "org_unit"}, fk
    invitation_links = [
        fk for fk in Invitation.__table__.foreign_keys if fk.column.table.name == "survey_response"
    ]
    assert invitation_links == []
    assert {c.name for c in Invitation.__table__.columns} == {
        "id",
        "round_id",
        "user_id",
        "unit_id",
        "answered",
        "reminders_sent",
    }


def test_suppression_hides_small_units_and_blocks_differencing():
    assert suppress({"a": 10, "b": 12}, 5) == set()
    # b alone would be hidden, but parent (a+b) minus a would reveal it: hide a too.
    assert suppress({"a": 10, "b": 3}, 5) == {"a", "b"}
    # Two small ones that together reach k can be hidden on their own.
    assert suppress({"a": 10, "b": 3, "c": 2}, 5) == {"b", "c"}
    # The smallest visible sibling is the one sacrificed.
    assert suppress({"a": 10, "b": 7, "c": 1}, 5) == {"b", "c"}
    assert suppress({"a": 0, "b": 9}, 5) == set()


async def open_round(client, title="11月の調査", units=None, closes_days=7, recurrence="none"):
    survey = (await client.post("/api/surveys/from-template")).json()
    now = utcnow()
    body = {
        "title": title,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=closes_days)).isoformat(),
        "recurrence": recurrence,
        "audience": {"unit_codes": units or []},
    }
    r = await client.post(f"/api/surveys/{survey['id']}/rounds", json=body)
    assert r.status_code == 201, r.text
    return survey, r.json()


def sheet(rnd, likert=4, enps=9, comment=None):
    answers = {}
    for q in rnd["questions"]:
        key = str(q["id"])
        if q["kind"] == "likert":
            answers[key] = likert
        elif q["kind"] == "enps":
            answers[key] = enps
        elif q["kind"] == "multi":
            answers[key] = [0, 1]
        elif q["kind"] == "text" and comment:
            answers[key] = comment
    return {"answers": answers}


async def answer_as(make_client, login, rnd, **kw):
    client = await make_client(login=login)
    return await client.post(f"/api/surveys/rounds/{rnd['id']}/answers", json=sheet(rnd, **kw))


async def test_answer_once_and_nothing_links_it(hr, make_client, db):
    _, rnd = await open_round(hr)
    assert rnd["invited"] == 31  # every active person, the break-glass admin included
    r = await answer_as(make_client, "100012", rnd, comment="在宅でも集中できます")
    assert r.status_code == 204
    again = await (await make_client(login="100012")).post(
        f"/api/surveys/rounds/{rnd['id']}/answers", json=sheet(rnd)
    )
    assert again.status_code == 409
    rows = (await db.execute(select(Response))).scalars().all()
    assert len(rows) == 1 and len(rows[0].id) == 36
    mine = await (await make_client(login="100012")).get("/api/surveys/mine")
    assert [(m["id"], m["answered"]) for m in mine.json()] == [(rnd["id"], True)]
    events = (await db.execute(sa.text("SELECT action FROM audit_event"))).scalars().all()
    assert not [e for e in events if "answer" in e or "response" in e]


async def test_bad_answers_are_refused_and_nothing_is_written(hr, make_client, db):
    _, rnd = await open_round(hr)
    client = await make_client(login="100012")
    likert = next(q for q in rnd["questions"] if q["kind"] == "likert")
    multi = next(q for q in rnd["questions"] if q["kind"] == "multi")
    text = next(q for q in rnd["questions"] if q["kind"] == "text")
    good = sheet(rnd)["answers"]
    for label, answers in [
        ("out of range", {**good, str(likert["id"]): 6}),
        ("missing required", {k: v for k, v in good.items() if k != str(likert["id"])}),
        ("bad choice", {**good, str(multi["id"]): [0, 99]}),
        ("too long", {**good, str(text["id"]): "あ" * 1001}),
        ("unknown question", {**good, "999999": 1}),
        ("wrong type", {**good, str(likert["id"]): "4"}),
    ]:
        r = await client.post(f"/api/surveys/rounds/{rnd['id']}/answers", json={"answers": answers})
        assert r.status_code == 422, (label, r.text)
        assert r.json()["detail"], label
    assert (await db.execute(select(func.count()).select_from(Response))).scalar() == 0
    assert (await db.execute(select(func.count()).where(Invitation.answered))).scalar() == 0


async def test_concurrent_double_submission_stores_one_answer(hr, make_client, db):
    _, rnd = await open_round(hr)
    clients = [await make_client(login="100015") for _ in range(4)]
    results = await asyncio.gather(
        *(c.post(f"/api/surveys/rounds/{rnd['id']}/answers", json=sheet(rnd)) for c in clients)
    )
    assert sorted(r.status_code for r in results) == [204, 409, 409, 409]
    assert (await db.execute(select(func.count()).select_from(Response))).scalar() == 1


async def test_not_invited_cannot_answer(hr, make_client):
    _, rnd = await open_round(hr, units=["JINJI"])
    r = await answer_as(make_client, "100019", rnd)  # 行政改革課, outside the audience
    assert r.status_code == 403


async def test_thresholds_apply_to_results_units_and_exports(hr, make_client):
    _, rnd = await open_round(hr)
    # 情報政策課 subtree (JOHO + JOHO-NW): 100005, 100009, 100011, 100015, 100016, 100017, 100018, 100030
    joho = ["100005", "100009", "100011", "100015", "100016", "100030"]
    jinji = ["100004", "100008", "100012", "100013"]  # 4 < k
    for login in joho:
        assert (await answer_as(make_client, login, rnd, likert=5, comment="ok")).status_code == 204
    for login in jinji:
        assert (await answer_as(make_client, login, rnd, likert=1)).status_code == 204
    res = (await hr.get(f"/api/surveys/rounds/{rnd['id']}/results")).json()
    assert res["responses"] == 10 and res["k_min"] == 5
    likert = next(q for q in res["questions"] if q["kind"] == "likert")
    assert likert["n"] == 10 and likert["favourable"] == 60.0
    text = next(q for q in res["questions"] if q["kind"] == "text")
    assert text["hidden"] and text["comments"] is None  # 6 comments < k_text 10
    enps = next(q for q in res["questions"] if q["kind"] == "enps")
    assert enps["enps"] == 100.0
    # Per 局 (top level) all 10 are in 総務局: one slice, shown.
    assert [(u["name"], u["n"]) for u in res["units"]] == [("総務局", 10)]
    somu_bu = (await hr.get("/api/units")).json()["items"]
    bu = next(u for u in somu_bu if u["code"] == "SOMU-SOMU")
    sub = (await hr.get(f"/api/surveys/rounds/{rnd['id']}/results", params={"unit_id": bu["id"]})).json()
    slices = {u["name"]: u for u in sub["units"]}
    assert slices["人事課"]["hidden"] and slices["人事課"]["n"] is None
    # 情報政策課 (6) alone would let 総務部 (10) minus it reveal 人事課 (4): it is hidden too.
    assert slices["情報政策課"]["hidden"]
    assert sub["responses"] == 10
    export = (
        await hr.get(f"/api/surveys/rounds/{rnd['id']}/results.csv", params={"unit_id": bu["id"]})
    ).content
    rows = list(csv.reader(io.StringIO(export.decode("utf-8-sig"))))
    unit_rows = {r[0]: r for r in rows if r and r[0] in {"人事課", "情報政策課"}}
    assert unit_rows["人事課"][1] == "非表示" and unit_rows["情報政策課"][1] == "非表示"


async def test_small_round_shows_nothing_but_counts_hidden(hr, make_client):
    _, rnd = await open_round(hr)
    await answer_as(make_client, "100012", rnd)
    res = (await hr.get(f"/api/surveys/rounds/{rnd['id']}/results")).json()
    assert res["hidden"] and res["responses"] is None
    assert all(q["hidden"] and q["distribution"] is None for q in res["questions"])


async def test_unit_head_sees_only_their_subtree(hr, make_client):
    _, rnd = await open_round(hr)
    head = await make_client(login="100006")  # 行政改革課
    mine = await head.get(f"/api/surveys/rounds/{rnd['id']}/results")
    assert mine.status_code == 200
    units = (await hr.get("/api/units")).json()["items"]
    jinji = next(u for u in units if u["code"] == "JINJI")
    other = await head.get(f"/api/surveys/rounds/{rnd['id']}/results", params={"unit_id": jinji["id"]})
    assert other.status_code == 403
    employee = await make_client(login="100012")
    assert (await employee.get(f"/api/surveys/rounds/{rnd['id']}/results")).status_code == 403


async def test_questions_are_frozen_per_round(hr):
    survey, rnd = await open_round(hr)
    edited = {"title": "改訂版", "questions": [{"kind": "rating", "text": "新しい設問"}]}
    assert (await hr.put(f"/api/surveys/{survey['id']}", json=edited)).status_code == 200
    again = (await hr.get(f"/api/surveys/rounds/{rnd['id']}")).json()
    assert [q["kind"] for q in again["questions"]] == [q["kind"] for q in rnd["questions"]]


async def test_round_validation(hr):
    survey = (await hr.post("/api/surveys/from-template")).json()
    now = utcnow()
    cases = [
        ({"opens_at": now.isoformat(), "closes_at": (now - timedelta(days=1)).isoformat()}, 422),
        ({"opens_at": now.isoformat(), "closes_at": (now + timedelta(days=200)).isoformat()}, 422),
        (
            {
                "opens_at": (now - timedelta(days=9)).isoformat(),
                "closes_at": (now - timedelta(days=2)).isoformat(),
            },
            422,
        ),
        ({"opens_at": "not a date", "closes_at": now.isoformat()}, 400),
    ]
    for body, status in cases:
        r = await hr.post(f"/api/surveys/{survey['id']}/rounds", json={"title": "x", **body})
        assert r.status_code == status, (body, r.text)
    r = await hr.post(
        f"/api/surveys/{survey['id']}/rounds",
        json={
            "title": "x",
            "opens_at": now.isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
            "audience": {"unit_codes": ["NOPE"]},
        },
    )
    assert r.status_code == 422 and "NOPE" in r.json()["detail"]


async def test_recurring_round_closes_and_schedules_the_next(hr, app):
    survey, _rnd = await open_round(hr, closes_days=2, recurrence="weekly")
    async with app.state.db_sessions() as db:
        done = await services.tick(db, utcnow() + timedelta(days=3))
        await db.commit()
        assert done["closed"] == 1
        rounds = await db.execute(
            select(Round).where(Round.survey_id == survey["id"]).order_by(Round.opens_at)
        )
        rounds = rounds.scalars().all()
    assert [r.status for r in rounds] == ["closed", "scheduled"]
    assert rounds[1].series_id == rounds[0].series_id
    assert rounds[1].opens_at - rounds[0].opens_at == timedelta(days=7)
    async with app.state.db_sessions() as db:
        done = await services.tick(db, rounds[1].opens_at + timedelta(minutes=1))
        await db.commit()
    assert done["opened"] == 1
    res = (await hr.get(f"/api/surveys/rounds/{rounds[1].id}/results")).json()
    assert [p["round_id"] for p in res["trend"]] == [rounds[0].id, rounds[1].id]


async def test_thresholds_cannot_go_below_three(hr):
    assert (await hr.put("/api/surveys/settings", json={"k_min": 2, "k_text": 10})).status_code == 400
    r = await hr.put("/api/surveys/settings", json={"k_min": 3, "k_text": 3})
    assert r.status_code == 200 and r.json()["k_min"] == 3


async def test_my_surveys_lists_open_invitations(make_client, hr):
    _, rnd = await open_round(hr)
    client = await make_client(login="100012")
    mine = (await client.get("/api/surveys/mine")).json()
    assert [(m["id"], m["answered"]) for m in mine] == [(rnd["id"], False)]


async def test_two_workers_ticking_at_once_close_a_round_once(hr, app):
    survey, _rnd = await open_round(hr, closes_days=2, recurrence="monthly")
    later = utcnow() + timedelta(days=3)

    async def one_tick():
        async with app.state.db_sessions() as db:
            done = await services.tick(db, later)
            await db.commit()
            return done["closed"]

    assert sorted(await asyncio.gather(one_tick(), one_tick())) == [0, 1]
    async with app.state.db_sessions() as db:
        count = (await db.execute(select(func.count()).where(Round.survey_id == survey["id"]))).scalar()
    assert count == 2


async def test_home_page_reminds_until_answered(hr, make_client):
    _, rnd = await open_round(hr)
    employee = await make_client(login="100012")
    assert "回答待ちのアンケートが1件あります" in (await employee.get("/")).text
    await employee.post(f"/api/surveys/rounds/{rnd['id']}/answers", json=sheet(rnd))
    assert "回答待ち" not in (await employee.get("/")).text


async def test_round_form_keeps_what_was_typed_after_an_error(hr):
    survey = (await hr.post("/api/surveys/from-template")).json()
    form = {
        "title": "12月の調査",
        "opens_at": "2026-12-10T09:00",
        "closes_at": "2026-12-01T09:00",
        "recurrence": "monthly",
        "unit_codes": "JINJI",
        "_csrf_token": hr.headers["x-csrftoken"],
    }
    r = await hr.post(f"/admin/surveys/{survey['id']}/rounds", data=form)
    assert r.status_code == 422
    assert 'value="12月の調査"' in r.text and 'value="2026-12-10T09:00"' in r.text
    assert 'value="JINJI"' in r.text and 'value="monthly" selected' in r.text


async def test_results_page_speaks_english_to_english_readers(hr, make_client):
    _, rnd = await open_round(hr)
    for login in ("100005", "100009", "100011", "100015", "100016"):
        await answer_as(make_client, login, rnd)
    await hr.patch("/api/me", json={"locale": "en"})
    page = (await hr.get(f"/admin/surveys/rounds/{rnd['id']}/results")).text
    assert "I am satisfied with remote work" in page
    assert "General Affairs Bureau" in page


async def test_hr_edits_questions_on_a_page(hr):
    survey, rnd = await open_round(hr)
    page = await hr.get(f"/admin/surveys/{survey['id']}/edit")
    assert page.status_code == 200 and "リモートワークに満足している" in page.text
    form = {
        "title": "改訂版アンケート",
        "_csrf_token": hr.headers["x-csrftoken"],
        "q-0-kind": "likert",
        "q-0-text": "リモートワークに満足している",
        "q-0-required": "on",
        "q-1-kind": "single",
        "q-1-text": "主な勤務場所",
        "q-1-options": "自宅\nサテライトオフィス",
        "q-1-required": "on",
        "q-2-kind": "likert",
        "q-2-text": "",
    }
    r = await hr.post(f"/admin/surveys/{survey['id']}/edit", data=form)
    assert r.status_code == 303, r.text
    edited = (await hr.get(f"/api/surveys/{survey['id']}")).json()
    assert [(q["kind"], q["text"]) for q in edited["questions"]] == [
        ("likert", "リモートワークに満足している"),
        ("single", "主な勤務場所"),
    ]
    assert len((await hr.get(f"/api/surveys/rounds/{rnd['id']}")).json()["questions"]) == 6  # frozen
    bad = {**form, "q-1-options": "自宅"}  # a single choice needs two options
    r = await hr.post(f"/admin/surveys/{survey['id']}/edit", data=bad)
    assert r.status_code == 422 and 'role="alert"' in r.text
