"""Role rules for `scheduling` routes, merged into tests/test_route_roles.py's TABLE."""

from __future__ import annotations

from typing import Any

from tests.route_rule import PUBLIC, SIGNED_IN, Rule, page

RULES: dict[tuple[str, str], Rule] = {}

HEADS = ("unit_head", "hr_admin", "auditor", "sysadmin")
HR = ("hr_admin", "sysadmin")
T = "/api/telework"

# Sample request: 100019 (行政改革課) books a day; its unit head (the demo unit_head) and HR may read it.
TELEWORK_RULES: dict[tuple[str, str], Rule] = {
    ("POST", f"{T}/requests/preview"): Rule(SIGNED_IN, ok=400, body={}),
    ("POST", f"{T}/requests"): Rule(SIGNED_IN, ok=400, body={}),
    ("GET", f"{T}/requests"): Rule(SIGNED_IN),
    ("GET", f"{T}/days"): Rule(SIGNED_IN),
    ("GET", f"{T}/requests/{{request_id:int}}"): Rule(HEADS, denied=404),
    ("POST", f"{T}/requests/{{request_id:int}}/withdraw"): Rule(SIGNED_IN, ok=404),  # only the requester
    ("POST", f"{T}/days/{{day_id:int}}/withdraw"): Rule(SIGNED_IN, ok=404),
    ("GET", f"{T}/days/{{day_id:int}}/steps"): Rule(HEADS, denied=404),
    ("POST", f"{T}/days/{{day_id:int}}/comments"): Rule(SIGNED_IN, ok=400, body={}),
    ("GET", f"{T}/inbox"): Rule(SIGNED_IN),
    ("POST", f"{T}/days/{{day_id:int}}/decision"): Rule(SIGNED_IN, ok=400, body={}),
    ("POST", f"{T}/requests/{{request_id:int}}/decision"): Rule(SIGNED_IN, ok=400, body={}),
    ("POST", f"{T}/decisions"): Rule(SIGNED_IN, ok=400, body={}),
    ("GET", f"{T}/coverage"): Rule(HEADS, ok=400),  # no unit given
    ("GET", f"{T}/reports/missing"): Rule(HEADS),
    ("GET", f"{T}/delegations"): Rule(SIGNED_IN),
    ("POST", f"{T}/delegations"): Rule(SIGNED_IN, ok=400, body={}),
    ("DELETE", f"{T}/delegations/{{delegation_id:int}}"): Rule(SIGNED_IN, ok=404),
    ("GET", f"{T}/today"): Rule(SIGNED_IN),
    ("GET", f"{T}/notifications"): Rule(SIGNED_IN),
    ("POST", f"{T}/notifications/read"): Rule(SIGNED_IN, ok=204),
    ("POST", f"{T}/days/{{day_id:int}}/start"): Rule(SIGNED_IN, ok=404, body={}),  # not their day
    ("POST", f"{T}/days/{{day_id:int}}/end"): Rule(SIGNED_IN, ok=404, body={}),
    ("GET", f"{T}/calendar"): Rule(SIGNED_IN, ok=400),  # no from/to
    ("GET", f"{T}/policies"): Rule(SIGNED_IN),
    ("GET", f"{T}/policies/effective"): Rule(SIGNED_IN, ok=400),
    ("POST", f"{T}/policies"): Rule(HR, ok=400, body={}),
    ("GET", f"{T}/closures"): Rule(SIGNED_IN),
    ("POST", f"{T}/closures"): Rule(HR, ok=400, body={}),
    ("DELETE", f"{T}/closures/{{closure_id:int}}"): Rule(HR, ok=404),
    ("POST", f"{T}/emergencies"): Rule(HR, ok=400, body={}),
    ("POST", f"{T}/emergencies/{{emergency_id:int}}/end"): Rule(HR, ok=404),
}
RULES.update(TELEWORK_RULES)

# Telework pages (tests/scheduling/test_pages.py): forms answer 422 when empty, 404 outside one's own days.
PAGE_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/telework"): page(*SIGNED_IN),
    ("GET", "/telework/new"): page(*SIGNED_IN),
    ("POST", "/telework/new"): Rule(SIGNED_IN, ok=422, form={}),
    ("GET", "/telework/requests/{request_id:int}"): page(*HEADS, denied=404),
    ("POST", "/telework/requests/{request_id:int}/withdraw"): Rule(SIGNED_IN, ok=404, form={}),
    ("POST", "/telework/days/{day_id:int}/withdraw"): Rule(SIGNED_IN, ok=404, form={}),
    ("POST", "/telework/requests/{request_id:int}/comment"): Rule(HEADS, ok=422, denied=404, form={}),
    ("POST", "/telework/days/{day_id:int}/report"): Rule(SIGNED_IN, ok=404, form={}),
    ("GET", "/telework/inbox"): page(*SIGNED_IN),
    ("POST", "/telework/inbox/decide"): Rule(SIGNED_IN, ok=422, form={}),
    ("GET", "/telework/coverage"): page(*HEADS),
    ("GET", "/telework/notifications"): page(*SIGNED_IN),
    ("POST", "/telework/feeds"): Rule(SIGNED_IN, ok=200, form={}),
    ("POST", "/telework/feeds/{feed_id:int}/revoke"): Rule(SIGNED_IN, ok=404, form={}),
}
RULES.update(PAGE_RULES)

