"""iTIP over e-mail (RFC 6047) through the outbox to a real SMTP server (aiosmtpd on loopback).

The calendar object must arrive byte for byte (CRLF included) in both the inline text/calendar part, whose
``method`` parameter matches the object's METHOD, and the invite.ics attachment; plain mail stays plain.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
import vobject

from app.mail import calendar_method, deliver_due, enqueue
from tests.smtp import smtp_fixture, smtp_settings_fixture  # noqa: F401  (fixtures smtp, smtp_settings)

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Telework Hub//Test//JA\r\nMETHOD:{method}\r\n"
    "BEGIN:VEVENT\r\nUID:meeting-1@example.lg.jp\r\nDTSTAMP:20270220T000000Z\r\n"
    "DTSTART:20270301T010000Z\r\nDTEND:20270301T020000Z\r\nSEQUENCE:2\r\n"
    "SUMMARY:全庁連絡会議（第３回）デジタル推進について\r\n"
    "ORGANIZER;CN=情報 課長:mailto:kacho@example.lg.jp\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:taro@example.lg.jp\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
async def test_invitation_arrives_as_itip_with_an_attachment(app, db, smtp, smtp_settings, method):
    body = "山田 太郎 様\n\n会議に招待されています。"
    queued = await enqueue(
        db, "taro@example.lg.jp", "【会議の招待】全庁連絡会議", body, calendar=ICS.format(method=method)
    )
    await db.commit()
    assert queued is not None

    counts = await deliver_due(app.state.db_sessions, smtp_settings)

    assert counts["sent"] == 1
    (raw,) = smtp[1].raw
    assert raw.isascii(), "every part transfer-encoded"
    (msg,) = smtp[1].messages
    assert msg["MIME-Version"] == "1.0" and msg["Subject"] == "【会議の招待】全庁連絡会議"
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = msg.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, cal = alternative.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content().rstrip("\n") == body
    assert cal.get_content_type() == "text/calendar"
    assert cal.get_param("method") == method and cal.get_param("charset") == "UTF-8"
    assert cal["Content-Transfer-Encoding"] == "base64"
    expected = ICS.format(method=method).encode("utf-8")
    assert cal.get_payload(decode=True) == expected, "CRLF and UTF-8 arrive unchanged"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_filename() == "invite.ics" and attachment.get_param("name") == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_payload(decode=True) == expected
    parsed = vobject.readOne(expected.decode("utf-8"))
    assert parsed.method.value == method and parsed.vevent.uid.value == "meeting-1@example.lg.jp"
    # Mail readers that show only the body still find the text first.
    assert msg.get_body(("plain",)) is not None


async def test_plain_mail_stays_single_part(app, db, smtp, smtp_settings):
    await enqueue(db, "a@example.lg.jp", "お知らせ", "本文")
    await db.commit()
    await deliver_due(app.state.db_sessions, smtp_settings)
    (msg,) = smtp[1].messages
    assert not msg.is_multipart() and msg.get_content_type() == "text/plain"


async def test_a_calendar_part_needs_a_method(db):
    with pytest.raises(ValueError, match="METHOD"):
        await enqueue(db, "a@example.lg.jp", "s", "b", calendar=ICS.replace("METHOD:{method}\r\n", ""))
    # A METHOD inside an event (e.g. in a description) does not count: only the calendar's own.
    inside = ICS.replace("METHOD:{method}\r\n", "").replace("SEQUENCE:2", "SEQUENCE:2\r\nMETHOD:REQUEST")
    assert calendar_method(inside) is None
    assert calendar_method(ICS.format(method="request")) == "REQUEST"
    assert calendar_method(ICS.format(method="REQUEST").replace("\r\n", "\n")) == "REQUEST"


async def test_without_smtp_the_log_names_the_method(app, db, settings, caplog):
    await enqueue(db, "a@example.lg.jp", "中止", "本文", calendar=ICS.format(method="CANCEL"))
    await db.commit()
    with caplog.at_level(logging.INFO, logger="telework.mail"):
        counts = await deliver_due(app.state.db_sessions, dataclasses.replace(settings, smtp_host=None))
    assert counts["logged"] == 1
    assert any(
        "calendar=METHOD:CANCEL" in r.getMessage() for r in caplog.records if r.name == "telework.mail"
    )
