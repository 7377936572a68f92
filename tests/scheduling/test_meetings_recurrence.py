"""Repeat rules built from form fields, expanded on the Tokyo wall clock, with exceptions applied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.errors import DomainError
from scheduling.config import TOKYO
from scheduling.meeting_recurrence import Recurrence, build_rrule, expand, parse_rrule, rid_text, starts

START = datetime(2027, 3, 9, 10, 0, tzinfo=TOKYO)  # the second Tuesday of March


def local_days(rule: str) -> list[str]:
    return [s.astimezone(TOKYO).strftime("%m-%d %H:%M") for s in starts(rule, START, TOKYO)]


def test_weekly_on_two_days_every_other_week():
    rule = build_rrule(Recurrence(freq="weekly", interval=2, byday=("TU", "TH"), count=4), START, TOKYO)
    assert rule == "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;COUNT=4"
    assert local_days(rule) == ["03-09 10:00", "03-11 10:00", "03-23 10:00", "03-25 10:00"]


def test_monthly_on_the_same_weekday_until_a_day():
    until = datetime(2027, 6, 8, 23, 59, 59, tzinfo=TOKYO)
    rule = build_rrule(Recurrence(freq="monthly", monthly_by="weekday", until=until), START, TOKYO)
    assert rule == "FREQ=MONTHLY;BYDAY=2TU;UNTIL=20270608T145959Z"
    assert local_days(rule) == ["03-09 10:00", "04-13 10:00", "05-11 10:00", "06-08 10:00"]
    back = parse_rrule(rule, TOKYO)
    assert (back.freq, back.monthly_by, back.count) == ("monthly", "weekday", None)
    assert back.until is not None and back.until.date().isoformat() == "2027-06-08"


@pytest.mark.parametrize(
    ("rec", "key"),
    [
        (Recurrence(freq="daily", count=3), "meeting.rrule.freq"),
        (Recurrence(freq="weekly"), "meeting.rrule.bound"),
        (Recurrence(freq="weekly", count=3, until=START), "meeting.rrule.bound"),
        (Recurrence(freq="weekly", count=101), "meeting.rrule.count"),
        (Recurrence(freq="weekly", count=1), "meeting.rrule.count"),
        (Recurrence(freq="weekly", interval=5, count=3), "meeting.rrule.interval"),
        (Recurrence(freq="weekly", byday=("MO",), count=3), "meeting.rrule.byday_start"),
        (Recurrence(freq="weekly", until=datetime(2029, 3, 20, tzinfo=TOKYO)), "meeting.rrule.until"),
        (Recurrence(freq="weekly", until=datetime(2027, 3, 1, tzinfo=TOKYO)), "meeting.rrule.until_before"),
        (Recurrence(freq="weekly", until=datetime(2027, 3, 10, tzinfo=TOKYO)), "meeting.rrule.single"),
    ],
)
def test_rules_out_of_bounds_are_refused(rec, key):
    with pytest.raises(DomainError) as caught:
        build_rrule(rec, START, TOKYO)
    assert caught.value.key == key and caught.value.status_code == 422


def test_month_end_dates_cannot_repeat_by_date():
    end_of_month = datetime(2027, 3, 31, 10, 0, tzinfo=TOKYO)
    with pytest.raises(DomainError) as caught:
        build_rrule(Recurrence(freq="monthly", count=3), end_of_month, TOKYO)
    assert caught.value.key == "meeting.rrule.month_end"
    rule = build_rrule(Recurrence(freq="monthly", monthly_by="weekday", count=3), end_of_month, TOKYO)
    assert rule == "FREQ=MONTHLY;BYDAY=-1WE;COUNT=3"  # the fifth Wednesday is "the last" one


def test_expand_applies_moves_and_cancellations():
    rule = "FREQ=WEEKLY;COUNT=3"
    end = datetime(2027, 3, 9, 11, 0, tzinfo=TOKYO)
    second = datetime(2027, 3, 16, 1, 0, tzinfo=UTC)
    third = datetime(2027, 3, 23, 1, 0, tzinfo=UTC)
    moved_to = datetime(2027, 3, 17, 6, 0, tzinfo=UTC)
    occ = expand(
        rule,
        START,
        end,
        TOKYO,
        [(second, moved_to, moved_to.replace(hour=7), False), (third.replace(tzinfo=None), None, None, True)],
    )
    assert [(rid_text(o.recurrence_id), o.start_at.isoformat(), o.moved, o.cancelled) for o in occ] == [
        ("20270309T010000Z", "2027-03-09T01:00:00+00:00", False, False),
        ("20270316T010000Z", "2027-03-17T06:00:00+00:00", True, False),
        ("20270323T010000Z", "2027-03-23T01:00:00+00:00", False, True),
    ]