# The indicator (tests/scheduling/test_indicator.py): unit heads see their subtree; HR closes and corrects.
READERS = ("unit_head", "hr_admin", "auditor", "sysadmin")
INDICATOR_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/indicator/months"): Rule(READERS),
    ("GET", "/api/indicator/months.csv"): Rule(READERS),
    ("GET", "/api/indicator/opendata.csv"): Rule(READERS),
    ("POST", "/api/indicator/months/{month:str}/close"): Rule(HR),  # a long-finished month: closed now
    ("POST", "/api/indicator/months/{month:str}/revisions"): Rule(HR, ok=400, body={}),
    ("GET", "/api/indicator/targets"): Rule(READERS),
    ("PUT", "/api/indicator/targets/{fiscal_year:int}"): Rule(HR, ok=400, body={}),
    ("GET", "/indicator"): page(*READERS),
    ("POST", "/indicator/targets"): Rule(HR, ok=422, form={}),
    ("POST", "/indicator/revisions"): Rule(HR, ok=400, form={}),
}
RULES.update(INDICATOR_RULES)


async def telework_samples(db: Any) -> dict[str, str]:
    """A submitted day for 100019 (行政改革課), far enough ahead to stay undecided."""
    from datetime import date

    from sqlalchemy import select

    from auth.models import User
    from scheduling.models import TeleworkDay, TeleworkRequest

    user = (await db.execute(select(User).where(User.employee_number == "100019"))).scalar_one()
    head = (await db.execute(select(User.id).where(User.employee_number == "100006"))).scalar_one()
    req = TeleworkRequest(
        user_id=user.id,
        unit_id=user.unit_id,
        kind="single",
        first_day=date(2030, 6, 3),
        last_day=date(2030, 6, 3),
    )
    db.add(req)
    await db.flush()
    day = TeleworkDay(
        request_id=req.id, user_id=user.id, unit_id=user.unit_id, day=date(2030, 6, 3), approver_id=head
    )
    db.add(day)
    await db.commit()
    return {
        "{request_id:int}": str(req.id),
        "{day_id:int}": str(day.id),
        "{delegation_id:int}": "999999",
        "{closure_id:int}": "999999",
        "{emergency_id:int}": "999999",
        "{month:str}": "2020-01",
        "{fiscal_year:int}": "2027",
    }


# iCalendar feeds (tests/scheduling/test_ical.py): anyone signed in manages their own feed addresses;
# the sample feed belongs to 100019, so every other person gets 'not found' when revoking it.
# The feed itself needs no sign-in: an unknown token is 'not found' for everyone.
FEED_RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{T}/feeds"): Rule(SIGNED_IN),
    ("POST", f"{T}/feeds"): Rule(SIGNED_IN, ok=201, body={"kind": "personal"}),
    ("DELETE", f"{T}/feeds/{{feed_id:int}}"): Rule(SIGNED_IN, ok=404),
    ("GET", "/ical/{token:str}"): Rule(PUBLIC, ok=404),
}
RULES.update(FEED_RULES)


async def feed_samples(db: Any) -> dict[str, str]:
    """A live personal feed of 100019 (no demo role), and a well-formed token nobody holds."""
    from sqlalchemy import select

    from auth.models import User
    from scheduling.feeds import hash_token
    from scheduling.models import CalendarFeed

    owner = (await db.execute(select(User.id).where(User.employee_number == "100019"))).scalar_one()
    feed = CalendarFeed(
        user_id=owner, kind="personal", token_hash=hash_token("route-rules-sample-feed-token")
    )
    db.add(feed)
    await db.commit()
    return {"{feed_id:int}": str(feed.id), "{token:str}": "no-such-feed-token-0123456789abcdef.ics"}


