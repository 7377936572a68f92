"""Notifications outbox: mail joins the caller's transaction and is delivered later, by SMTP or to the log.

Delivery is at-least-once: a worker claims due messages by pushing their ``send_after`` forward by a lease,
sends outside any transaction, then records the outcome. A worker that dies mid-send leaves its messages
to be picked up again when the lease runs out; receivers can spot the repeat by the stable Message-ID.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import Column, Index, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel, col

from app import audit
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.security import Principal
from app.settings import Settings

log = logging.getLogger("telework.mail")

STATUSES = ("pending", "sent", "logged", "failed")
# Wait after the 1st, 2nd, 3rd and 4th failed attempt; the 5th failure is final.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
MAX_ATTEMPTS = len(BACKOFF) + 1
LEASE = timedelta(minutes=15)
SMTP_TIMEOUT = 30
# Refusals of one message (a bad address, a rejected body); anything else ends the connection.
MESSAGE_ERRORS = (
    ValueError,
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPResponseException,
    smtplib.SMTPNotSupportedError,
)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_due", "status", "send_after"),)

    id: int | None = Field(default=None, primary_key=True)
    to_addr: str = Field(max_length=254)
    subject: str = Field(max_length=255)
    body_text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    send_after: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    sent_at: datetime | None = None
    status: str = Field(default="pending", max_length=10)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    # An iCalendar object sent beside the text (iTIP over e-mail, RFC 6047): its METHOD decides the part's
    # ``method=`` parameter. Empty for plain messages.
    calendar_text: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )


async def enqueue(
    db: AsyncSession,
    to: str,
    subject: str,
    body: str,
    *,
    dedupe_key: str | None = None,
    send_after: datetime | None = None,
    calendar: str = "",
) -> OutboxMessage | None:
    """Queue a message in the caller's transaction; None when a message with this dedupe key exists.

    ``calendar``: an iCalendar object with a METHOD (an invitation or cancellation), sent beside the text.
    """
    if len(to) > 254 or any(c in to + subject for c in "\r\n"):
        raise ValueError("mail address too long, or a line break in the address or subject")
    if calendar and calendar_method(calendar) is None:
        raise ValueError("a calendar part needs a METHOD (RFC 6047)")
    subject = subject if len(subject) <= 255 else subject[:254] + "…"
    message = OutboxMessage(
        to_addr=to,
        subject=subject,
        body_text=body,
        send_after=send_after or utcnow(),
        dedupe_key=dedupe_key,
        calendar_text=calendar,
    )
    if dedupe_key is None:
        db.add(message)
        return message
    taken = select(col(OutboxMessage.id)).where(col(OutboxMessage.dedupe_key) == dedupe_key)
    if (await db.execute(taken)).first() is not None:
        return None
    try:
        # A concurrent transaction may insert the same key after our check: the unique constraint
        # decides, and the savepoint keeps the caller's transaction usable when we lose.
        async with db.begin_nested():
            db.add(message)
    except IntegrityError:
        return None
    return message


@dataclass(frozen=True)
class _Outgoing:
    id: int
    to_addr: str
    subject: str
    body_text: str
    created_at: datetime
    calendar_text: str = ""


_METHOD = re.compile(r"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


def calendar_method(calendar: str) -> str | None:
    """The iTIP METHOD of an iCalendar object (REQUEST, CANCEL, ...), read from its VCALENDAR header."""
    head = calendar.split("BEGIN:VEVENT", 1)[0].split("BEGIN:VTIMEZONE", 1)[0]
    found = _METHOD.search(head)
    return found.group(1).upper() if found else None


def build_message(item: _Outgoing, sender: str) -> EmailMessage:
    """A standard MIME message: UTF-8 subject (RFC 2047) and body (base64), Date and a stable Message-ID.

    With a calendar object it is iTIP over e-mail (RFC 6047), laid out as Google Calendar sends it, which
    Outlook, Gmail and Apple Mail all show as an invitation with answer buttons:
    multipart/mixed [ multipart/alternative [ text/plain, text/calendar; method=... ], invite.ics ].
    The inline part is what calendar-aware clients act on; the attachment serves those that ignore it.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = item.to_addr
    msg["Subject"] = item.subject
    msg["Date"] = email.utils.format_datetime(utcnow())
    domain = sender.rpartition("@")[2].strip("> ") or "localhost"
    msg["Message-ID"] = f"<outbox.{item.id}.{int(item.created_at.timestamp())}@{domain}>"
    msg.set_content(item.body_text, charset="utf-8", cte="base64")
    method = calendar_method(item.calendar_text) if item.calendar_text else None
    if method is None:
        return msg
    ics = item.calendar_text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    # Bytes keep the object's CRLF line ends exactly (base64 carries them unchanged through any MTA).
    msg.add_alternative(
        ics, maintype="text", subtype="calendar", cte="base64", params={"charset": "UTF-8", "method": method}
    )
    msg.add_attachment(  # turns the message into multipart/mixed around the alternative
        ics,
        maintype="application",
        subtype="ics",
        cte="base64",
        filename="invite.ics",
        params={"name": "invite.ics"},
    )
    return msg


