"""The notifications outbox against a real SMTP server (aiosmtpd on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from app import mail
from app.audit import AuditEvent
from app.db import make_engine, session_maker, utcnow
from app.mail import OutboxMessage, deliver_due, enqueue
from app.main import create_app, shutdown, startup
from tests.live_server import free_port
from tests.smtp import smtp_fixture, smtp_settings_fixture  # noqa: F401  (fixtures smtp, smtp_settings)

SUBJECT = "【テレワーク】申請が承認されました"
BODY = "山田 太郎 様\n\n9月1日（火）のテレワーク申請が承認されました。\n情報政策課"


async def reload(db, message_id: int) -> OutboxMessage:
    await db.rollback()
    row = await db.get(OutboxMessage, message_id, populate_existing=True)
    assert row is not None
    return row


async def make_due(db) -> None:
    """Pretend the backoff has passed."""
    await db.execute(update(OutboxMessage).values(send_after=utcnow() - timedelta(seconds=1)))
    await db.commit()


async def test_delivers_japanese_mail_over_smtp(app, db, smtp, smtp_settings):
    queued = await enqueue(db, "taro.yamada@example.lg.jp", SUBJECT, BODY)
    await db.commit()
    assert queued is not None and queued.id is not None and queued.status == "pending"

    counts = await deliver_due(app.state.db_sessions, smtp_settings)

    assert counts == {"sent": 1, "logged": 0, "retry": 0, "failed": 0}
    inbox = smtp[1]
    assert inbox.rcpt == [["taro.yamada@example.lg.jp"]]
    assert inbox.raw[0].isascii(), "headers and body must be transfer-encoded for any MTA"
    msg = inbox.messages[0]
    assert msg["Subject"] == SUBJECT
    assert msg["From"] == smtp_settings.smtp_from and msg["To"] == "taro.yamada@example.lg.jp"
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg.get_content().rstrip("\n") == BODY
    assert msg["Date"] is not None
    assert msg["Message-ID"].startswith(f"<outbox.{queued.id}.") and msg["Message-ID"].endswith("@localhost>")
    row = await reload(db, queued.id)
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 0
    assert await deliver_due(app.state.db_sessions, smtp_settings) == dict.fromkeys(counts, 0)
    assert len(inbox.raw) == 1


async def test_dedupe_key_enqueues_once(app, db, smtp, smtp_settings):
    first = await enqueue(db, "a@example.lg.jp", "件名", "本文", dedupe_key="survey-reminder:7:100012")
    assert first is not None
    assert await enqueue(db, "a@example.lg.jp", "件名", "本文", dedupe_key="survey-reminder:7:100012") is None
    await db.commit()
    assert await enqueue(db, "a@example.lg.jp", "件名", "本文", dedupe_key="survey-reminder:7:100012") is None
    await db.rollback()

    # Two jobs racing on one key: the loser's own transaction still commits its other work.
    maker = app.state.db_sessions
    async with maker() as one, maker() as two:
        assert await enqueue(one, "b@example.lg.jp", "s", "b", dedupe_key="race") is not None

        async def loser():
            result = await enqueue(two, "b@example.lg.jp", "s", "b", dedupe_key="race")
            await enqueue(two, "c@example.lg.jp", "other", "kept")
            await two.commit()
            return result

        racing = asyncio.create_task(loser())
        await asyncio.sleep(0.2)  # on PostgreSQL the loser now waits on the unique key
        await one.commit()
        assert await racing is None

    keys = (await db.execute(select(OutboxMessage.dedupe_key, OutboxMessage.to_addr))).all()
    assert sorted(k for k, _ in keys if k) == ["race", "survey-reminder:7:100012"]
    assert "c@example.lg.jp" in {to for _, to in keys}, "the loser's transaction must survive"
    counts = await deliver_due(maker, smtp_settings)
    assert counts["sent"] == 3 and len(smtp[1].raw) == 3


async def test_enqueue_refuses_header_injection(db):
    with pytest.raises(ValueError):
        await enqueue(db, "a@example.lg.jp\nBcc: x@example.com", "s", "b")
    with pytest.raises(ValueError):
        await enqueue(db, "a@example.lg.jp", "件名\r\nBcc: x@example.com", "b")
    long = await enqueue(db, "a@example.lg.jp", "長" * 300, "b")
    assert long is not None and len(long.subject) == 255 and long.subject.endswith("…")


async def test_without_smtp_host_mail_goes_to_the_log(app, db, settings, caplog):
    embedded = dataclasses.replace(settings, smtp_host=None)
    queued = await enqueue(db, "hanako@example.lg.jp", SUBJECT, BODY)
    await db.commit()
    assert queued is not None and queued.id is not None

    with caplog.at_level(logging.INFO, logger="telework.mail"):
        counts = await deliver_due(app.state.db_sessions, embedded)

    assert counts == {"sent": 0, "logged": 1, "retry": 0, "failed": 0}
    logged = [r.getMessage() for r in caplog.records if r.name == "telework.mail"]
    assert any("hanako@example.lg.jp" in m and SUBJECT in m and "情報政策課" in m for m in logged)
    row = await reload(db, queued.id)
    assert row.status == "logged" and row.sent_at is not None


async def test_smtp_down_schedules_a_retry_with_backoff(app, db, settings):
    down = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=free_port())  # nobody listens
    queued = await enqueue(db, "taro@example.lg.jp", SUBJECT, BODY)
    await db.commit()
    assert queued is not None and queued.id is not None

    before = utcnow()
    counts = await deliver_due(app.state.db_sessions, down)

    assert counts == {"sent": 0, "logged": 0, "retry": 1, "failed": 0}
    row = await reload(db, queued.id)
    assert row.status == "pending" and row.attempts == 1 and row.sent_at is None
    assert row.last_error and "refused" in row.last_error.lower()
    assert before + timedelta(seconds=55) < row.send_after < utcnow() + timedelta(seconds=65)
    assert sum((await deliver_due(app.state.db_sessions, down)).values()) == 0, "not due yet"


async def test_a_refused_recipient_fails_alone(app, db, smtp, smtp_settings):
    bad = await enqueue(db, "nobody@example.lg.jp", "宛先不明", "本文")
    good = await enqueue(db, "hanako@example.lg.jp", "届くメール", "本文")
    await db.commit()
    assert bad is not None and good is not None and bad.id is not None and good.id is not None

    counts = await deliver_due(app.state.db_sessions, smtp_settings)

    assert counts == {"sent": 1, "logged": 0, "retry": 1, "failed": 0}
    assert [m["Subject"] for m in smtp[1].messages] == ["届くメール"]
    row = await reload(db, bad.id)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error and "SMTPRecipientsRefused" in row.last_error and "No such user" in row.last_error
    assert (await reload(db, good.id)).status == "sent"


async def test_five_failures_mark_the_message_failed(app, db, settings):
    down = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=free_port())
    queued = await enqueue(db, "taro@example.lg.jp", "s", "b")
    await db.commit()
    assert queued is not None and queued.id is not None
    waits = []
    for attempt in range(1, 6):
        await make_due(db)
        now = utcnow()
        counts = await deliver_due(app.state.db_sessions, down)
        row = await reload(db, queued.id)
        assert row.attempts == attempt
        if attempt < 5:
            assert counts["retry"] == 1 and row.status == "pending"
            waits.append(round((row.send_after - now).total_seconds() / 60))
    assert waits == [1, 5, 30, 120]
    assert counts == {"sent": 0, "logged": 0, "retry": 0, "failed": 1}
    assert row.status == "failed" and row.last_error
    await make_due(db)
    assert sum((await deliver_due(app.state.db_sessions, down)).values()) == 0


async def test_concurrent_workers_send_each_message_once(app, db, settings, smtp, smtp_settings):
    for i in range(30):
        await enqueue(db, f"staff{i}@example.lg.jp", f"お知らせ {i}", "本文")
    await db.commit()
    engines = [make_engine(settings.database_url) for _ in range(3)]
    sent: list[int] = []

    async def worker(maker: async_sessionmaker) -> None:
        while True:
            counts = await deliver_due(maker, smtp_settings, limit=4)
            if not sum(counts.values()):
                return
            sent.append(counts["sent"])

    try:
        await asyncio.gather(*(worker(session_maker(e)) for e in engines))
    finally:
        for e in engines:
            await e.dispose()

    inbox = smtp[1]
    subjects = [m["Subject"] for m in inbox.messages]
    assert sorted(subjects) == sorted(f"お知らせ {i}" for i in range(30)), "each message exactly once"
    assert len({m["Message-ID"] for m in inbox.messages}) == 30 and sum(sent) == 30
    statuses = (await db.execute(select(OutboxMessage.status))).scalars().all()
    assert statuses == ["sent"] * 30


async def test_outbox_page_lists_filters_and_retries(app, db, sysadmin, make_client):
    for i in range(51):
        await enqueue(db, f"p{i}@example.lg.jp", f"件名{i:02d}", "本文")
    broken = await enqueue(db, "broken@example.lg.jp", "届かないメール", "本文")
    assert broken is not None
    await db.flush()
    broken.status, broken.attempts, broken.last_error = "failed", 5, "SMTPRecipientsRefused: 550"
    await db.commit()
    broken_id = broken.id

    r = await sysadmin.get("/admin/outbox")
    assert r.status_code == 200 and "届かないメール" in r.text and "全52件" in r.text
    assert "件名50" in r.text and "件名00" not in r.text, "newest first, 50 a page"
    r = await sysadmin.get("/admin/outbox", params={"page": 2})
    assert "件名00" in r.text and "件名01" in r.text
    r = await sysadmin.get("/admin/outbox", params={"status": "failed"})
    assert "届かないメール" in r.text and "件名10" not in r.text and "SMTPRecipientsRefused" in r.text
    r = await sysadmin.get("/admin/outbox", params={"status": "sent"})
    assert "該当するメールはありません" in r.text
    assert (await sysadmin.get("/admin/outbox", params={"status": "bogus"})).status_code == 400

    token = sysadmin.headers["x-csrftoken"]
    r = await sysadmin.post(f"/admin/outbox/{broken_id}/retry", data={"_csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/outbox?retried={broken_id}"
    row = await reload(db, broken_id)
    assert row.status == "pending" and row.attempts == 0 and row.send_after <= utcnow()
    event = (await db.execute(select(AuditEvent).where(AuditEvent.action == "mail.retry"))).scalar_one()
    assert event.entity_id == str(broken_id) and event.actor_label == "100011"
    assert "再送の列に戻しました" in (await sysadmin.get(r.headers["location"])).text

    r = await sysadmin.post(f"/admin/outbox/{broken_id}/retry", data={"_csrf_token": token})
    assert r.status_code == 409 and "送信に失敗したメールだけ" in r.text
    employee = await make_client("employee")
    assert (await employee.get("/admin/outbox")).status_code == 403


@pytest.fixture
def looping_app(settings):
    """Built during setup: create_app configures logging, which would drop caplog's handler mid-test."""
    return create_app(dataclasses.replace(settings, smtp_host=None, mail_poll_seconds=1))


async def test_background_loop_delivers_and_survives_errors(looping_app, db, monkeypatch, caplog):
    queued = await enqueue(db, "loop@example.lg.jp", "ループ", "本文")
    await db.commit()
    assert queued is not None and queued.id is not None
    real = mail.deliver_due
    calls = 0

    async def flaky(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database restarting")
        return await real(*args, **kwargs)

    monkeypatch.setattr(mail, "deliver_due", flaky)
    application = looping_app
    with caplog.at_level(logging.INFO, logger="telework.mail"):
        await startup(application)
        try:
            for _ in range(50):
                if (await reload(db, queued.id)).status == "logged":
                    break
                await asyncio.sleep(0.1)
            task = application.state.mail_task
            assert not task.done()
        finally:
            await shutdown(application)
    assert (await reload(db, queued.id)).status == "logged"
    assert task.cancelled()
    assert any("round failed" in r.getMessage() for r in caplog.records if r.name == "telework.mail")


async def test_no_loop_when_poll_is_zero(app):
    assert app.state.mail_task is None
