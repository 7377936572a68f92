"""Meeting invitations by e-mail (iTIP over e-mail, RFC 6047): REQUEST, CANCEL, and REPLY taken back in.

The scheduling service calls ``queue_request`` / ``queue_cancel`` inside its own transaction, after it has
written the meeting rows and bumped SEQUENCE; the mail goes through the outbox with the transaction, so a
rolled-back change sends nothing. Each attendee gets their own message: the text in their language (outside
addresses: Japanese and English), the calendar object inline and as ``invite.ics``, and their own join link
(a signed guest link for an outside address, the room for staff).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from icalendar import vRecur
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app import audit, mail, signing
from app.db import utcnow
from app.errors import Conflict, DomainError, NotFound
from app.i18n import translate
from app.settings import Settings
from auth.models import User
from scheduling import itip
from scheduling.config import TOKYO
from scheduling.models import Meeting, MeetingAttendee, MeetingOccurrence

GUEST_PURPOSE = "rtc.guest"
GUEST_GRACE = timedelta(days=1)  # a guest link works until one day after the meeting (series) ends
UNBOUNDED_HORIZON = timedelta(days=400)  # an open-ended series: links are good this long from sending
BILINGUAL = ("ja", "en")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def room_link(settings: Settings, meeting: Meeting) -> str:
    return f"{settings.base_url.rstrip('/')}/rooms/{meeting.room_id}"


def meeting_link(settings: Settings, meeting: Meeting) -> str:
    return f"{settings.base_url.rstrip('/')}/meetings/{meeting.id}"


def guest_expiry(meeting: Meeting, now: float | None = None) -> float:
    """Unix time a guest link stops working: one day after the last occurrence ends."""
    if meeting.rrule and meeting.series_end_at is None:
        return (now if now is not None else time.time()) + UNBOUNDED_HORIZON.total_seconds()
    last = meeting.series_end_at if meeting.rrule and meeting.series_end_at else meeting.end_at
    return (_aware(last) + GUEST_GRACE).timestamp()


def guest_link(settings: Settings, meeting: Meeting, attendee: MeetingAttendee) -> str:
    """An outside attendee's own way into the meeting's room (checked by rtc; see app.signing)."""
    name = attendee.name.strip() or attendee.email.partition("@")[0]
    token = signing.sign(
        settings.secret_key,
        GUEST_PURPOSE,
        {"r": meeting.room_id, "e": attendee.email.lower(), "n": name, "m": meeting.id},
        expires_at=guest_expiry(meeting),
    )
    return f"{settings.base_url.rstrip('/')}/rooms/{meeting.room_id}/guest?t={token}"


# ---------------------------------------------------------------- words: dates, times, repeats


def _date(locale: str, moment: datetime) -> str:
    local = _aware(moment).astimezone(TOKYO)
    weekdays = translate(locale, "invite.weekdays").split(",")
    months = translate(locale, "invite.months").split(",")
    return translate(
        locale,
        "invite.date",
        y=local.year,
        m=local.month,
        d=local.day,
        wd=weekdays[local.weekday()],
        mon=months[local.month - 1],
    )


def when_text(locale: str, start: datetime, end: datetime) -> str:
    """'2027年3月1日（月） 10:00〜11:00（日本時間）' / 'Mon 1 Mar 2027, 10:00–11:00 (JST)'."""
    s, e = _aware(start).astimezone(TOKYO), _aware(end).astimezone(TOKYO)
    if s.date() == e.date():
        return translate(
            locale, "invite.when.range", date=_date(locale, s), start=f"{s:%H:%M}", end=f"{e:%H:%M}"
        )
    return translate(
        locale,
        "invite.when.span",
        date=_date(locale, s),
        start=f"{s:%H:%M}",
        end_date=_date(locale, e),
        end=f"{e:%H:%M}",
    )


def repeat_text(locale: str, rrule: str, start: datetime) -> str:
    """A plain-words summary of the RRULE ('毎週月曜日、全10回'); empty for a single event."""
    if not rrule:
        return ""
    try:
        rule = vRecur.from_ical(rrule)
    except ValueError:
        return rrule
    freq = str((rule.get("FREQ") or [""])[0]).upper()
    local = _aware(start).astimezone(TOKYO)
    weekday = translate(locale, "invite.weekdays_long").split(",")[local.weekday()]
    interval = int((rule.get("INTERVAL") or [1])[0])
    if freq not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        return rrule
    key = f"invite.repeat.interval.{freq}" if interval > 1 else f"invite.repeat.{freq}"
    text = translate(locale, key, n=interval, weekday=weekday, day=local.day)
    if rule.get("COUNT"):
        text = translate(locale, "invite.repeat.count", base=text, n=int(rule["COUNT"][0]))
    elif rule.get("UNTIL"):
        until = rule["UNTIL"][0]
        if not isinstance(until, datetime):
            until = datetime(until.year, until.month, until.day, tzinfo=TOKYO)
        text = translate(locale, "invite.repeat.until", base=text, date=_date(locale, until))
    return text


# ---------------------------------------------------------------- loading the rows


@dataclass
class _Loaded:
    meeting: Meeting
    organizer: User | None
    attendees: list[MeetingAttendee]
    occurrences: list[MeetingOccurrence]
    users: dict[int, User]


async def _load(db: AsyncSession, meeting_id: int) -> _Loaded:
    meeting = await db.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("meeting.not_found")
    attendees = list(
        (
            await db.execute(
                select(MeetingAttendee)
                .where(col(MeetingAttendee.meeting_id) == meeting_id)
                .order_by(col(MeetingAttendee.id))
            )
        ).scalars()
    )
    occurrences = list(
        (
            await db.execute(
                select(MeetingOccurrence)
                .where(col(MeetingOccurrence.meeting_id) == meeting_id)
                .order_by(col(MeetingOccurrence.recurrence_id))
            )
        ).scalars()
    )
    ids = {a.user_id for a in attendees if a.user_id is not None} | {meeting.organizer_id}
    users = {u.id: u for u in (await db.execute(select(User).where(col(User.id).in_(ids)))).scalars() if u.id}
    return _Loaded(meeting, users.get(meeting.organizer_id), attendees, occurrences, users)


def _party(attendee: MeetingAttendee) -> itip.Party:
    return itip.Party(email=attendee.email, name=attendee.name, partstat=attendee.partstat)


def meeting_event(
    meeting: Meeting,
    organizer: User | None,
    attendees: Sequence[MeetingAttendee],
    occurrences: Sequence[MeetingOccurrence],
) -> itip.MeetingEvent:
    """The rows as the iCalendar builders see them."""
    return itip.MeetingEvent(
        uid=meeting.uid,
        title=meeting.title,
        agenda=meeting.agenda,
        start_at=meeting.start_at,
        end_at=meeting.end_at,
        tz=meeting.tz,
        rrule=meeting.rrule,
        sequence=meeting.sequence,
        status=meeting.status,
        organizer=itip.Party(
            email=organizer.email if organizer else "", name=organizer.name if organizer else ""
        ),
        attendees=tuple(_party(a) for a in attendees),
        exceptions=tuple(
            itip.Occurrence(
                recurrence_id=o.recurrence_id,
                start_at=o.start_at,
                end_at=o.end_at,
                cancelled=o.cancelled,
                sequence=o.sequence,
            )
            for o in occurrences
        ),
        updated_at=meeting.updated_at,
        created_at=meeting.created_at,
    )


def _sender(settings: Settings) -> str:
    address = parseaddr(settings.smtp_from)[1]
    return address if "@" in address else ""


def _locales(attendee: MeetingAttendee, user: User | None) -> tuple[str, ...]:
    if user is None:
        return BILINGUAL
    return (user.locale if user.locale in BILINGUAL else "ja",)


def _recipients(loaded: _Loaded, attendee_ids: list[int] | None) -> list[MeetingAttendee]:
    wanted = set(attendee_ids) if attendee_ids is not None else None
    out = []
    for a in loaded.attendees:
        if wanted is not None and a.id not in wanted:
            continue
        user = loaded.users.get(a.user_id) if a.user_id is not None else None
        if a.user_id is not None and (user is None or not user.active):
            continue  # someone who has left gets no mail
        out.append(a)
    return out


def _links(settings: Settings, loaded: _Loaded, attendee: MeetingAttendee) -> itip.Links:
    locales = _locales(attendee, loaded.users.get(attendee.user_id or 0))
    if attendee.user_id is None:
        # Outside guests cannot sign in: no app link, their calendar's answer comes back as a REPLY.
        return itip.Links(join_url=guest_link(settings, loaded.meeting, attendee), locales=locales)
    return itip.Links(
        join_url=room_link(settings, loaded.meeting),
        app_url=meeting_link(settings, loaded.meeting),
        locales=locales,
    )


def _effective_sequence(loaded: _Loaded) -> int:
    return max([loaded.meeting.sequence, *(o.sequence for o in loaded.occurrences)])


# ---------------------------------------------------------------- the message text


def _body(
    locale: str,
    kind: str,
    loaded: _Loaded,
    attendee: MeetingAttendee,
    links: itip.Links,
    *,
    when: str,
    occurrence_when: str = "",
) -> str:
    m = loaded.meeting
    organizer = loaded.organizer.name if loaded.organizer else ""
    name = attendee.name.strip() or attendee.email
    lines = [translate(locale, "invite.body.greeting", name=name), ""]
    lines.append(translate(locale, f"invite.body.{kind}", organizer=organizer, when=occurrence_when))
    lines.append("")
    lines.append(translate(locale, "invite.body.title", title=itip.one_line(m.title)))
    lines.append(translate(locale, "invite.body.when", when=when))
    repeat = repeat_text(locale, m.rrule, m.start_at)
    if repeat:
        lines.append(translate(locale, "invite.body.repeat", repeat=repeat))
    if kind in ("new", "update") and m.rrule:
        length = _aware(m.end_at) - _aware(m.start_at)
        for o in loaded.occurrences:
            original = when_text(locale, o.recurrence_id, _aware(o.recurrence_id) + length)
            if o.cancelled:
                lines.append(translate(locale, "invite.body.skipped", when=original))
            elif o.start_at is not None:
                moved = when_text(locale, o.start_at, o.end_at or _aware(o.start_at) + length)
                lines.append(translate(locale, "invite.body.moved", original=original, when=moved))
    lines.append(translate(locale, "invite.body.organizer", name=organizer))
    if kind in ("new", "update"):
        key = "invite.body.guest_join" if attendee.user_id is None else "invite.body.join"
        lines.append(translate(locale, key, url=links.join_url))
        if m.agenda.strip():
            lines += ["", translate(locale, "invite.body.agenda"), m.agenda.strip()]
        lines.append("")
        if links.app_url:
            lines.append(translate(locale, "invite.body.reply_app", url=links.app_url))
        else:
            lines.append(translate(locale, "invite.body.reply_calendar"))
    lines += ["", translate(locale, "invite.body.footer")]
    return "\n".join(lines)


def _compose(
    locales: tuple[str, ...],
    kind: str,
    loaded: _Loaded,
    attendee: MeetingAttendee,
    links: itip.Links,
    *,
    start: datetime,
    end: datetime,
) -> tuple[str, str]:
    """Subject and body in each language (joined: Japanese first)."""
    subjects, bodies = [], []
    title = itip.one_line(loaded.meeting.title)
    local_start = _aware(start).astimezone(TOKYO)
    for locale in locales:
        when = when_text(locale, start, end)
        short = translate(
            locale, "invite.when.short", date=_date(locale, start), start=f"{local_start:%H:%M}"
        )
        subject_key = "cancel_one" if kind == "cancel_one" else kind if kind != "removed" else "cancel"
        subjects.append(translate(locale, f"invite.subject.{subject_key}", title=title, when=short))
        bodies.append(
            _body(
                locale,
                kind,
                loaded,
                attendee,
                links,
                when=when_text(locale, loaded.meeting.start_at, loaded.meeting.end_at),
                occurrence_when=when if kind == "cancel_one" else "",
            )
        )
    return " / ".join(subjects), "\n\n----------------------------------------\n\n".join(bodies)


# ---------------------------------------------------------------- the interface the scheduling service calls


async def queue_request(
    db: AsyncSession, settings: Settings, meeting_id: int, *, attendee_ids: list[int] | None = None
) -> int:
    """Queue a METHOD:REQUEST (the whole series as it now stands) to each attendee, or to the listed ones.

    A second call at the same SEQUENCE for the same attendee queues nothing (dedupe key); bump first.
    Returns how many messages were queued.
    """
    loaded = await _load(db, meeting_id)
    m = loaded.meeting
    event = meeting_event(m, loaded.organizer, loaded.attendees, loaded.occurrences)
    sequence = _effective_sequence(loaded)
    kind = "update" if sequence > 0 else "new"
    now = utcnow()
    queued = 0
    for attendee in _recipients(loaded, attendee_ids):
        links = _links(settings, loaded, attendee)
        calendar = itip.build_request(event, links, now=now, sent_by=_sender(settings)).decode("utf-8")
        subject, body = _compose(links.locales, kind, loaded, attendee, links, start=m.start_at, end=m.end_at)
        message = await mail.enqueue(
            db,
            attendee.email,
            subject,
            body,
            dedupe_key=f"meeting:{m.id}:request:{sequence}:{attendee.id}",
            calendar=calendar,
        )
        queued += message is not None
    return queued


async def queue_cancel(
    db: AsyncSession,
    settings: Settings,
    meeting_id: int,
    *,
    attendee_ids: list[int] | None = None,
    recurrence_id: datetime | None = None,
) -> int:
    """Queue a METHOD:CANCEL: the whole meeting, or one occurrence (``recurrence_id``: its original start,
    UTC), or, with ``attendee_ids`` while the meeting goes on, to people taken off the list (call this
    before deleting their rows). Returns how many messages were queued.
    """
    loaded = await _load(db, meeting_id)
    m = loaded.meeting
    event = meeting_event(m, loaded.organizer, loaded.attendees, loaded.occurrences)
    now = utcnow()
    sender = _sender(settings)
    if recurrence_id is not None:
        wanted = _aware(recurrence_id).astimezone(UTC)
        occ = next((o for o in loaded.occurrences if _aware(o.recurrence_id) == wanted), None)
        length = _aware(m.end_at) - _aware(m.start_at)
        start = occ.start_at if occ is not None and occ.start_at is not None else wanted
        end = occ.end_at if occ is not None and occ.end_at is not None else _aware(start) + length
        sequence = max(m.sequence, occ.sequence if occ is not None else 0)
        kind, suffix = "cancel_one", f":{int(wanted.timestamp())}"
    else:
        start, end, sequence, suffix = m.start_at, m.end_at, m.sequence, ""
        kind = "removed" if attendee_ids is not None and m.status != "cancelled" else "cancel"
    queued = 0
    for attendee in _recipients(loaded, attendee_ids):
        links = _links(settings, loaded, attendee)
        calendar = itip.build_cancel(
            event, [_party(attendee)], now=now, recurrence_id=recurrence_id, links=links, sent_by=sender
        ).decode("utf-8")
        subject, body = _compose(links.locales, kind, loaded, attendee, links, start=start, end=end)
        message = await mail.enqueue(
            db,
            attendee.email,
            subject,
            body,
            dedupe_key=f"meeting:{m.id}:cancel:{sequence}:{attendee.id}{suffix}",
            calendar=calendar,
        )
        queued += message is not None
    return queued


# ---------------------------------------------------------------- answers that come back by e-mail


def answerable_sequences(sequence: int, occurrences: Iterable[MeetingOccurrence]) -> set[int]:
    """The SEQUENCEs a series answer may carry: the current one, and those before it while the changes since
    were only cancelled occurrences (those send a CANCEL for one date; the series copy keeps its SEQUENCE).
    """
    cancelled_at = {o.sequence for o in occurrences if o.cancelled}
    accepted = {sequence}
    while sequence in cancelled_at and sequence > 0:
        sequence -= 1
        accepted.add(sequence)
    return accepted


@dataclass(frozen=True)
class ReplyApplied:
    meeting_id: int
    attendee_id: int
    email: str
    partstat: str
    changed: bool


async def apply_reply(
    db: AsyncSession, ics: bytes | str, *, actor_id: int | None = None, actor_label: str = "itip-reply"
) -> ReplyApplied:
    """Record an attendee's answer from a METHOD:REPLY (e.g. what Outlook sends the organizer).

    Taken only when the UID is a meeting's, the ATTENDEE is on its list and the SEQUENCE is the current
    one: an answer to an older version (times since changed) or from someone not invited is refused.
    """
    try:
        reply = itip.parse_reply(ics)
    except itip.ItipError as exc:
        raise DomainError("invite.reply.malformed", reason=str(exc)) from exc
    meeting = (await db.execute(select(Meeting).where(col(Meeting.uid) == reply.uid))).scalars().first()
    if meeting is None or meeting.id is None:
        raise NotFound("invite.reply.unknown_meeting")
    if meeting.status == "cancelled":
        raise Conflict("invite.reply.cancelled")
    attendee = next(
        (
            a
            for a in (
                await db.execute(select(MeetingAttendee).where(col(MeetingAttendee.meeting_id) == meeting.id))
            ).scalars()
            if a.email.strip().lower() == reply.email
        ),
        None,
    )
    if attendee is None or attendee.id is None:
        raise NotFound("invite.reply.unknown_attendee")
    if reply.recurrence_id is not None:
        raise DomainError("invite.reply.occurrence", status_code=422)
    occurrences = (
        await db.execute(select(MeetingOccurrence).where(col(MeetingOccurrence.meeting_id) == meeting.id))
    ).scalars()
    if reply.sequence not in answerable_sequences(meeting.sequence, occurrences):
        raise Conflict("invite.reply.stale", got=reply.sequence, current=meeting.sequence)
    answered = attendee.responded_at
    if reply.dtstamp is not None and answered is not None:
        stamp = reply.dtstamp if reply.dtstamp.tzinfo else reply.dtstamp.replace(tzinfo=UTC)
        if stamp < (answered if answered.tzinfo else answered.replace(tzinfo=UTC)):
            raise Conflict("invite.reply.older")  # written before the answer we hold (e.g. one in the app)
    before = attendee.partstat
    changed = before != reply.partstat
    attendee.partstat = reply.partstat
    attendee.responded_at = utcnow()
    db.add(attendee)
    audit.record(
        db,
        "meeting.reply",
        actor_id=actor_id,
        actor_label=actor_label,
        entity_type="meeting_attendee",
        entity_id=attendee.id,
        before={"partstat": before},
        after={"partstat": reply.partstat, "meeting_id": meeting.id, "via": "itip-reply"},
    )
    return ReplyApplied(meeting.id, attendee.id, attendee.email, reply.partstat, changed)