def _smtp_send(settings: Settings, batch: list[_Outgoing]) -> dict[int, str | None]:
    """Send a batch over one connection (runs in a thread); the error text per message id, None if sent."""
    results: dict[int, str | None] = {}
    try:
        with smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            for item in batch:
                try:
                    smtp.send_message(build_message(item, settings.smtp_from))
                    results[item.id] = None
                except MESSAGE_ERRORS as exc:  # this message only; the connection is still good
                    results[item.id] = _error_text(exc)
    except (OSError, smtplib.SMTPException) as exc:
        # The connection failed or dropped: every message not yet sent shares the error.
        for item in batch:
            results.setdefault(item.id, _error_text(exc))
    return results


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


async def _claim(maker: async_sessionmaker[AsyncSession], limit: int) -> list[_Outgoing]:
    """Take due messages under a lease; SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite."""
    now = utcnow()
    async with maker() as db, db.begin():
        rows = (
            await db.execute(
                select(OutboxMessage)
                .where(col(OutboxMessage.status) == "pending", col(OutboxMessage.send_after) <= now)
                .order_by(col(OutboxMessage.send_after), col(OutboxMessage.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        batch = []
        for row in rows:
            row.send_after = now + LEASE
            batch.append(
                _Outgoing(
                    row.id or 0,
                    row.to_addr,
                    row.subject,
                    row.body_text,
                    row.created_at,
                    row.calendar_text or "",
                )
            )
    return batch


async def _record(
    maker: async_sessionmaker[AsyncSession], outcome: dict[int, str | None], ok: str
) -> dict[str, int]:
    counts = dict.fromkeys(("sent", "logged", "retry", "failed"), 0)
    now = utcnow()
    async with maker() as db, db.begin():
        for message_id, error in outcome.items():
            row = await db.get(OutboxMessage, message_id)
            if row is None or row.status != "pending":
                continue
            if error is None:
                row.status, row.sent_at = ok, now
            else:
                row.attempts += 1
                row.last_error = error
                if row.attempts >= MAX_ATTEMPTS:
                    row.status = "failed"
                else:
                    row.send_after = now + BACKOFF[row.attempts - 1]
            counts[row.status if row.status != "pending" else "retry"] += 1
    return counts


async def deliver_due(
    session_maker: async_sessionmaker[AsyncSession], settings: Settings, *, limit: int = 50
) -> dict[str, int]:
    """Deliver up to `limit` due messages; counts of sent, logged, retry (failed, will try again), failed."""
    batch = await _claim(session_maker, limit)
    if not batch:
        return {"sent": 0, "logged": 0, "retry": 0, "failed": 0}
    if not settings.smtp_host:
        for item in batch:
            log.info(
                "mail (no SMTP_HOST, not sent) to=%s subject=%s%s\n%s",
                item.to_addr,
                item.subject,
                f" calendar=METHOD:{calendar_method(item.calendar_text)}" if item.calendar_text else "",
                item.body_text,
            )
        return await _record(session_maker, dict.fromkeys((i.id for i in batch), None), "logged")
    outcome = await asyncio.to_thread(_smtp_send, settings, batch)
    for message_id, error in outcome.items():
        if error is not None:
            log.warning("mail %s not delivered: %s", message_id, error)
    return await _record(session_maker, outcome, "sent")


async def delivery_loop(session_maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Deliver forever, every MAIL_POLL_SECONDS (at once again while batches come back full)."""
    limit = 50
    while True:
        done = 0
        try:
            done = sum((await deliver_due(session_maker, settings, limit=limit)).values())
        except Exception:
            log.exception("mail delivery round failed; trying again later")
        if done < limit:
            await asyncio.sleep(settings.mail_poll_seconds)


async def recent(
    db: AsyncSession, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[OutboxMessage], int]:
    """Newest first, with the total for pagination."""
    query = select(OutboxMessage)
    if status:
        query = query.where(col(OutboxMessage.status) == status)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await db.execute(query.order_by(col(OutboxMessage.id).desc()).limit(limit).offset(offset))
    ).scalars()
    return list(rows), int(total)


async def requeue_failed(db: AsyncSession, message_id: int, actor: Principal, ip: str = "") -> OutboxMessage:
    """Give a failed message a fresh set of attempts from now (e.g. once the mail server is fixed)."""
    result = await db.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id, col(OutboxMessage.status) == "failed")
        .values(status="pending", attempts=0, send_after=utcnow())
        .returning(col(OutboxMessage.id))
    )
    if result.first() is None:
        if await db.get(OutboxMessage, message_id) is None:
            raise NotFound("mail.not_found")
        raise Conflict("mail.not_failed")
    row = await db.get(OutboxMessage, message_id, populate_existing=True)
    assert row is not None
    audit.record(
        db,
        "mail.retry",
        actor_id=actor.id,
        actor_label=actor.employee_number,
        entity_type="outbox_message",
        entity_id=message_id,
        before={"status": "failed"},
        after={"status": "pending", "to": row.to_addr},
        ip=ip,
    )
    return row
