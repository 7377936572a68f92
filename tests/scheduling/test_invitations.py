"""Meeting invitations end to end: rows → outbox → a real SMTP server (aiosmtpd on loopback) → parsed back.

Meetings are arranged directly in the database (the scheduling flow has its own tests). Each delivered
message is taken apart as a mail client would: MIME layout, the method parameter, the attachment, and the
calendar object read by two independent parsers (icalendar, which wrote it, and vobject, which did not).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject
from sqlalchemy import select

from app import signing
from app.audit import AuditEvent
from app.errors import Conflict, DomainError, NotFound
from app.mail import OutboxMessage, deliver_due
from auth.models import User
from scheduling import invitations
from scheduling.models import Meeting, MeetingAttendee, MeetingOccurrence
from tests.live_server import ROOT
from tests.smtp import smtp_fixture, smtp_settings_fixture  # noqa: F401  (fixtures smtp, smtp_settings)

TOKYO = ZoneInfo("Asia/Tokyo")
START = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
GUEST = "partner@example.com"


async def person(db, employee_number: str) -> User:
    return (await db.execute(select(User).where(User.employee_number == employee_number))).scalar_one()


async def arrange(
    db,
    *,
    rrule: str = "",
    sequence: int = 0,
    title: str = "週次定例ミーティング",
    agenda: str = "1. 進捗の共有\n2. 課題と対策",
    guest: bool = True,
    english: bool = False,
) -> tuple[Meeting, list[MeetingAttendee]]:
    """A meeting organised by the unit head with the employee, a co-host and (optionally) an outside guest."""
    await db.rollback()
    organizer = await person(db, "100006")
    staff = await person(db, "100012")
    cohost = await person(db, "100009")
    if english:
        staff.locale = "en"
        db.add(staff)
    meeting = Meeting(
        uid="meeting-abc123@127.0.0.1",
        room_id="r" + "a1b2c3d4e5f6",
        organizer_id=organizer.id,
        unit_id=organizer.unit_id,
        title=title,
        agenda=agenda,
        start_at=START,
        end_at=START + timedelta(hours=1),
        rrule=rrule,
        series_end_at=START + timedelta(weeks=9, hours=1) if rrule else None,
        sequence=sequence,
    )
    db.add(meeting)
    await db.flush()
    attendees = [
        MeetingAttendee(meeting_id=meeting.id, user_id=staff.id, email=staff.email, name=staff.name),
        MeetingAttendee(
            meeting_id=meeting.id, user_id=cohost.id, email=cohost.email, name=cohost.name, role="cohost"
        ),
    ]
    if guest:
        attendees.append(MeetingAttendee(meeting_id=meeting.id, email=GUEST, name="Pat Partner"))
    db.add_all(attendees)
    await db.commit()
    return meeting, attendees


def calendar_part(msg: EmailMessage) -> tuple[str, bytes]:
    """(method parameter, bytes) of the inline text/calendar part, checking the RFC 6047 layout on the way."""
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = list(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    text, cal = list(alternative.iter_parts())
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert cal.get_content_type() == "text/calendar"
    assert cal.get_param("charset").upper() == "UTF-8"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    raw = cal.get_payload(decode=True)
    assert attachment.get_payload(decode=True) == raw, "the attachment is the same object"
    return str(cal.get_param("method")), raw


def parse_both(raw: bytes) -> tuple[icalendar.Calendar, object]:
    raw.decode("utf-8")
    assert raw.startswith(b"BEGIN:VCALENDAR\r\n") and raw.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF only"
    assert all(len(line) <= 75 for line in raw.split(b"\r\n")), "folded at 75 octets"
    return icalendar.Calendar.from_ical(raw), vobject.readOne(raw.decode("utf-8"))


async def deliver(app, settings) -> int:
    counts = await deliver_due(app.state.db_sessions, settings)
    assert counts["retry"] == counts["failed"] == 0, counts
    return counts["sent"]


async def test_request_reaches_each_attendee_with_their_own_link(app, db, settings, smtp, smtp_settings):
    meeting, attendees = await arrange(db)

    queued = await invitations.queue_request(db, settings, meeting.id)
    await db.commit()

    assert queued == 3
    assert await deliver(app, smtp_settings) == 3
    inbox = smtp[1]
    by_to = {m["To"]: m for m in inbox.messages}
    assert set(by_to) == {a.email for a in attendees}
    staff, _cohost, guest = attendees

    msg = by_to[staff.email]
    assert msg["Subject"] == "【会議の招待】週次定例ミーティング（2027年3月1日（月） 10:00〜）"
    body = msg.get_body(("plain",)).get_content()
    room = f"{settings.base_url}/rooms/{meeting.room_id}"
    assert f"参加リンク：{room}" in body and f"{settings.base_url}/meetings/{meeting.id}" in body
    assert "1. 進捗の共有" in body and "日時：2027年3月1日（月） 10:00〜11:00（日本時間）" in body
    method, raw = calendar_part(msg)
    assert method == "REQUEST"
    cal, vcal = parse_both(raw)
    assert cal["METHOD"] == "REQUEST" and vcal.method.value == "REQUEST"
    (event,) = cal.walk("VEVENT")
    assert str(event["UID"]) == meeting.uid and event["SEQUENCE"] == 0
    assert event["LOCATION"] == room and event["URL"] == room
    assert vcal.vevent.location.value == room and vcal.vevent.summary.value == "週次定例ミーティング"

    # The outside guest: a signed link of their own, text in Japanese and English, no app link.
    msg = by_to[GUEST]
    assert msg["Subject"] == (
        "【会議の招待】週次定例ミーティング（2027年3月1日（月） 10:00〜） / "
        "Invitation: 週次定例ミーティング — Mon 1 Mar 2027, 10:00"
    )
    body = msg.get_body(("plain",)).get_content()
    assert "参加リンク（あなた専用です" in body and "Your personal join link" in body
    assert "/meetings/" not in body and "Accept, Decline or Tentative" in body
    _method, raw = calendar_part(msg)
    cal, vcal = parse_both(raw)
    link = str(cal.walk("VEVENT")[0]["LOCATION"])
    assert link.startswith(f"{settings.base_url}/rooms/{meeting.room_id}/guest?t=") and link in body
    claims = signing.verify(settings.secret_key, "rtc.guest", link.split("?t=", 1)[1])
    assert claims["r"] == meeting.room_id and claims["e"] == GUEST and claims["m"] == meeting.id
    assert claims["n"] == "Pat Partner"
    series_end = meeting.end_at + timedelta(days=1)
    assert claims["exp"] == int(series_end.timestamp())
    assert guest.email == GUEST

    # Sending again at the same SEQUENCE is a no-op; a new SEQUENCE sends again.
    assert await invitations.queue_request(db, settings, meeting.id) == 0


async def test_english_speaker_gets_english(app, db, settings, smtp, smtp_settings):
    meeting, attendees = await arrange(db, english=True, guest=False)
    assert await invitations.queue_request(db, settings, meeting.id, attendee_ids=[attendees[0].id]) == 1
    await db.commit()
    assert await deliver(app, smtp_settings) == 1
    (msg,) = smtp[1].messages
    assert msg["Subject"] == "Invitation: 週次定例ミーティング — Mon 1 Mar 2027, 10:00"
    body = msg.get_body(("plain",)).get_content()
    assert "When: Mon 1 Mar 2027, 10:00–11:00 (JST)" in body and "日時" not in body
    _m, raw = calendar_part(msg)
    assert "Join: " in str(icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]["DESCRIPTION"])


async def test_update_and_cancel_flows(app, db, settings, smtp, smtp_settings):
    meeting, attendees = await arrange(db, rrule="FREQ=WEEKLY;COUNT=10")
    assert await invitations.queue_request(db, settings, meeting.id) == 3
    await db.commit()

    # The organiser moves one occurrence and drops another; the service bumps SEQUENCE and resends.
    meeting.sequence = 1
    db.add(meeting)
    db.add_all(
        [
            MeetingOccurrence(
                meeting_id=meeting.id,
                recurrence_id=START + timedelta(weeks=1),
                start_at=START + timedelta(weeks=1, days=1, hours=4),
                end_at=START + timedelta(weeks=1, days=1, hours=5),
                sequence=1,
            ),
            MeetingOccurrence(
                meeting_id=meeting.id, recurrence_id=START + timedelta(weeks=2), cancelled=True, sequence=1
            ),
        ]
    )
    await db.commit()
    assert await invitations.queue_request(db, settings, meeting.id) == 3
    await db.commit()
    assert await deliver(app, smtp_settings) == 6
    update = [m for m in smtp[1].messages if m["To"] == attendees[0].email][-1]
    assert update["Subject"].startswith("【会議の変更】")
    body = update.get_body(("plain",)).get_content()
    assert "繰り返し：毎週月曜日、全10回" in body
    assert "変更された回：2027年3月8日（月） 10:00〜11:00（日本時間） → 2027年3月9日（火） 14:00" in body
    assert "中止の回：2027年3月15日（月） 10:00〜11:00（日本時間）" in body
    method, raw = calendar_part(update)
    cal, vcal = parse_both(raw)
    assert method == "REQUEST"
    master, moved = cal.walk("VEVENT")
    assert master["SEQUENCE"] == 1 and moved["SEQUENCE"] == 1
    assert str(master["UID"]) == str(moved["UID"]) == meeting.uid
    assert master["EXDATE"].dts[0].dt == datetime(2027, 3, 15, 10, 0, tzinfo=TOKYO)
    assert moved["RECURRENCE-ID"].dt == datetime(2027, 3, 8, 10, 0, tzinfo=TOKYO)
    starts = [e.dtstart.value for e in vcal.vevent_list]
    assert [s.astimezone(UTC) for s in starts] == [START, START + timedelta(weeks=1, days=1, hours=4)]
    # vobject expands the series with the exceptions applied.
    occurrences = list(vcal.vevent_list[0].getrruleset(addRDate=True))
    assert len(occurrences) == 9 and START + timedelta(weeks=2) not in occurrences

    # One occurrence cancelled: METHOD:CANCEL with its RECURRENCE-ID.
    smtp[1].raw.clear()
    occurrence = MeetingOccurrence(
        meeting_id=meeting.id, recurrence_id=START + timedelta(weeks=3), cancelled=True, sequence=2
    )
    db.add(occurrence)
    await db.commit()
    third = START + timedelta(weeks=3)
    assert await invitations.queue_cancel(db, settings, meeting.id, recurrence_id=third) == 3
    await db.commit()
    assert await deliver(app, smtp_settings) == 3
    msg = next(m for m in smtp[1].messages if m["To"] == attendees[0].email)
    assert msg["Subject"] == "【会議の中止（1回分）】週次定例ミーティング（2027年3月22日（月） 10:00〜）"
    method, raw = calendar_part(msg)
    cal, vcal = parse_both(raw)
    assert method == "CANCEL" and cal["METHOD"] == "CANCEL"
    (event,) = cal.walk("VEVENT")
    assert event["STATUS"] == "CANCELLED" and event["SEQUENCE"] == 2
    assert event["RECURRENCE-ID"].dt.astimezone(UTC) == START + timedelta(weeks=3)
    assert "RRULE" not in event
    assert [a.value for a in vcal.vevent.attendee_list] == [f"mailto:{attendees[0].email}"]

    # The whole series cancelled: SEQUENCE bumped, STATUS:CANCELLED, only the recipient as ATTENDEE.
    smtp[1].raw.clear()
    meeting.sequence, meeting.status = 3, "cancelled"
    db.add(meeting)
    await db.commit()
    assert await invitations.queue_cancel(db, settings, meeting.id) == 3
    await db.commit()
    assert await deliver(app, smtp_settings) == 3
    for msg in smtp[1].messages:
        method, raw = calendar_part(msg)
        cal, vcal = parse_both(raw)
        (event,) = cal.walk("VEVENT")
        assert method == "CANCEL" and event["STATUS"] == "CANCELLED" and event["SEQUENCE"] == 3
        assert "RECURRENCE-ID" not in event and str(event["UID"]) == meeting.uid
        attendee = event["ATTENDEE"]
        assert str(attendee).lower() == f"mailto:{msg['To']}".lower()
        assert msg["Subject"].startswith("【会議の中止】週次定例ミーティング（2027年3月1日（月） 10:00〜）")


async def test_removed_attendee_gets_a_cancel_only_for_them(app, db, settings, smtp, smtp_settings):
    meeting, attendees = await arrange(db)
    meeting.sequence = 1
    db.add(meeting)
    await db.commit()
    assert await invitations.queue_cancel(db, settings, meeting.id, attendee_ids=[attendees[2].id]) == 1
    await db.commit()
    assert await deliver(app, smtp_settings) == 1
    (msg,) = smtp[1].messages
    assert msg["To"] == GUEST and "出席者からあなたを外しました" in msg.get_body(("plain",)).get_content()
    _method, raw = calendar_part(msg)
    (event,) = icalendar.Calendar.from_ical(raw).walk("VEVENT")
    assert str(event["ATTENDEE"]) == f"mailto:{GUEST}"


REPLY = """BEGIN:VCALENDAR\r
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r
VERSION:2.0\r
METHOD:REPLY\r
BEGIN:VEVENT\r
ATTENDEE;PARTSTAT={partstat};CN=Pat Partner:mailto:{email}\r
ORGANIZER;CN=課長:mailto:boss@example.lg.jp\r
DTSTAMP:20270220T000000Z\r
DTSTART:20270301T010000Z\r
SEQUENCE:{sequence}\r
UID:{uid}\r
{extra}END:VEVENT\r
END:VCALENDAR\r
"""


def reply(
    uid: str, email: str = GUEST, partstat: str = "ACCEPTED", sequence: int = 1, extra: str = ""
) -> bytes:
    return REPLY.format(uid=uid, email=email, partstat=partstat, sequence=sequence, extra=extra).encode()


async def test_reply_updates_partstat_and_refuses_stale_or_foreign(app, db, settings):
    meeting, attendees = await arrange(db, sequence=1)
    guest_id, meeting_id, uid = attendees[2].id, meeting.id, meeting.uid

    done = await invitations.apply_reply(db, reply(meeting.uid, email=GUEST.upper(), partstat="TENTATIVE"))
    await db.commit()
    assert done.attendee_id == guest_id and done.partstat == "TENTATIVE" and done.changed
    row = await db.get(MeetingAttendee, guest_id, populate_existing=True)
    assert row.partstat == "TENTATIVE" and row.responded_at is not None
    event = (await db.execute(select(AuditEvent).where(AuditEvent.action == "meeting.reply"))).scalar_one()
    assert event.entity_id == str(guest_id)

    with pytest.raises(Conflict) as stale:
        await invitations.apply_reply(db, reply(meeting.uid, partstat="DECLINED", sequence=0))
    assert stale.value.key == "invite.reply.stale"
    with pytest.raises(NotFound) as foreign:
        await invitations.apply_reply(db, reply(meeting.uid, email="someone@else.example"))
    assert foreign.value.key == "invite.reply.unknown_attendee"
    with pytest.raises(NotFound):
        await invitations.apply_reply(db, reply("no-such-meeting@x"))
    with pytest.raises(DomainError) as bad:
        await invitations.apply_reply(db, reply(meeting.uid).replace(b"METHOD:REPLY", b"METHOD:REQUEST"))
    assert bad.value.key == "invite.reply.malformed"
    with pytest.raises(DomainError) as bad:
        await invitations.apply_reply(db, reply(meeting.uid, partstat="DELEGATED"))
    assert bad.value.key == "invite.reply.malformed"
    with pytest.raises(DomainError) as one:
        await invitations.apply_reply(
            db, reply(meeting.uid, extra="RECURRENCE-ID:20270308T010000Z\r\n", partstat="DECLINED")
        )
    assert one.value.key == "invite.reply.occurrence"
    await db.rollback()
    row = await db.get(MeetingAttendee, guest_id, populate_existing=True)
    assert row.partstat == "TENTATIVE", "refused answers change nothing"
    # A reply written (DTSTAMP 2027-02-20) before the answer recorded last (here: in the app, a day later)
    # is read late: the newer answer stays.
    row.responded_at = datetime(2027, 2, 21, tzinfo=UTC)
    await db.commit()
    with pytest.raises(Conflict) as older:
        await invitations.apply_reply(db, reply(uid, partstat="DECLINED"))
    assert older.value.key == "invite.reply.older"
    await db.rollback()
    row = await db.get(MeetingAttendee, guest_id, populate_existing=True)
    assert row.partstat == "TENTATIVE"
    row.responded_at = datetime(2027, 2, 19, tzinfo=UTC)
    await db.commit()

    # A single occurrence cancelled since (SEQUENCE 2) leaves the series copy at 1: its answer still counts.
    meeting = await db.get(Meeting, meeting_id, populate_existing=True)
    meeting.sequence, meeting.rrule = 2, "FREQ=WEEKLY;COUNT=4"
    db.add(meeting)
    db.add(
        MeetingOccurrence(
            meeting_id=meeting.id, recurrence_id=START + timedelta(weeks=1), cancelled=True, sequence=2
        )
    )
    await db.commit()
    done = await invitations.apply_reply(db, reply(meeting.uid, partstat="ACCEPTED", sequence=1))
    assert done.partstat == "ACCEPTED"
    assert (await invitations.apply_reply(db, reply(meeting.uid, sequence=2))).changed is False
    with pytest.raises(Conflict):
        await invitations.apply_reply(db, reply(meeting.uid, sequence=0))
    with pytest.raises(Conflict):
        await invitations.apply_reply(db, reply(meeting.uid, sequence=3))


async def test_outbox_row_keeps_the_calendar(db, settings):
    meeting, _ = await arrange(db, guest=False)
    await invitations.queue_request(db, settings, meeting.id)
    await db.commit()
    rows = (await db.execute(select(OutboxMessage))).scalars().all()
    assert len(rows) == 2 and all(r.calendar_text.startswith("BEGIN:VCALENDAR\r\n") for r in rows)
    assert {r.dedupe_key for r in rows} == {
        f"meeting:{meeting.id}:request:0:{a}"
        for a in (await db.execute(select(MeetingAttendee.id))).scalars().all()
    }
    assert dataclasses.is_dataclass(invitations.ReplyApplied)


async def run_cli(settings, tmp_path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """`python -m app ...` in a real process against this test's database."""
    env = {k: v for k, v in os.environ.items() if k not in ("SMTP_HOST", "BASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key,
        APP_ENV="dev",
        VAR_DIR=str(tmp_path / "cli"),
        MIGRATE_ON_START="0",
        DEFAULT_LOCALE="en",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        env=env,
        cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def reply_mail(ics: bytes) -> bytes:
    """An answer as a mail client sends it to the organizer (saved as .eml)."""
    msg = EmailMessage()
    msg["From"] = "Pat Partner <partner@example.com>"
    msg["To"] = "kacho@example.lg.jp"
    msg["Subject"] = "Accepted: 週次定例ミーティング"
    msg.set_content("Pat Partner has accepted.")
    msg.add_alternative(ics, maintype="text", subtype="calendar", params={"method": "REPLY"})
    return msg.as_bytes()


async def test_cli_takes_a_saved_reply_mail(db, settings, tmp_path):
    meeting, attendees = await arrange(db, sequence=1)
    guest_id, uid = attendees[2].id, meeting.uid
    saved = tmp_path / "reply.eml"
    saved.write_bytes(reply_mail(reply(uid, partstat="DECLINED")))

    code, out, err = await run_cli(settings, tmp_path, "meetings", "reply", str(saved))

    assert code == 0, err
    assert out.strip() == f"meeting {meeting.id}: {GUEST} DECLINED"
    await db.rollback()
    row = await db.get(MeetingAttendee, guest_id, populate_existing=True)
    assert row.partstat == "DECLINED"
    event = (await db.execute(select(AuditEvent).where(AuditEvent.action == "meeting.reply"))).scalar_one()
    assert event.actor_label == "cli"

    # From standard input, a bare .ics: an older SEQUENCE is refused with a reason, nothing changes.
    code, out, err = await run_cli(
        settings, tmp_path, "meetings", "reply", "-", stdin=reply(uid, partstat="ACCEPTED", sequence=0)
    )
    assert code == 2 and "older invitation (version 0)" in err
    code, _out, err = await run_cli(settings, tmp_path, "meetings", "reply", "-", stdin=b"hello")
    assert code == 2 and "no calendar object" in err
    await db.rollback()
    assert (await db.get(MeetingAttendee, guest_id, populate_existing=True)).partstat == "DECLINED"
