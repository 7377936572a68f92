"""Meetings API: schedule, change, cancel, move or cancel one occurrence, answer; rules and permissions."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from app.audit import AuditEvent
from app.mail import OutboxMessage
from scheduling.models import Meeting, MeetingAttendee

ORGANIZER = "100019"  # 山口 翼 (行政改革課)
MEMBER = "100012"  # 山本 さくら, the demo employee
OTHER = "100020"  # 森 千尋
HEAD = "100006"  # 伊藤 直子


async def uid_of(client, number: str) -> int:
    found = (await client.get("/api/meetings/directory", params={"q": number})).json()
    return next(p["id"] for p in found if p["employee_number"] == number)


def body(**extra) -> dict:
    return {
        "title": "定例会議",
        "agenda": "1. 進捗\n2. 課題",
        "start": "2027-03-08T10:00:00",
        "end": "2027-03-08T11:00:00",
        **extra,
    }


async def outbox(db, to: str) -> list[OutboxMessage]:
    await db.rollback()
    rows = await db.execute(select(OutboxMessage).where(OutboxMessage.to_addr == to))
    return list(rows.scalars())


async def test_create_get_list_and_invitations(make_client, clock, db):
    organizer = await make_client(login=ORGANIZER)
    member = await make_client(login=MEMBER)
    member_id = await uid_of(organizer, MEMBER)
    r = await organizer.post(
        "/api/meetings", json=body(attendee_ids=[member_id], emails=["Partner@Example.com"])
    )
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["my_role"] == "organizer" and m["can_edit"] and m["can_cancel"]
    assert m["start"] == "2027-03-08T01:00:00Z" and m["end"] == "2027-03-08T02:00:00Z"
    assert (m["uid"].startswith("meeting-") and m["uid"].endswith("@localhost")) or "@" in m["uid"]
    assert 8 <= len(m["room_id"]) <= 32 and m["join_url"].endswith(f"/rooms/{m['room_id']}")
    emails = sorted(a["email"] for a in m["attendees"])
    assert emails == ["partner@example.com", "sakura.yamamoto@example.lg.jp"]
    assert all(a["partstat"] == "NEEDS-ACTION" for a in m["attendees"])

    seen = (await member.get(f"/api/meetings/{m['id']}")).json()
    assert seen["my_role"] == "attendee" and seen["my_answer"] == "NEEDS-ACTION" and not seen["can_edit"]
    assert (await (await make_client(login=OTHER)).get(f"/api/meetings/{m['id']}")).status_code == 404

    mine = (await member.get("/api/meetings")).json()
    assert mine["total"] == 1 and mine["items"][0]["title"] == "定例会議"
    assert mine["items"][0]["my_answer"] == "NEEDS-ACTION" and mine["items"][0]["organizer_name"] == "山口 翼"

    assert await outbox(db, "sakura.yamamoto@example.lg.jp")
    assert await outbox(db, "partner@example.com")
    audit = (await db.execute(select(AuditEvent).where(AuditEvent.action == "meeting.created"))).scalars()
    assert [a.entity_id for a in audit] == [str(m["id"])]

    again = await organizer.post("/api/meetings", json=body())
    assert again.status_code == 409 and "二重登録" in again.json()["detail"]


async def test_validation_messages(make_client, clock):
    organizer = await make_client(login=ORGANIZER)
    cases = [
        (body(end="2027-03-08T09:00:00"), "終了は開始より後"),
        (body(end="2027-03-08T23:00:00"), "12時間まで"),
        (body(title="   "), "件名を1〜200文字"),
        (body(start="2027-02-01T10:00:00", end="2027-02-01T11:00:00"), "過去の日時"),
        (body(emails=["not an address"]), "メールアドレスの形"),
        (body(attendee_ids=[999999]), "見つからないか"),
        (body(freq="weekly"), "回数」か「終了日"),
        (body(freq="weekly", count=101), "2〜100回"),
        (body(freq="monthly", until="2029-04-01"), "2年以内"),
        (body(freq="weekly", count=3, byday=["TU"]), "初回の日の曜日"),
        (body(freq="daily", count=3), None),
        (body(rrule="FREQ=DAILY"), None),
        (body(emails=[f"p{i}@example.com" for i in range(201)]), None),
    ]
    for payload, text in cases:
        r = await organizer.post("/api/meetings", json=payload)
        assert 400 <= r.status_code < 500, (payload, r.text)
        if text:
            assert text in r.json()["detail"], r.text
    en = await organizer.post(
        "/api/meetings", json=body(end="2027-03-08T09:00:00"), headers={"accept-language": "en"}
    )
    assert en.status_code == 422  # the person's own locale (ja) wins over the header
    assert (
        await organizer.post("/api/meetings", json=body(attendee_ids=list(range(1, 202))))
    ).status_code in (400, 422)


async def test_update_sends_new_version_and_cancels_removed(make_client, clock, db):
    organizer = await make_client(login=ORGANIZER)
    member_id = await uid_of(organizer, MEMBER)
    other_id = await uid_of(organizer, OTHER)
    m = (await organizer.post("/api/meetings", json=body(attendee_ids=[member_id, other_id]))).json()
    member = await make_client(login=MEMBER)
    await member.post(f"/api/meetings/{m['id']}/respond", json={"answer": "ACCEPTED"})

    r = await organizer.put(
        f"/api/meetings/{m['id']}",
        json=body(
            title="定例会議（変更）",
            start="2027-03-08T13:00:00",
            end="2027-03-08T14:00:00",
            attendee_ids=[member_id],
            cohost_ids=[member_id],
            sequence=m["sequence"],
        ),
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["sequence"] == m["sequence"] + 1 and changed["title"] == "定例会議（変更）"
    assert [(a["email"], a["role"], a["partstat"]) for a in changed["attendees"]] == [
        ("sakura.yamamoto@example.lg.jp", "cohost", "NEEDS-ACTION")  # a new time asks again
    ]
    removed = await outbox(db, "chihiro.mori@example.lg.jp")
    assert any("CANCEL" in (o.calendar_text or "") for o in removed)
    # the co-host may edit; an attendee may not
    r = await member.put(
        f"/api/meetings/{m['id']}",
        json=body(title="共同主催者が変更", attendee_ids=[member_id], cohost_ids=[member_id], sequence=1),
    )
    assert r.status_code == 200 and r.json()["sequence"] == 2
    # ...but only the organizer cancels the series
    assert (await member.post(f"/api/meetings/{m['id']}/cancel", json={})).status_code == 403
    outsider = await make_client(login=OTHER)
    assert (await outsider.post(f"/api/meetings/{m['id']}/cancel", json={})).status_code == 404
    assert (await outsider.put(f"/api/meetings/{m['id']}", json=body(sequence=2))).status_code == 404


async def test_stale_edit_is_refused_not_lost(make_client, clock):
    organizer = await make_client(login=ORGANIZER)
    member_id = await uid_of(organizer, MEMBER)
    m = (
        await organizer.post("/api/meetings", json=body(attendee_ids=[member_id], cohost_ids=[member_id]))
    ).json()
    cohost = await make_client(login=MEMBER)
    first = body(title="A", attendee_ids=[member_id], cohost_ids=[member_id], sequence=0)
    second = body(title="B", attendee_ids=[member_id], cohost_ids=[member_id], sequence=0)
    r1, r2 = await asyncio.gather(
        organizer.put(f"/api/meetings/{m['id']}", json=first),
        cohost.put(f"/api/meetings/{m['id']}", json=second),
    )
    assert sorted([r1.status_code, r2.status_code]) == [200, 409], (r1.text, r2.text)
    loser = r1 if r1.status_code == 409 else r2
    assert "ほかの人が変更しました" in loser.json()["detail"]
    now = (await organizer.get(f"/api/meetings/{m['id']}")).json()
    assert now["sequence"] == 1 and now["title"] == ("A" if r1.status_code == 200 else "B")


async def test_two_simultaneous_creates_make_one_meeting(make_client, clock, db):
    organizer = await make_client(login=ORGANIZER)
    member_id = await uid_of(organizer, MEMBER)
    twice = body(title="同時クリック", attendee_ids=[member_id])
    r1, r2 = await asyncio.gather(
        organizer.post("/api/meetings", json=twice), organizer.post("/api/meetings", json=twice)
    )
    assert sorted([r1.status_code, r2.status_code]) == [201, 409], (r1.text, r2.text)
    await db.rollback()
    rows = (await db.execute(select(Meeting).where(Meeting.title == "同時クリック"))).scalars().all()
    assert len(rows) == 1


async def test_series_move_and_cancel_one_occurrence(make_client, clock, db):
    organizer = await make_client(login=ORGANIZER)
    member = await make_client(login=MEMBER)
    member_id = await uid_of(organizer, MEMBER)
    m = (
        await organizer.post(
            "/api/meetings",
            json=body(freq="weekly", count=4, byday=["MO"], attendee_ids=[member_id]),
        )
    ).json()
    assert m["rrule"] == "FREQ=WEEKLY;COUNT=4" and m["series_end"] == "2027-03-29T02:00:00Z"
    listed = (await member.get("/api/meetings", params={"from": "2027-03-01T00:00:00+09:00"})).json()
    assert [i["start"] for i in listed["items"]] == [
        "2027-03-08T01:00:00Z",
        "2027-03-15T01:00:00Z",
        "2027-03-22T01:00:00Z",
        "2027-03-29T01:00:00Z",
    ]
    rid = listed["items"][1]["recurrence_id"]
    assert rid == "20270315T010000Z"
    moved = await organizer.post(
        f"/api/meetings/{m['id']}/occurrences/{rid}/move",
        json={"start": "2027-03-16T15:00:00", "end": "2027-03-16T16:00:00"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["sequence"] == 1
    assert moved.json()["exceptions"] == [
        {
            "recurrence_id": rid,
            "start": "2027-03-16T06:00:00Z",
            "end": "2027-03-16T07:00:00Z",
            "moved": True,
            "cancelled": False,
        }
    ]
    cancelled = await organizer.post(
        f"/api/meetings/{m['id']}/occurrences/20270322T010000Z/cancel", json={"sequence": 1}
    )
    assert cancelled.status_code == 200 and cancelled.json()["sequence"] == 2
    listed = (await member.get("/api/meetings", params={"from": "2027-03-01T00:00:00+09:00"})).json()
    assert [(i["start"], i["moved"]) for i in listed["items"]] == [
        ("2027-03-08T01:00:00Z", False),
        ("2027-03-16T06:00:00Z", True),
        ("2027-03-29T01:00:00Z", False),
    ]
    # not an occurrence, already cancelled, stale, an attendee trying
    base = f"/api/meetings/{m['id']}/occurrences"
    assert (await organizer.post(f"{base}/20270323T010000Z/cancel", json={})).status_code == 404
    assert (await organizer.post(f"{base}/20270322T010000Z/cancel", json={})).status_code == 409
    assert (await organizer.post(f"{base}/20270329T010000Z/cancel", json={"sequence": 0})).status_code == 409
    assert (await member.post(f"{base}/20270329T010000Z/cancel", json={})).status_code == 403
    assert (await organizer.post(f"{base}/not-a-rid/cancel", json={})).status_code in (400, 404)
    # an occurrence that has begun is history
    clock.set("2027-03-08 10:30")
    assert (
        await organizer.post(
            f"{base}/20270308T010000Z/move",
            json={"start": "2027-03-09T10:00:00", "end": "2027-03-09T11:00:00"},
        )
    ).status_code == 409
    mails = await outbox(db, "sakura.yamamoto@example.lg.jp")
    assert len(mails) >= 3  # invitation, moved occurrence, cancelled occurrence
    actions = [
        a.action
        for a in (await db.execute(select(AuditEvent).where(AuditEvent.entity_type == "meeting"))).scalars()
    ]
    assert actions == ["meeting.created", "meeting.occurrence_moved", "meeting.occurrence_cancelled"]


async def test_respond_and_cancel_series(make_client, clock, db):
    organizer = await make_client(login=ORGANIZER)
    member = await make_client(login=MEMBER)
    member_id = await uid_of(organizer, MEMBER)
    m = (await organizer.post("/api/meetings", json=body(attendee_ids=[member_id]))).json()
    for answer in ("TENTATIVE", "DECLINED", "ACCEPTED"):
        r = await member.post(f"/api/meetings/{m['id']}/respond", json={"answer": answer})
        assert r.status_code == 200 and r.json()["my_answer"] == answer
    shown = (await organizer.get(f"/api/meetings/{m['id']}")).json()
    assert shown["attendees"][0]["partstat"] == "ACCEPTED" and shown["attendees"][0]["responded_at"]
    # An answer to the version the page showed before a change is refused, not kept against the new time.
    stale = await member.post(f"/api/meetings/{m['id']}/respond", json={"answer": "DECLINED", "sequence": 7})
    assert stale.status_code == 409 and "もう一度回答してください" in stale.json()["detail"]
    current = (await member.get(f"/api/meetings/{m['id']}")).json()["sequence"]
    fresh = {"answer": "ACCEPTED", "sequence": current}
    assert (await member.post(f"/api/meetings/{m['id']}/respond", json=fresh)).status_code == 200
    # The organizer sees each answer in the app's notifications (a repeated answer adds nothing).
    assert (
        await member.post(f"/api/meetings/{m['id']}/respond", json={"answer": "ACCEPTED"})
    ).status_code == 200
    told = (await organizer.get("/telework/notifications")).text
    assert told.count(m["title"]) == 3 and "参加と回答しました" in told and "不参加と回答しました" in told
    assert (
        await member.post(f"/api/meetings/{m['id']}/respond", json={"answer": "MAYBE"})
    ).status_code == 400
    assert (
        await organizer.post(f"/api/meetings/{m['id']}/respond", json={"answer": "ACCEPTED"})
    ).status_code == 403
    outsider = await make_client(login=OTHER)
    assert (
        await outsider.post(f"/api/meetings/{m['id']}/respond", json={"answer": "ACCEPTED"})
    ).status_code == 404

    r = await organizer.post(f"/api/meetings/{m['id']}/cancel", json={})
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["sequence"] == 1
    assert (await member.get("/api/meetings")).json()["total"] == 0
    assert (await organizer.post(f"/api/meetings/{m['id']}/cancel", json={})).status_code == 409
    await db.rollback()
    row = await db.get(Meeting, m["id"])
    assert row.status == "cancelled"
    people = (
        await db.execute(select(MeetingAttendee).where(MeetingAttendee.meeting_id == m["id"]))
    ).scalars()
    assert [p.partstat for p in people] == ["ACCEPTED"]


async def test_directory_finds_people_by_kana_name_email_and_number(make_client, clock):
    client = await make_client(login=MEMBER)
    for q in ("やまぐち", "ヤマグチ", "やまぐちつばさ", "山口", "tsubasa.yamaguchi", "100019"):
        found = (await client.get("/api/meetings/directory", params={"q": q})).json()
        assert "山口 翼" in [p["name"] for p in found], q
    assert (await client.get("/api/meetings/directory", params={"q": "%"})).json() == []
    assert (await client.get("/api/meetings/directory")).json() == []
    many = (await client.get("/api/meetings/directory", params={"q": "example"})).json()
    assert len(many) == 20


async def test_freebusy_shows_meetings_and_telework(make_client, clock, db):
    from datetime import date

    from auth.models import User
    from scheduling.models import TeleworkDay, TeleworkRequest

    organizer = await make_client(login=ORGANIZER)
    member_id = await uid_of(organizer, MEMBER)
    other_id = await uid_of(organizer, OTHER)
    await organizer.post(
        "/api/meetings",
        json=body(freq="weekly", count=3, attendee_ids=[member_id]),
    )
    other = await db.get(User, other_id)
    req = TeleworkRequest(
        user_id=other_id,
        unit_id=other.unit_id,
        kind="single",
        first_day=date(2027, 3, 15),
        last_day=date(2027, 3, 15),
    )
    db.add(req)
    await db.flush()
    db.add(
        TeleworkDay(
            request_id=req.id,
            user_id=other_id,
            unit_id=other.unit_id,
            day=date(2027, 3, 15),
            part="pm",
            state="approved",
        )
    )
    db.add(
        TeleworkDay(
            request_id=req.id,
            user_id=other_id,
            unit_id=other.unit_id,
            day=date(2027, 3, 16),
            part="full",
            state="submitted",
        )
    )
    await db.commit()
    r = await organizer.get(
        "/api/meetings/freebusy",
        params={
            "users": f"{member_id},{other_id}",
            "from": "2027-03-15T00:00:00",
            "to": "2027-03-17T00:00:00",
        },
    )
    assert r.status_code == 200, r.text
    by_user = {u["user_id"]: u["blocks"] for u in r.json()["users"]}
    assert by_user[member_id] == [
        {
            "start": "2027-03-15T01:00:00Z",
            "end": "2027-03-15T02:00:00Z",
            "kind": "meeting",
            "part": "",
            "tentative": True,
        }
    ]
    assert by_user[other_id] == [
        {
            "start": "2027-03-15T04:00:00Z",
            "end": "2027-03-15T08:15:00Z",
            "kind": "telework",
            "part": "pm",
            "tentative": False,
        }
    ]
    bad = await organizer.get(
        "/api/meetings/freebusy",
        params={"users": "x", "from": "2027-03-15T00:00:00", "to": "2027-03-16T00:00:00"},
    )
    assert bad.status_code == 400
    wide = await organizer.get(
        "/api/meetings/freebusy",
        params={"users": "1", "from": "2027-03-15T00:00:00", "to": "2027-06-16T00:00:00"},
    )
    assert wide.status_code == 400 and "31日" in wide.json()["detail"]


async def test_odd_input_is_refused_never_a_server_error(make_client, clock):
    client = await make_client(login=ORGANIZER)
    for payload in (
        body(start="0001-01-01T00:00:00", end="0001-01-01T01:00:00"),
        body(start="9999-12-31T23:00:00-12:00", end="9999-12-31T23:59:00-12:00"),
        body(title="\x00\x01"),
        body(freq="weekly", until="9999-12-31"),
        body(freq="monthly", count=5, start="2027-03-31T10:00:00", end="2027-03-31T11:00:00"),
    ):
        r = await client.post("/api/meetings", json=payload)
        assert 400 <= r.status_code < 500, (payload, r.text)
    for params in ({"q": "\x00"}, {"q": "%_\\"}):
        assert (await client.get("/api/meetings/directory", params=params)).status_code == 200
    fb = {"from": "2027-03-15T00:00:00", "to": "2027-03-16T00:00:00"}
    for users in ("²", "99999999999", ",".join(str(i) for i in range(1, 60))):
        assert (await client.get("/api/meetings/freebusy", params={"users": users, **fb})).status_code == 400
    assert (await client.get("/api/meetings", params={"from": "9999-12-31T00:00:00"})).status_code in (
        400,
        422,
    )
    assert (await client.get("/api/meetings", params={"from": "0001-01-01T00:00:00"})).status_code in (
        400,
        422,
    )
    # seconds are dropped: the first occurrence of a series is the meeting's own start
    r = await client.post(
        "/api/meetings",
        json=body(start="2027-03-08T10:00:30.5", end="2027-03-08T11:00:00", freq="weekly", count=2),
    )
    assert r.status_code == 201 and r.json()["start"] == "2027-03-08T01:00:00Z"
    listed = (await client.get("/api/meetings")).json()
    assert [i["recurrence_id"] for i in listed["items"]] == ["20270308T010000Z", "20270315T010000Z"]


async def test_changing_a_series_keeps_the_exceptions_that_still_exist(make_client, clock):
    organizer = await make_client(login=ORGANIZER)
    m = (await organizer.post("/api/meetings", json=body(freq="weekly", count=3))).json()
    base = f"/api/meetings/{m['id']}/occurrences"
    assert (await organizer.post(f"{base}/20270315T010000Z/cancel", json={})).status_code == 200
    longer = await organizer.put(f"/api/meetings/{m['id']}", json=body(freq="weekly", count=5, sequence=1))
    assert longer.status_code == 200
    assert [e["recurrence_id"] for e in longer.json()["exceptions"]] == ["20270315T010000Z"]
    assert longer.json()["series_end"] == "2027-04-05T02:00:00Z"
    later = await organizer.put(
        f"/api/meetings/{m['id']}",
        json=body(start="2027-03-08T14:00:00", end="2027-03-08T15:00:00", freq="weekly", count=5, sequence=2),
    )
    assert later.status_code == 200 and later.json()["exceptions"] == []  # no occurrence starts at 10:00 now


async def test_a_meeting_that_is_over_cannot_be_changed(make_client, clock):
    organizer = await make_client(login=ORGANIZER)
    m = (await organizer.post("/api/meetings", json=body())).json()
    clock.set("2027-03-08 11:30")
    r = await organizer.put(f"/api/meetings/{m['id']}", json=body(title="後から変更", sequence=0))
    assert r.status_code == 409 and "終わった会議" in r.json()["detail"]
    assert (await organizer.get("/api/meetings")).json()["total"] == 0  # the list shows what is ahead
    past = await organizer.get("/api/meetings", params={"from": "2027-03-08T00:00:00"})
    assert past.json()["total"] == 1
