"""Every telework rule, through the services (no HTTP): hard rules refuse, soft rules warn and need a reason.

The demo unit 行政改革課 (GYOKAKU) has five active members: its head 100006 and 100019–100022.
Times are Tokyo wall times; 2027-03-01 is a Monday.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select

from app.errors import DomainError, Forbidden
from app.mail import OutboxMessage
from auth.models import OrgUnit, User
from auth.services import load_principal
from scheduling import approvals, policies, schemas, services
from scheduling.config import TOKYO, TeleworkConfig
from scheduling.models import ApprovalStep, Notification, TeleworkDay

CONFIG = TeleworkConfig()
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=TOKYO)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


async def who(db, employee_number: str):
    uid = (await db.execute(select(User.id).where(User.employee_number == employee_number))).scalar_one()
    return await load_principal(db, uid)


async def unit(db, code: str) -> int:
    return (await db.execute(select(OrgUnit.id).where(OrgUnit.code == code))).scalar_one()


async def book(db, person, first: str, *, now: datetime = NOW, **kw) -> list[TeleworkDay]:
    data = schemas.RequestIn(first_day=date.fromisoformat(first), **kw)
    req = await services.submit(db, CONFIG, person, data, now)
    await db.commit()
    return list((await db.execute(select(TeleworkDay).where(TeleworkDay.request_id == req.id))).scalars())


async def set_policy(db, code: str, valid_from: str = "2027-03-01", **rules) -> None:
    hr = await who(db, "100008")
    data = schemas.PolicyIn(unit_id=await unit(db, code), valid_from=date.fromisoformat(valid_from), **rules)
    await policies.add_policy(db, hr, data, date(2027, 3, 1))
    await db.commit()


@pytest.fixture
async def people(app, db):
    return {
        n: await who(db, n) for n in ("100006", "100019", "100020", "100021", "100022", "100003", "100008")
    }


def codes(day: TeleworkDay) -> list[str]:
    return [w for w in day.warnings.split(",") if w]


async def test_weekly_and_monthly_caps_warn_and_approval_needs_a_reason(db, people):
    await set_policy(db, "SOMU", weekly_cap=2, monthly_cap=3)  # inherited by 行政改革課
    member, head = people["100019"], people["100006"]
    first = await book(db, member, "2027-03-02", kind="range", last_day=date(2027, 3, 3))
    assert [codes(d) for d in first] == [[], []]
    third = await book(db, member, "2027-03-04")
    assert codes(third[0]) == ["weekly_cap"]
    third_id, first_ids = third[0].id, [d.id for d in first]
    # Approving counts what is granted: the first two fit, and no reason is kept when none is needed.
    done = await services.decide(db, CONFIG, head, first_ids, "approve", NOW, override_reason="不要")
    assert [d.override_reason for d in done] == ["", ""]
    await db.commit()
    with pytest.raises(DomainError) as refused:
        await services.decide(db, CONFIG, head, [third_id], "approve", NOW)
    assert refused.value.key == "telework.override_reason_required"
    await db.rollback()
    done = await services.decide(
        db, CONFIG, head, [third_id], "approve", NOW, override_reason="繁忙期の資料作成"
    )
    assert done[0].state == "approved" and done[0].override_reason == "繁忙期の資料作成"
    await db.commit()


async def test_notice_days_and_cutoff(db, people):
    await set_policy(db, "GYOKAKU", notice_days=3, notice_cutoff="17:00")
    member = people["100019"]
    on_time = await book(db, member, "2027-03-08", now=at("2027-03-05 16:59"))
    assert codes(on_time[0]) == []
    late = await book(db, member, "2027-03-09", now=at("2027-03-06 17:01"))
    assert codes(late[0]) == ["notice"]


async def test_consecutive_days_count_across_a_weekend(db, people):
    await set_policy(db, "GYOKAKU", max_consecutive=2)
    member = people["100019"]
    await book(db, member, "2027-03-04", kind="range", last_day=date(2027, 3, 5))  # Thu, Fri
    monday = await book(db, member, "2027-03-08")
    assert codes(monday[0]) == ["consecutive"]
    wednesday = await book(db, member, "2027-03-10")
    assert codes(wednesday[0]) == []


async def test_on_site_minimum_warns_flags_the_inbox_and_half_days_count_half(db, people):
    await set_policy(db, "GYOKAKU", min_onsite_count=3)
    head = people["100006"]
    a = await book(db, people["100019"], "2027-03-10")
    b = await book(db, people["100020"], "2027-03-10", part="am")
    await services.decide(db, CONFIG, head, [a[0].id, b[0].id], "approve", NOW)
    await db.commit()
    # 5 members, 1 away all day, 1 away in the morning: 3 on site. One more in the afternoon is fine.
    c = await book(db, people["100021"], "2027-03-10", part="pm")
    assert codes(c[0]) == []
    d = await book(db, people["100022"], "2027-03-10", part="am")
    assert codes(d[0]) == ["coverage"]
    box = await approvals.inbox(db, CONFIG, head, today=NOW.date())
    flags = {i.day.id: i.would_break_coverage for i in box.items}
    assert flags == {c[0].id: False, d[0].id: True}
    grid = await approvals.coverage(db, CONFIG, head, await unit(db, "GYOKAKU"), date(2027, 3, 1))
    assert grid.onsite["2027-03-10"] == 3 and grid.minimum["2027-03-10"] == 3
    assert grid.short == []
    marks = {row.name: row.days.get("2027-03-10") for row in grid.rows}
    assert marks["山口 翼"] == "full" and marks["森 千尋"] == "am" and marks["池田 浩二"] == "pm?"


async def test_on_site_ratio(db, people):
    await set_policy(db, "GYOKAKU", min_onsite_ratio=0.8)  # 5 members → 4 must stay
    head = people["100006"]
    a = await book(db, people["100019"], "2027-03-11")
    assert codes(a[0]) == []
    await services.decide(db, CONFIG, head, [a[0].id], "approve", NOW)
    await db.commit()
    b = await book(db, people["100021"], "2027-03-11")
    assert codes(b[0]) == ["coverage"]


async def test_hard_rules_refuse_and_write_nothing(db, people):
    await set_policy(db, "GYOKAKU", eligible_types=["regular"], blackout_dates=[date(2027, 3, 17)])
    with pytest.raises(DomainError) as not_eligible:
        await book(db, people["100020"], "2027-03-10")  # fixed_term
    assert not_eligible.value.key == "telework.rule.not_eligible"
    await db.rollback()
    with pytest.raises(DomainError) as blackout:
        await book(db, people["100019"], "2027-03-15", kind="range", last_day=date(2027, 3, 19))
    assert blackout.value.key == "telework.rule.blackout"
    await db.rollback()
    with pytest.raises(DomainError) as past:
        await book(db, people["100019"], "2027-02-26")
    assert past.value.key == "telework.rule.past_day"
    await db.rollback()
    with pytest.raises(DomainError) as year_end:
        await book(db, people["100019"], "2027-12-29", now=at("2027-12-01 09:00"))
    assert (
        year_end.value.key == "telework.rule.non_working" and year_end.value.params["name"] == "年末年始休暇"
    )
    await db.rollback()
    assert (
        await db.execute(select(TeleworkDay).where(TeleworkDay.user_id == people["100019"].id))
    ).first() is None


async def test_custom_closure_is_named(db, people):
    hr = people["100008"]
    await policies.add_closure(
        db, hr, schemas.ClosureIn(day=date(2027, 3, 12), name="庁舎停電", name_en="Power cut")
    )
    await db.commit()
    with pytest.raises(DomainError) as closed:
        await book(db, people["100019"], "2027-03-12")
    assert closed.value.params["name"] == "庁舎停電"
    await db.rollback()
    # A range simply skips it, and says so in the preview.
    data = schemas.RequestIn(kind="range", first_day=date(2027, 3, 11), last_day=date(2027, 3, 15))
    preview = await services.preview(db, CONFIG, people["100019"], data, NOW)
    assert [d.day for d in preview.days] == [date(2027, 3, 11), date(2027, 3, 15)]
    assert preview.skipped == [{"day": "2027-03-12", "name": "庁舎停電"}]


async def test_emergency_mode_lifts_caps_and_notice_but_not_hard_rules(db, people):
    await set_policy(db, "SOMU", weekly_cap=1, notice_days=5)
    hr = people["100008"]
    await policies.start_emergency(
        db, hr, schemas.EmergencyIn(starts=date(2027, 3, 1), ends=date(2027, 3, 31), reason="感染症拡大")
    )
    await db.commit()
    days = await book(db, people["100019"], "2027-03-02", kind="range", last_day=date(2027, 3, 4))
    assert [codes(d) for d in days] == [[], [], []]
    with pytest.raises(DomainError):
        await book(db, people["100019"], "2027-03-06")  # Saturday is still no working day
    await db.rollback()


async def test_policy_versions_keep_history_and_inherit(db, people):
    await set_policy(db, "SOMU", weekly_cap=1)
    await set_policy(db, "SOMU", valid_from="2027-04-01", weekly_cap=3)
    listed = await policies.list_policies(db, "ja", await unit(db, "SOMU"))
    assert [(p.valid_from, p.valid_to) for p in listed] == [
        (date(2027, 4, 1), None),
        (date(2027, 3, 1), date(2027, 3, 31)),
    ]
    effective = await policies.effective(db, CONFIG, await unit(db, "GYOKAKU"), date(2027, 3, 15), "ja")
    assert (
        effective is not None
        and effective.weekly_cap == 1
        and effective.inherited_from == await unit(db, "SOMU")
    )
    march = await book(db, people["100019"], "2027-03-15", kind="range", last_day=date(2027, 3, 16))
    april = await book(db, people["100019"], "2027-04-05", kind="range", last_day=date(2027, 4, 6))
    assert [codes(d) for d in march] == [[], ["weekly_cap"]]
    assert [codes(d) for d in april] == [[], []]
    with pytest.raises(DomainError):
        await set_policy(db, "SOMU", valid_from="2027-02-01", weekly_cap=5)  # never rewrites the past
    await db.rollback()


async def test_preview_counts_what_is_left(db, people):
    await set_policy(db, "GYOKAKU", weekly_cap=3, monthly_cap=8)
    await book(db, people["100019"], "2027-03-02")
    data = schemas.RequestIn(first_day=date(2027, 3, 3), part="am")
    preview = await services.preview(db, CONFIG, people["100019"], data, NOW)
    left = preview.remaining[0]
    assert (left["week_used"], left["week_requested"], left["week_left"]) == (1, 0.5, 1.5)
    assert (left["month_used"], left["month_left"]) == (1, 6.5)
    assert preview.approver == "伊藤 直子" and not preview.refused


async def test_withdraw_and_cancel(db, people):
    member, head = people["100019"], people["100006"]
    days = await book(db, member, "2027-03-02", kind="range", last_day=date(2027, 3, 4))
    last_id = days[2].id
    await services.withdraw(db, member, [days[0].id], NOW)
    await services.decide(db, CONFIG, head, [days[1].id, days[2].id], "approve", NOW)
    await db.commit()
    cancelled = await services.withdraw(db, member, [days[1].id], NOW)
    assert cancelled[0].state == "cancelled" and cancelled[0].sequence == 2
    await db.commit()
    told = (await db.execute(select(Notification.key).where(Notification.user_id == head.id))).scalars().all()
    assert "telework.notify.cancelled" in told
    with pytest.raises(DomainError) as started:
        await services.withdraw(db, member, [last_id], at("2027-03-04 08:00"))
    assert started.value.key == "telework.cannot_cancel_started"
    await db.rollback()
    # Someone else's day is 'not found'.
    with pytest.raises(DomainError):
        await services.withdraw(db, people["100021"], [last_id], NOW)
    await db.rollback()


async def test_expiry_escalation_and_reminder_jobs(db, people):
    member = people["100019"]
    soon = await book(db, member, "2027-03-03")
    later = await book(db, member, "2027-03-10")
    config = TeleworkConfig(escalate_hours=24, remind_hours=48)
    # 2027-03-01 09:00: 3/3 08:30 is 47.5 h away → a reminder, no escalation yet.
    assert await approvals.remind_due(db, config, at("2027-03-01 09:00")) == 1
    assert await approvals.remind_due(db, config, at("2027-03-01 10:00")) == 0  # once only
    assert await approvals.escalate_due(db, config, at("2027-03-01 09:00")) == 0
    await db.commit()
    assert await approvals.escalate_due(db, config, at("2027-03-02 09:00")) == 1
    await db.commit()
    await db.refresh(soon[0])
    assert soon[0].approver_id == people["100003"].id and soon[0].escalated_from_id == people["100006"].id
    steps = (
        (await db.execute(select(ApprovalStep.action).where(ApprovalStep.day_id == soon[0].id)))
        .scalars()
        .all()
    )
    assert steps == ["escalate"]
    told = (
        await db.execute(
            select(Notification.user_id, Notification.key).where(Notification.key.like("%escalated%"))
        )
    ).all()
    assert set(told) == {
        (people["100003"].id, "telework.notify.escalated_to"),
        (people["100006"].id, "telework.notify.escalated_from"),
    }
    # The original approver can no longer decide; the upper head can.
    with pytest.raises(Forbidden):
        await services.decide(db, config, people["100006"], [soon[0].id], "approve", at("2027-03-02 10:00"))
    await db.rollback()
    assert await approvals.expire_due(db, config, at("2027-03-04 00:01")) == 1
    await db.commit()
    await db.refresh(soon[0])
    await db.refresh(later[0])
    assert soon[0].state == "expired" and later[0].state == "submitted"
    mails = (await db.execute(select(OutboxMessage.subject))).scalars().all()
    assert any("期限切れ" in s for s in mails) and any("上位に回付" in s for s in mails)


async def test_delegation_limited_to_a_subtree(db, people):
    head = people["100003"]  # 行政管理部: 行政改革課 and 契約監理課 below
    delegate = people["100021"]
    await approvals.delegate(
        db,
        head,
        schemas.DelegationIn(
            to_user_id=delegate.id,
            starts=date(2027, 3, 1),
            ends=date(2027, 3, 31),
            unit_id=await unit(db, "KEIYAKU"),
        ),
        date(2027, 3, 1),
    )
    await db.commit()
    # 100006 heads 行政改革課: their own request goes up to 100003.
    own = await book(db, people["100006"], "2027-03-10")
    assert own[0].approver_id == head.id
    with pytest.raises(Forbidden):  # 行政改革課 is outside the delegated subtree
        await services.decide(db, CONFIG, delegate, [own[0].id], "approve", NOW)
    await db.rollback()
    box = await approvals.inbox(db, CONFIG, delegate, today=NOW.date())
    assert box.items == []


async def test_the_state_machine_refuses_every_other_transition(db, people):
    """submitted → approved | rejected | withdrawn | expired; approved → cancelled; nothing else."""
    member, head = people["100019"], people["100006"]
    days = await book(db, member, "2027-03-02", kind="range", last_day=date(2027, 3, 5))
    ids = [d.id for d in days]
    await services.decide(db, CONFIG, head, [ids[0]], "approve", NOW)
    await services.decide(db, CONFIG, head, [ids[1]], "reject", NOW)
    await services.withdraw(db, member, [ids[2]], NOW)
    await db.commit()
    assert await approvals.expire_due(db, CONFIG, at("2027-03-06 00:10")) == 1  # ids[3]
    await db.commit()
    await services.withdraw(db, member, [ids[0]], NOW)  # approved → cancelled (before the day)
    await db.commit()
    for day_id in ids:  # every day is now final: no decision, withdrawal or cancellation changes it
        for attempt in (
            services.decide(db, CONFIG, head, [day_id], "approve", NOW, override_reason="x"),
            services.decide(db, CONFIG, head, [day_id], "reject", NOW),
            services.withdraw(db, member, [day_id], NOW),
        ):
            with pytest.raises(DomainError) as refused:
                await attempt
            assert refused.value.status_code == 409
            await db.rollback()
    states = await db.execute(
        select(TeleworkDay.state).where(TeleworkDay.id.in_(ids)).order_by(TeleworkDay.day)
    )
    assert list(states.scalars()) == ["cancelled", "rejected", "withdrawn", "expired"]
