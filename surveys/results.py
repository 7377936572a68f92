"""Results with anonymity thresholds applied where the numbers are made, so every page and export obeys them.

A slice is shown only with at least k answers (free text: k_text); participation only with at least
`min_invited_for_rate` invited. Sibling units are suppressed together when one small hidden unit could
otherwise be worked out as its parent minus the visible siblings.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.csvutil import excel_csv
from app.errors import Forbidden
from app.security import Principal
from auth.models import OrgUnit
from auth.services import subtree_ids
from surveys import schemas
from surveys.models import Invitation, Response, Round
from surveys.services import frozen_questions, get_round, round_brief, settings, tokyo_today

FULL_READERS = ("hr_admin", "auditor", "sysadmin")
FAVOURABLE = {"likert": {4, 5}, "rating": {4, 5}}


def suppress(counts: dict[Hashable, int], k: int) -> set[Hashable]:
    """Which sibling slices to hide: the small ones, and enough others that their sum reaches k."""
    hidden = {key for key, n in counts.items() if 0 < n < k}
    if hidden:
        visible = sorted((n, str(key), key) for key, n in counts.items() if key not in hidden and n > 0)
        while sum(counts[h] for h in hidden) < k and visible:
            hidden.add(visible.pop(0)[2])
    return hidden


def _favourable(questions: list[schemas.QuestionRead], sheets: list[dict[str, Any]]) -> float | None:
    good = total = 0
    for q in questions:
        if q.kind in FAVOURABLE:
            for sheet in sheets:
                if str(q.id) in sheet:
                    total += 1
                    good += sheet[str(q.id)] in FAVOURABLE[q.kind]
    return round(100 * good / total, 1) if total else None


def question_results(
    questions: list[schemas.QuestionRead], sheets: list[dict[str, Any]], k: int, k_text: int
) -> list[schemas.QuestionResult]:
    out = []
    for q in questions:
        key = str(q.id)
        values = [s[key] for s in sheets if key in s]
        n = len(values)
        limit = k_text if q.kind == "text" else k
        if n < limit:
            out.append(
                schemas.QuestionResult(
                    id=q.id, kind=q.kind, text=q.text, text_en=q.text_en, n=None, hidden=True
                )
            )
            continue
        result = schemas.QuestionResult(
            id=q.id, kind=q.kind, text=q.text, text_en=q.text_en, n=n, hidden=False
        )
        if q.kind in ("likert", "rating"):
            counts = Counter(values)
            labels = q.options if len(q.options) == 5 else [str(i) for i in range(1, 6)]
            result.distribution = [
                schemas.Bar(label=labels[i - 1], count=counts.get(i, 0)) for i in range(1, 6)
            ]
            result.mean = round(sum(values) / n, 2)
            result.favourable = round(100 * sum(v in FAVOURABLE[q.kind] for v in values) / n, 1)
        elif q.kind == "enps":
            counts = Counter(values)
            result.distribution = [schemas.Bar(label=str(i), count=counts.get(i, 0)) for i in range(11)]
            result.mean = round(sum(values) / n, 2)
            promoters, detractors = sum(v >= 9 for v in values), sum(v <= 6 for v in values)
            result.enps = round(100 * (promoters - detractors) / n, 1)
        elif q.kind in ("single", "multi"):
            counts = Counter(v for value in values for v in (value if isinstance(value, list) else [value]))
            result.distribution = [
                schemas.Bar(label=label, count=counts.get(i, 0)) for i, label in enumerate(q.options)
            ]
        else:
            comments = [v for v in values if v]
            result.comments = random.sample(comments, len(comments))  # no order to link by
        out.append(result)
    return out


async def _sheets(
    db: AsyncSession, round_id: int, unit_ids: set[int] | None
) -> list[tuple[int | None, dict]]:
    query = select(col(Response.unit_id), col(Response.answers_json)).where(
        col(Response.round_id) == round_id
    )
    rows = (await db.execute(query)).all()
    return [(unit, json.loads(raw)) for unit, raw in rows if unit_ids is None or unit in unit_ids]


async def _invited(db: AsyncSession, round_id: int) -> dict[int | None, tuple[int, int]]:
    query = (
        select(
            col(Invitation.unit_id), func.count(), func.sum(func.cast(col(Invitation.answered), _int_type()))
        )
        .where(col(Invitation.round_id) == round_id)
        .group_by(col(Invitation.unit_id))
    )
    return {unit: (int(n), int(answered or 0)) for unit, n, answered in (await db.execute(query)).all()}


def _int_type() -> Any:
    from sqlalchemy import Integer

    return Integer


def _rate(
    invited: dict[int | None, tuple[int, int]], units: Iterable[int | None] | None, minimum: int
) -> float | None:
    pairs = [v for u, v in invited.items() if units is None or u in units]
    n = sum(p[0] for p in pairs)
    return round(100 * sum(p[1] for p in pairs) / n, 1) if n >= minimum else None


async def _scope(db: AsyncSession, viewer: Principal, unit_id: int | None) -> int | None:
    """The unit subtree this viewer may look at: anything for HR and auditors, their own subtree for heads."""
    if viewer.has(*FULL_READERS):
        return unit_id
    if viewer.has("unit_head") and viewer.scope_unit_ids:
        if unit_id is None:
            unit_id = (
                viewer.unit_id if viewer.unit_id in viewer.scope_unit_ids else min(viewer.scope_unit_ids)
            )
        if unit_id in viewer.scope_unit_ids:
            return unit_id
    raise Forbidden("survey.results_forbidden")


async def round_results(
    db: AsyncSession, viewer: Principal, round_id: int, unit_id: int | None = None
) -> schemas.RoundResults:
    """Everything a results page shows, already thresholded."""
    rnd = await get_round(db, round_id)
    unit_id = await _scope(db, viewer, unit_id)
    conf = await settings(db)
    k, k_text = conf.k_min, max(conf.k_text, conf.k_min)
    questions = frozen_questions(rnd)
    scope_ids = await subtree_ids(db, [unit_id]) if unit_id is not None else None
    sheets = await _sheets(db, round_id, scope_ids)
    invited = await _invited(db, round_id)
    n = len(sheets)
    hidden = n < k
    all_sheets = [s for _, s in sheets]
    units = await _unit_slices(db, questions, sheets, invited, unit_id, k, conf.min_invited_for_rate)
    return schemas.RoundResults(
        round=round_brief(rnd),
        unit_id=unit_id,
        k_min=k,
        k_text=k_text,
        responses=None if hidden else n,
        hidden=hidden,
        participation=_rate(invited, scope_ids, conf.min_invited_for_rate),
        questions=question_results(questions, [] if hidden else all_sheets, k, k_text),
        units=units,
        trend=await _trend(db, rnd, scope_ids, k, conf.min_invited_for_rate),
    )


async def _unit_slices(
    db: AsyncSession,
    questions: list[schemas.QuestionRead],
    sheets: list[tuple[int | None, dict]],
    invited: dict[int | None, tuple[int, int]],
    parent_id: int | None,
    k: int,
    min_invited: int,
) -> list[schemas.UnitSlice]:
    children = list(
        (
            await db.execute(
                select(OrgUnit).where(col(OrgUnit.parent_id) == parent_id).order_by(col(OrgUnit.code))
            )
        ).scalars()
    )
    groups: dict[Hashable, set[int | None]] = {}
    names: dict[Hashable, tuple[str, str]] = {}
    for child in children:
        groups[child.id] = set(await subtree_ids(db, [child.id or 0]))
        names[child.id] = (child.name, child.name_en)
    covered = set().union(*groups.values()) if groups else set()
    direct = {u for u, _ in sheets if u not in covered} | ({parent_id} if parent_id is not None else set())
    groups["direct"], names["direct"] = direct, ("（直属・その他）", "(directly in this unit, or none)")
    counts = {key: sum(1 for u, _ in sheets if u in members) for key, members in groups.items()}
    hidden = suppress(counts, k)
    out = []
    for key, members in groups.items():
        if key == "direct" and counts[key] == 0:
            continue
        shown = key not in hidden and counts[key] >= k
        member_sheets = [s for u, s in sheets if u in members]
        out.append(
            schemas.UnitSlice(
                unit_id=key if isinstance(key, int) else None,
                name=names[key][0],
                name_en=names[key][1],
                n=counts[key] if shown else None,
                hidden=not shown,
                participation=_rate(invited, members, min_invited),
                favourable=_favourable(questions, member_sheets) if shown else None,
            )
        )
    return out


async def _trend(
    db: AsyncSession, rnd: Round, scope_ids: set[int] | None, k: int, min_invited: int
) -> list[schemas.TrendPoint]:
    series = (
        await db.execute(
            select(Round)
            .where(col(Round.series_id) == rnd.series_id, col(Round.status) != "scheduled")
            .order_by(col(Round.opens_at))
        )
    ).scalars()
    points = []
    for r in series:
        sheets = [s for _, s in await _sheets(db, r.id or 0, scope_ids)]
        shown = len(sheets) >= k
        points.append(
            schemas.TrendPoint(
                round_id=r.id or 0,
                title=r.title,
                day=tokyo_today(r.opens_at),
                n=len(sheets) if shown else None,
                favourable=_favourable(frozen_questions(r), sheets) if shown else None,
                participation=_rate(await _invited(db, r.id or 0), scope_ids, min_invited),
            )
        )
    return points


def results_csv(results: schemas.RoundResults) -> bytes:
    """What passed the thresholds, as CSV for Excel; hidden cells say so."""
    rows: list[list[Any]] = []
    for q in results.questions:
        if q.hidden:
            rows.append([q.text, q.kind, f"非表示（{results.k_min}件未満）", "", "", "", "", ""])
            continue
        for bar in q.distribution or []:
            rows.append(
                [q.text, q.kind, q.n, bar.label, bar.count, q.mean or "", q.favourable or "", q.enps or ""]
            )
        for comment in q.comments or []:
            rows.append([q.text, q.kind, q.n, comment, "", "", "", ""])
    rows.append([])
    rows.append(["組織", "回答数", "回答率(%)", "好意的回答率(%)"])
    for u in results.units:
        rows.append([u.name, u.n if not u.hidden else "非表示", u.participation or "", u.favourable or ""])
    header = ["設問", "種類", "回答数", "選択肢", "件数", "平均", "好意的回答率(%)", "eNPS"]
    return excel_csv(header, rows)
