"""Reminders reach only people who have not answered, through the outbox and a real SMTP server."""

from __future__ import annotations

from datetime import timedelta

from app.db import utcnow
from app.mail import deliver_due
from surveys import services
from tests.smtp import smtp_fixture, smtp_settings_fixture  # noqa: F401  (fixtures smtp, smtp_settings)
from tests.surveys.test_surveys import answer_as, open_round


async def test_reminders_go_only_to_people_who_have_not_answered(hr, make_client, app, smtp, smtp_settings):
    _, rnd = await open_round(hr, units=["JINJI"])  # 人事課: 100004, 100008, 100012, 100013, 100014
    assert rnd["invited"] == 5
    for login in ("100012", "100013"):
        assert (await answer_as(make_client, login, rnd)).status_code == 204

    async def tick(days: int) -> dict[str, int]:
        async with app.state.db_sessions() as db:
            done = await services.tick(
                db, utcnow() + timedelta(days=days), mailer=services_mailer, base_url="http://x"
            )
            await db.commit()
        return done

    from app.mail import enqueue as services_mailer

    assert (await tick(1))["reminded"] == 0  # too early
    assert (await tick(3))["reminded"] == 3
    assert (await tick(3))["reminded"] == 0  # the same day again: nothing new
    await deliver_due(app.state.db_sessions, smtp_settings)
    _port, inbox = smtp
    recipients = sorted(r for rcpt in inbox.rcpt for r in rcpt)
    assert recipients == sorted(
        ["misaki.takahashi@example.lg.jp", "yumi.nakamura@example.lg.jp", "aya.inoue@example.lg.jp"]
    )
    assert all("アンケートのお願い" in m["subject"] for m in inbox.messages)
    body = inbox.messages[0].get_body().get_content()
    assert "匿名" in body and "http://x/surveys" in body
    for message in inbox.messages:  # a reminder never says who has answered
        text = message.get_body().get_content()
        assert "山本" not in text and "松本" not in text
    assert (await tick(5))["reminded"] == 3  # second reminder on day 5
    assert (await tick(9))["reminded"] == 0  # max_reminders is 2
