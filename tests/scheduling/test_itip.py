"""iTIP objects (RFC 5546) as built, checked field by field and read by two parsers: icalendar and vobject.

Pure functions: no database. What Outlook, Google and Apple need is checked on the bytes themselves
(CRLF, folding at 75 octets, TZID on local times, UTC DTSTAMP, VTIMEZONE before the events).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject

from scheduling import itip

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2027, 2, 20, 3, 4, 5, 678, tzinfo=UTC)
START = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
ORGANIZER = itip.Party("kacho@example.lg.jp", "情報 課長")
STAFF = itip.Party("taro@example.lg.jp", "山田 太郎", "ACCEPTED")
GUEST = itip.Party("pat@example.com", 'Pat "PJ" Partner, Esq.; Ltd')
LINKS = itip.Links("https://hub.example.lg.jp/rooms/r1", "https://hub.example.lg.jp/meetings/7")


def meeting(**changes) -> itip.MeetingEvent:
    base = itip.MeetingEvent(
        uid="meeting-7f3a@hub.example.lg.jp",
        title="週次定例",
        agenda="1. 進捗\n2. 課題",
        start_at=START,
        end_at=START + timedelta(hours=1),
        organizer=ORGANIZER,
        sequence=4,
        attendees=(STAFF, GUEST),
        updated_at=NOW - timedelta(days=1),
        created_at=NOW - timedelta(days=2),
    )
    return dataclasses.replace(base, **changes)


def wire(raw: bytes) -> list[bytes]:
    """Checks every client relies on; returns the unfolded content lines."""
    raw.decode("utf-8")
    assert raw.startswith(b"BEGIN:VCALENDAR\r\n") and raw.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF only"
    for line in raw.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode("utf-8")  # folding never splits a character
    lines = raw.replace(b"\r\n ", b"").split(b"\r\n")
    head = lines[: lines.index(b"BEGIN:VTIMEZONE")]
    assert (
        head[:1] == [b"BEGIN:VCALENDAR"]
        and b"VERSION:2.0" in head
        and any(x.startswith(b"PRODID:") for x in head)
    )
    assert lines.index(b"BEGIN:VTIMEZONE") < lines.index(b"BEGIN:VEVENT"), "zone defined before use"
    assert b"TZID:Asia/Tokyo" in lines
    return lines


def test_request_has_every_field_clients_need():
    raw = itip.build_request(meeting(), LINKS, now=NOW, sent_by="hub@example.lg.jp")
    lines = wire(raw)
    assert b"METHOD:REQUEST" in lines and b"CALSCALE:GREGORIAN" in lines
    assert b"DTSTART;TZID=Asia/Tokyo:20270301T100000" in lines
    assert b"DTEND;TZID=Asia/Tokyo:20270301T110000" in lines
    assert b"DTSTAMP:20270220T030405Z" in lines, "UTC, whole seconds"
    assert b"UID:meeting-7f3a@hub.example.lg.jp" in lines and b"SEQUENCE:4" in lines
    assert b"STATUS:CONFIRMED" in lines and b"TRANSP:OPAQUE" in lines
    assert b"X-MICROSOFT-DISALLOW-COUNTER:TRUE" in lines
    assert b"LOCATION:https://hub.example.lg.jp/rooms/r1" in lines
    assert b"URL:https://hub.example.lg.jp/rooms/r1" in lines
    organizer = next(x for x in lines if x.startswith(b"ORGANIZER"))
    assert organizer.decode() == (
        'ORGANIZER;CN="情報 課長";SENT-BY="mailto:hub@example.lg.jp":mailto:kacho@example.lg.jp'
    )
    attendees = [x.decode() for x in lines if x.startswith(b"ATTENDEE")]
    assert attendees[0] == (
        'ATTENDEE;CN="山田 太郎";CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=TRUE'
        ":mailto:taro@example.lg.jp"
    )
    assert "PARTSTAT=NEEDS-ACTION" in attendees[1] and "RSVP=TRUE" in attendees[1]

    cal = icalendar.Calendar.from_ical(raw)
    (event,) = cal.walk("VEVENT")
    assert event["DTSTART"].dt == datetime(2027, 3, 1, 10, 0, tzinfo=TOKYO)
    assert event["DESCRIPTION"] == (
        "1. 進捗\n2. 課題\n\n参加リンク：https://hub.example.lg.jp/rooms/r1\n"
        "出欠の回答（Telework Hub）：https://hub.example.lg.jp/meetings/7"
    )
    guest = event["ATTENDEE"][1]
    assert guest.params["CN"] == "Pat 'PJ' Partner, Esq.; Ltd", "a DQUOTE cannot live in a parameter"
    assert str(guest) == "mailto:pat@example.com"

    vcal = vobject.readOne(raw.decode("utf-8"))
    assert vcal.method.value == "REQUEST"
    ev = vcal.vevent
    assert ev.uid.value == "meeting-7f3a@hub.example.lg.jp" and ev.sequence.value == "4"
    assert ev.dtstart.value == datetime(2027, 3, 1, 10, 0, tzinfo=TOKYO)
    assert ev.dtstart.value.utcoffset() == timedelta(hours=9)
    assert ev.dtstamp.value == NOW.replace(microsecond=0)
    assert [a.value for a in ev.attendee_list] == ["mailto:taro@example.lg.jp", "mailto:pat@example.com"]
    assert ev.attendee_list[1].params["CN"] == ["Pat 'PJ' Partner, Esq.; Ltd"]
    assert ev.attendee_list[0].params["RSVP"] == ["TRUE"]
    assert ev.organizer.params["CN"] == ["情報 課長"] and ev.organizer.value == "mailto:kacho@example.lg.jp"
    assert ev.description.value.startswith("1. 進捗\n2. 課題")


def test_japanese_text_folds_on_character_boundaries_and_survives():
    title = "令和９年度　デジタル推進に関する全庁連絡会議（第３回）" * 3
    agenda = "・テレワーク実施状況の報告\n・オンライン会議の運用ルールについて（案）\n" * 5
    raw = itip.build_request(meeting(title=title, agenda=agenda), LINKS, now=NOW)
    wire(raw)
    assert sum(1 for line in raw.split(b"\r\n") if line.startswith(b" ")) > 5, "long lines were folded"
    event = icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == title
    assert str(event["DESCRIPTION"]).startswith(agenda.strip())
    ev = vobject.readOne(raw.decode("utf-8")).vevent
    assert ev.summary.value == title and ev.description.value.startswith(agenda.strip())


def test_typed_text_cannot_add_lines_or_properties():
    title = "定例\r\nEND:VEVENT\r\nBEGIN:VEVENT\rSUMMARY:偽\x00\x1b"
    raw = itip.build_request(
        meeting(title=title, agenda="a\rb\x07", attendees=(itip.Party("x@example.jp", "A\r\nB:C"),)),
        LINKS,
        now=NOW,
    )
    lines = wire(raw)
    assert lines.count(b"BEGIN:VEVENT") == 1
    event = icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "定例 END:VEVENT BEGIN:VEVENT SUMMARY:偽"
    assert str(event["ATTENDEE"].params["CN"]) == "A B:C"
    assert str(event["DESCRIPTION"]).startswith("a\nb\n\n")


def test_series_with_moved_and_cancelled_occurrences():
    moved = itip.Occurrence(
        recurrence_id=START + timedelta(weeks=1),
        start_at=START + timedelta(weeks=1, days=1, hours=5),
        end_at=START + timedelta(weeks=1, days=1, hours=6, minutes=30),
        sequence=6,
    )
    cancelled = [
        itip.Occurrence(recurrence_id=START + timedelta(weeks=w), cancelled=True, sequence=5) for w in (3, 2)
    ]
    m = meeting(rrule="FREQ=WEEKLY;UNTIL=20270510;BYDAY=MO", exceptions=(moved, *cancelled))
    raw = itip.build_request(m, LINKS, now=NOW)
    lines = wire(raw)
    assert b"RRULE:FREQ=WEEKLY;UNTIL=20270510T145959Z;BYDAY=MO" in lines, "UNTIL in UTC beside a TZID"
    assert [x for x in lines if x.startswith(b"EXDATE")] == [
        b"EXDATE;TZID=Asia/Tokyo:20270315T100000",
        b"EXDATE;TZID=Asia/Tokyo:20270322T100000",
    ]
    master, override = icalendar.Calendar.from_ical(raw).walk("VEVENT")
    assert str(master["UID"]) == str(override["UID"]) == m.uid
    assert "RECURRENCE-ID" not in master and "RRULE" not in override
    assert override["RECURRENCE-ID"].to_ical() == b"20270308T100000"
    assert override["RECURRENCE-ID"].params["TZID"] == "Asia/Tokyo"
    assert override["DTSTART"].dt == datetime(2027, 3, 9, 15, 0, tzinfo=TOKYO)
    assert override["DTEND"].dt == datetime(2027, 3, 9, 16, 30, tzinfo=TOKYO)
    assert master["SEQUENCE"] == 4 and override["SEQUENCE"] == 6
    assert len(override["ATTENDEE"]) == 2 and override["ORGANIZER"] == "mailto:kacho@example.lg.jp"

    vcal = vobject.readOne(raw.decode("utf-8"))
    series, moved_ev = vcal.vevent_list
    dates = [d.astimezone(UTC) for d in series.getrruleset(addRDate=True)]
    expected = [START + timedelta(weeks=w) for w in range(11) if w not in (2, 3)]
    assert dates == expected, "10 Mondays to 10 May, less the two cancelled"
    assert moved_ev.recurrence_id.value == datetime(2027, 3, 8, 10, 0, tzinfo=TOKYO)


def test_cancel_series_and_one_occurrence():
    m = meeting(rrule="FREQ=WEEKLY;COUNT=5", sequence=5, status="cancelled")
    raw = itip.build_cancel(m, [GUEST], now=NOW)
    lines = wire(raw)
    assert b"METHOD:CANCEL" in lines and b"STATUS:CANCELLED" in lines and b"SEQUENCE:5" in lines
    event = icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]
    assert str(event["ATTENDEE"]) == "mailto:pat@example.com", "only the affected attendee"
    assert "RSVP" not in event["ATTENDEE"].params, "no answer is asked for a cancellation"
    assert "RECURRENCE-ID" not in event and str(event["UID"]) == m.uid

    one = START + timedelta(weeks=2)
    m = meeting(
        rrule="FREQ=WEEKLY;COUNT=5",
        sequence=5,
        exceptions=(itip.Occurrence(recurrence_id=one, cancelled=True, sequence=7),),
    )
    raw = itip.build_cancel(m, [STAFF, GUEST], now=NOW, recurrence_id=one)
    lines = wire(raw)
    assert b"RECURRENCE-ID;TZID=Asia/Tokyo:20270315T100000" in lines
    assert b"DTSTART;TZID=Asia/Tokyo:20270315T100000" in lines
    assert b"SEQUENCE:7" in lines and b"STATUS:CANCELLED" in lines and b"RRULE" not in raw
    ev = vobject.readOne(raw.decode("utf-8")).vevent
    assert ev.recurrence_id.value.astimezone(UTC) == one and ev.status.value == "CANCELLED"
    assert len(ev.attendee_list) == 2

    # An occurrence the caller names but has no row yet is still cancelled by its original start.
    raw = itip.build_cancel(meeting(rrule="FREQ=WEEKLY;COUNT=5"), [STAFF], now=NOW, recurrence_id=one)
    assert b"RECURRENCE-ID;TZID=Asia/Tokyo:20270315T100000" in raw.replace(b"\r\n ", b"")


def test_publish_events_have_no_attendees_and_keep_uid_and_sequence():
    moved = itip.Occurrence(
        recurrence_id=START + timedelta(weeks=1), start_at=START + timedelta(weeks=1, hours=2)
    )
    events = itip.publish_events(meeting(rrule="FREQ=WEEKLY;COUNT=3", exceptions=(moved,)), LINKS)
    assert len(events) == 2
    for event in events:
        assert "ATTENDEE" not in event and str(event["UID"]) == "meeting-7f3a@hub.example.lg.jp"
        assert event["ORGANIZER"] == "mailto:kacho@example.lg.jp"
        assert event["DTSTAMP"].dt == (NOW - timedelta(days=1)).replace(microsecond=0)
    assert events[1]["DTEND"].dt - events[1]["DTSTART"].dt == timedelta(hours=1), "keeps the length"
    cancelled = itip.publish_events(meeting(status="cancelled"), None)
    assert cancelled[0]["STATUS"] == "CANCELLED" and "LOCATION" not in cancelled[0]


def test_another_zone_gets_its_own_vtimezone():
    raw = itip.build_request(meeting(tz="America/New_York"), LINKS, now=NOW)
    assert b"TZID:America/New_York" in raw and b"DTSTART;TZID=America/New_York:20270228T200000" in raw
    assert vobject.readOne(raw.decode()).vevent.dtstart.value.astimezone(UTC) == START


OUTLOOK_REPLY = (
    "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\n"
    "BEGIN:VEVENT\r\nATTENDEE;PARTSTAT=ACCEPTED;CN=Pat Partner:MAILTO:Pat@Example.com\r\n"
    "COMMENT;LANGUAGE=en-US:See you\\, then\r\nSUMMARY;LANGUAGE=en-US:Accepted: 週次定例\r\n"
    "DTSTART;TZID=Tokyo Standard Time:20270301T100000\r\nDTEND;TZID=Tokyo Standard Time:20270301T110000\r\n"
    "UID:meeting-7f3a@hub.example.lg.jp\r\nDTSTAMP:20270221T000000Z\r\nSEQUENCE:4\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_parse_reply_reads_an_outlook_answer():
    reply = itip.parse_reply(OUTLOOK_REPLY.encode())
    assert reply == itip.Reply(
        uid="meeting-7f3a@hub.example.lg.jp",
        email="pat@example.com",
        partstat="ACCEPTED",
        sequence=4,
        recurrence_id=None,
        dtstamp=datetime(2027, 2, 21, tzinfo=UTC),
        comment="See you, then",
    )
    one = OUTLOOK_REPLY.replace("SEQUENCE:4", "SEQUENCE:4\r\nRECURRENCE-ID:20270308T010000Z")
    assert itip.parse_reply(one).recurrence_id == START + timedelta(weeks=1)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (("METHOD:REPLY", "METHOD:REQUEST"), "not a METHOD:REPLY"),
        (("PARTSTAT=ACCEPTED", "PARTSTAT=DELEGATED"), "not an answer"),
        (("PARTSTAT=ACCEPTED;", ""), "not an answer"),
        (("UID:meeting-7f3a@hub.example.lg.jp\r\n", ""), "no UID"),
        (("MAILTO:Pat@Example.com", "MAILTO:nobody"), "not an e-mail address"),
        (("SEQUENCE:4", "SEQUENCE:four"), "SEQUENCE"),
        (("BEGIN:VCALENDAR", "garbage"), "iCalendar"),
    ],
)
def test_parse_reply_refuses_what_it_cannot_use(change, why):
    with pytest.raises(itip.ItipError, match=why):
        itip.parse_reply(OUTLOOK_REPLY.replace(*change))


def test_parse_reply_refuses_two_attendees_and_huge_input():
    two = OUTLOOK_REPLY.replace(
        "SEQUENCE:4", "SEQUENCE:4\r\nATTENDEE;PARTSTAT=DECLINED:mailto:other@example.com"
    )
    with pytest.raises(itip.ItipError, match="exactly one attendee"):
        itip.parse_reply(two)
    with pytest.raises(itip.ItipError, match="too large"):
        itip.parse_reply(b"X" * (itip.MAX_REPLY_BYTES + 1))


def test_calendar_from_mail_finds_the_object_in_a_saved_message():
    from email.message import EmailMessage

    assert itip.calendar_from_mail(OUTLOOK_REPLY.encode()) == OUTLOOK_REPLY.encode()
    msg = EmailMessage()
    msg["Subject"] = "Accepted: 週次定例"
    msg.set_content("accepted")
    msg.add_attachment(OUTLOOK_REPLY.encode(), maintype="application", subtype="ics", filename="reply.ics")
    found = itip.calendar_from_mail(msg.as_bytes())
    assert itip.parse_reply(found).partstat == "ACCEPTED"
    with pytest.raises(itip.ItipError, match="no calendar object"):
        itip.calendar_from_mail(b"Subject: hello\r\n\r\nno calendar here\r\n")