# HTML pages of scheduling/admin_pages.py. HR's forms posted empty are explained (422); the sample
# closure, emergency and delegation ids (999999) do not exist. Only someone with units in scope
# (the demo unit head) may name a delegate; anyone may revoke their own (others' are 'not found').
ADMIN_PAGE_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/admin/telework"): page(*HR),
    ("POST", "/admin/telework/policies"): Rule(HR, ok=422, form={}),
    ("POST", "/admin/telework/closures"): Rule(HR, ok=422, form={}),
    ("POST", "/admin/telework/closures/{closure_id:int}/delete"): Rule(HR, ok=404, form={}),
    ("POST", "/admin/telework/emergencies"): Rule(HR, ok=422, form={}),
    ("POST", "/admin/telework/emergencies/{emergency_id:int}/end"): Rule(HR, ok=404, form={}),
    ("GET", "/telework/delegations"): page(*SIGNED_IN),
    ("POST", "/telework/delegations"): Rule(("unit_head",), ok=422, form={}),
    ("POST", "/telework/delegations/{delegation_id:int}/revoke"): Rule(SIGNED_IN, ok=404, form={}),
}
RULES.update(ADMIN_PAGE_RULES)


# Meetings (tests/scheduling/test_meetings_*.py). The sample meeting is 100019's, with the demo employee
# (100012) invited: the employee may read and answer it but not cancel it (403); to everyone else it
# does not exist (404). Empty bodies are refused before any permission check (400).
M = "/api/meetings"
MEETING_RULES: dict[tuple[str, str], Rule] = {
    ("GET", M): Rule(SIGNED_IN),
    ("POST", M): Rule(SIGNED_IN, ok=400, body={}),
    ("GET", f"{M}/directory"): Rule(SIGNED_IN),
    ("GET", f"{M}/freebusy"): Rule(SIGNED_IN, ok=400),  # no users/from/to
    ("GET", f"{M}/{{meeting_id:int}}"): Rule(("employee",), denied=404),
    ("PUT", f"{M}/{{meeting_id:int}}"): Rule(SIGNED_IN, ok=400, body={}),
    ("POST", f"{M}/{{meeting_id:int}}/cancel"): Rule(("employee",), ok=403, denied=404, body={}),
    ("POST", f"{M}/{{meeting_id:int}}/occurrences/{{recurrence_id:str}}/move"): Rule(
        SIGNED_IN, ok=400, body={}
    ),
    ("POST", f"{M}/{{meeting_id:int}}/occurrences/{{recurrence_id:str}}/cancel"): Rule(
        ("employee",), ok=403, denied=404, body={}
    ),
    ("POST", f"{M}/{{meeting_id:int}}/respond"): Rule(("employee",), denied=404, body={"answer": "ACCEPTED"}),
}
RULES.update(MEETING_RULES)

# Meeting pages (tests/scheduling/test_meetings_pages.py): the same sample meeting; forms posted empty
# are explained (422) where anyone may post them, else refused like the API.
MP = "/meetings/{meeting_id:int}"
MEETING_PAGE_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/meetings"): page(*SIGNED_IN),
    ("GET", "/meetings/new"): page(*SIGNED_IN),
    ("POST", "/meetings/new"): Rule(SIGNED_IN, ok=422, form={}),
    ("GET", MP): page("employee", denied=404),
    ("POST", f"{MP}/respond"): Rule(SIGNED_IN, ok=422, form={}),
    ("POST", f"{MP}/cancel"): Rule(("employee",), ok=403, denied=404, form={}),
    ("GET", f"{MP}/edit"): page("employee", ok=403, denied=404),
    ("POST", f"{MP}/edit"): Rule(("employee",), ok=403, denied=404, form={}),
    ("POST", f"{MP}/occurrences/{{recurrence_id:str}}/move"): Rule(
        ("employee",), ok=403, denied=404, form={}
    ),
    ("POST", f"{MP}/occurrences/{{recurrence_id:str}}/cancel"): Rule(
        ("employee",), ok=403, denied=404, form={}
    ),
}
RULES.update(MEETING_PAGE_RULES)


async def meeting_samples(db: Any) -> dict[str, str]:
    """A meeting of 100019's in 2030 with the demo employee (100012) invited."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from auth.models import User
    from scheduling.models import Meeting, MeetingAttendee

    organizer = (await db.execute(select(User.id).where(User.employee_number == "100019"))).scalar_one()
    member = (await db.execute(select(User).where(User.employee_number == "100012"))).scalar_one()
    meeting = Meeting(
        uid="meeting-route-rules@localhost",
        room_id="route-rules-room",
        organizer_id=organizer,
        title="sample",
        start_at=datetime(2030, 6, 3, 1, 0, tzinfo=UTC),
        end_at=datetime(2030, 6, 3, 2, 0, tzinfo=UTC),
    )
    db.add(meeting)
    await db.flush()
    db.add(MeetingAttendee(meeting_id=meeting.id, user_id=member.id, email=member.email, name=member.name))
    await db.commit()
    return {"{meeting_id:int}": str(meeting.id), "{recurrence_id:str}": "20300603T010000Z"}


async def samples(db: Any) -> dict[str, str]:
    """Values for this package's path placeholders (e.g. '{loan_id:int}': '3'), made in the test database."""
    return {**await telework_samples(db), **await feed_samples(db), **await meeting_samples(db)}
