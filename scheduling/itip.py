"""iTIP (RFC 5546) for meetings: REQUEST, CANCEL and PUBLISH out, REPLY in. Pure: no database, no HTTP.

The wire format keeps to what Outlook, Google and Apple all accept (see scheduling/ical.py): CRLF, lines
folded at 75 octets, a VTIMEZONE for the TZID used, DTSTART/DTEND in the meeting's zone (Asia/Tokyo), DTSTAMP
in UTC. A series is one VEVENT with RRULE; a cancelled occurrence is an EXDATE; a moved one is a second VEVENT
with the same UID and a RECURRENCE-ID (the original start). The UID never changes and SEQUENCE is what the
rows say (the scheduling service bumps it on every change it sends), so a client updates its copy in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, Timezone, vCalAddress, vRecur

from app.i18n import translate
from scheduling.ical import PRODID, TZID, _tokyo_zone, _utc, clean_text

PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE")
REPLY_PARTSTATS = ("ACCEPTED", "DECLINED", "TENTATIVE")
MAX_REPLY_BYTES = 256 * 1024


class ItipError(ValueError):
    """An iCalendar object we cannot use (malformed, not a REPLY, missing UID or attendee...)."""


@dataclass(frozen=True)
class Party:
    """An organizer or attendee as the calendar shows them."""

    email: str
    name: str = ""
    partstat: str = "NEEDS-ACTION"


@dataclass(frozen=True)
class Occurrence:
    """A changed occurrence of a series: moved (new start/end) or cancelled. Times are UTC."""

    recurrence_id: datetime  # the occurrence's original start
    start_at: datetime | None = None
    end_at: datetime | None = None
    cancelled: bool = False
    sequence: int = 0


@dataclass(frozen=True)
class MeetingEvent:
    """What an invitation or a feed needs to know about a meeting. Times are UTC (naive means UTC)."""

    uid: str
    title: str
    start_at: datetime
    end_at: datetime
    organizer: Party
    sequence: int = 0
    agenda: str = ""
    tz: str = TZID
    rrule: str = ""
    status: str = "scheduled"  # scheduled, cancelled
    attendees: tuple[Party, ...] = ()
    exceptions: tuple[Occurrence, ...] = ()
    updated_at: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Links:
    """The links one recipient gets: their way into the room and the meeting's page in the app."""

    join_url: str
    app_url: str = ""
    locales: tuple[str, ...] = ("ja",)  # the languages of the added text (outside guests: ja and en)


@dataclass(frozen=True)
class Reply:
    """What a METHOD:REPLY says: one attendee's answer to one meeting (or one of its occurrences)."""

    uid: str
    email: str  # lower case, without mailto:
    partstat: str
    sequence: int
    recurrence_id: datetime | None = None  # UTC; set when the answer is for one occurrence only
    dtstamp: datetime | None = None
    comment: str = ""


@cache
def zone_component(tzid: str) -> Timezone:
    """The VTIMEZONE for a zone, built once."""
    if tzid == TZID:
        return _tokyo_zone()
    zone = Timezone.from_tzid(tzid)
    zone.pop("COMMENT", None)
    return zone


def _zone(tzid: str) -> tuple[str, ZoneInfo]:
    try:
        return tzid, ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        return TZID, ZoneInfo(TZID)


def _local(value: datetime, zone: ZoneInfo) -> datetime:
    return _utc(value).astimezone(zone)


def recurrence_rule(rrule: str, zone: ZoneInfo) -> vRecur:
    """The RRULE with UNTIL in UTC, as RFC 5545 requires beside a DTSTART with TZID (Outlook insists).

    A date-only UNTIL means "through that day" in the meeting's zone; a floating one is the zone's wall time.
    """
    rule = vRecur.from_ical(rrule)
    until = rule.get("UNTIL")
    if until:
        value = until[0]
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=zone)
        elif value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        rule["UNTIL"] = [value.astimezone(UTC)]
    return rule


_BLANKS = re.compile(r"[ \t\n]+")


def one_line(value: str) -> str:
    """Typed text for a one-line value: line breaks become spaces (a full-width space stays as typed)."""
    return _BLANKS.sub(" ", clean_text(value)).strip(" ")


def _param_text(value: str) -> str:
    """A parameter value (CN): one line, no DQUOTE (it cannot be escaped inside a quoted parameter)."""
    return one_line(value).replace('"', "'")[:100]


def _address(party: Party, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{party.email.strip()}")
    if party.name.strip():
        address.params["CN"] = _param_text(party.name)
    for key, value in params.items():
        address.params[key.replace("_", "-").upper()] = value
    return address


def description(meeting: MeetingEvent, links: Links | None) -> str:
    """The agenda, then the join link and where to answer, in the recipient's language(s)."""
    parts = [clean_text(meeting.agenda).strip()] if meeting.agenda.strip() else []
    if links is not None:
        for locale in links.locales:
            lines = [translate(locale, "invite.ics.join", url=links.join_url)]
            if links.app_url:
                lines.append(translate(locale, "invite.ics.reply", url=links.app_url))
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _common(event: Event, meeting: MeetingEvent, links: Links | None, stamp: datetime) -> None:
    event.add("uid", meeting.uid)
    event.add("dtstamp", _utc(stamp))
    if meeting.created_at is not None:
        event.add("created", _utc(meeting.created_at))
    if meeting.updated_at is not None:
        event.add("last-modified", _utc(meeting.updated_at))
    event.add("summary", one_line(meeting.title))
    text = description(meeting, links)
    if text:
        event.add("description", text)
    if links is not None and links.join_url:
        event.add("location", links.join_url)
        event.add("url", links.join_url)
    event.add("class", "PUBLIC")
    event.add("transp", "OPAQUE")


def _organizer(meeting: MeetingEvent, sent_by: str) -> vCalAddress:
    params = {"SENT_BY": f"mailto:{sent_by}"} if sent_by and sent_by != meeting.organizer.email else {}
    return _address(meeting.organizer, **params)


def _attendee(party: Party, *, rsvp: bool) -> vCalAddress:
    partstat = party.partstat if party.partstat in PARTSTATS else "NEEDS-ACTION"
    params = {"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": partstat}
    if rsvp:
        params["RSVP"] = "TRUE"
    return _address(party, **params)


def _people(
    event: Event,
    meeting: MeetingEvent,
    sequence: int,
    status: str,
    attendees: Sequence[Party],
    *,
    rsvp: bool,
    sent_by: str,
) -> None:
    """SEQUENCE, STATUS, organizer and attendees: the same for the series and each moved occurrence."""
    event.add("sequence", sequence)
    event.add("status", status)
    event.add("organizer", _organizer(meeting, sent_by))
    for party in attendees:
        event.add("attendee", _attendee(party, rsvp=rsvp))
    if attendees:
        # Outlook would otherwise offer "propose new time" (METHOD:COUNTER), which this service does not take.
        event.add("x-microsoft-disallow-counter", "TRUE")


def _master(
    meeting: MeetingEvent,
    links: Links | None,
    stamp: datetime,
    *,
    status: str,
    attendees: Sequence[Party],
    rsvp: bool,
    sent_by: str,
) -> Event:
    _tzid, zone = _zone(meeting.tz)
    event = Event()
    _common(event, meeting, links, stamp)
    event.add("dtstart", _local(meeting.start_at, zone))
    event.add("dtend", _local(meeting.end_at, zone))
    if meeting.rrule:
        event.add("rrule", recurrence_rule(meeting.rrule, zone))
        for exc in sorted(meeting.exceptions, key=lambda x: _utc(x.recurrence_id)):
            if exc.cancelled:
                # One EXDATE line per date: some clients read only the first value of a list.
                event.add("exdate", _local(exc.recurrence_id, zone))
    _people(event, meeting, max(0, meeting.sequence), status, attendees, rsvp=rsvp, sent_by=sent_by)
    return event


def _override(
    meeting: MeetingEvent,
    exc: Occurrence,
    links: Links | None,
    stamp: datetime,
    *,
    status: str,
    attendees: Sequence[Party],
    rsvp: bool,
    sent_by: str,
) -> Event:
    """A VEVENT for one occurrence (same UID, RECURRENCE-ID = original start, in the meeting's zone)."""
    _tzid, zone = _zone(meeting.tz)
    original_start = _utc(exc.recurrence_id)
    length = _utc(meeting.end_at) - _utc(meeting.start_at)
    start = exc.start_at if exc.start_at is not None else original_start
    end = exc.end_at if exc.end_at is not None else _utc(start) + length
    event = Event()
    _common(event, meeting, links, stamp)
    event.add("recurrence-id", _local(original_start, zone))
    event.add("dtstart", _local(start, zone))
    event.add("dtend", _local(end, zone))
    _people(
        event, meeting, max(0, meeting.sequence, exc.sequence), status, attendees, rsvp=rsvp, sent_by=sent_by
    )
    return event


def _calendar(method: str, tzid: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    cal.add_component(zone_component(_zone(tzid)[0]))
    return cal


def _moved(meeting: MeetingEvent) -> list[Occurrence]:
    if not meeting.rrule:
        return []
    return sorted(
        (
            x
            for x in meeting.exceptions
            if not x.cancelled and (x.start_at is not None or x.end_at is not None)
        ),
        key=lambda x: _utc(x.recurrence_id),
    )


def build_request(meeting: MeetingEvent, links: Links, *, now: datetime, sent_by: str = "") -> bytes:
    """METHOD:REQUEST for the whole meeting: the series (cancelled occurrences as EXDATE) and each moved one.

    Every attendee is listed (so each sees who else is invited); ``links`` are the recipient's own.
    """
    status = "CANCELLED" if meeting.status == "cancelled" else "CONFIRMED"
    cal = _calendar("REQUEST", meeting.tz)
    args = {"status": status, "attendees": meeting.attendees, "rsvp": True, "sent_by": sent_by}
    cal.add_component(_master(meeting, links, now, **args))  # type: ignore[arg-type]
    for exc in _moved(meeting):
        cal.add_component(_override(meeting, exc, links, now, **args))  # type: ignore[arg-type]
    return cal.to_ical()


def build_cancel(
    meeting: MeetingEvent,
    attendees: Iterable[Party],
    *,
    now: datetime,
    recurrence_id: datetime | None = None,
    links: Links | None = None,
    sent_by: str = "",
) -> bytes:
    """METHOD:CANCEL to the given attendees: the whole meeting, or one occurrence (``recurrence_id``, UTC).

    SEQUENCE is the meeting's (or the occurrence's, when higher): the scheduling service bumps it first.
    """
    cal = _calendar("CANCEL", meeting.tz)
    who = list(attendees)
    args = {"status": "CANCELLED", "attendees": who, "rsvp": False, "sent_by": sent_by}
    if recurrence_id is None:
        cal.add_component(_master(meeting, links, now, **args))  # type: ignore[arg-type]
    else:
        wanted = _utc(recurrence_id)
        exc = next((x for x in meeting.exceptions if _utc(x.recurrence_id) == wanted), None)
        if exc is None:
            exc = Occurrence(recurrence_id=wanted, cancelled=True, sequence=meeting.sequence)
        cal.add_component(_override(meeting, exc, links, now, **args))  # type: ignore[arg-type]
    return cal.to_ical()


def publish_events(meeting: MeetingEvent, links: Links | None) -> list[Event]:
    """The VEVENTs of a meeting for a PUBLISH feed: same UID and SEQUENCE as the invitations, no attendees."""
    status = "CANCELLED" if meeting.status == "cancelled" else "CONFIRMED"
    stamp = meeting.updated_at or meeting.created_at or datetime.now(UTC)
    args = {"status": status, "attendees": (), "rsvp": False, "sent_by": ""}
    events = [_master(meeting, links, stamp, **args)]  # type: ignore[arg-type]
    events.extend(_override(meeting, x, links, stamp, **args) for x in _moved(meeting))  # type: ignore[arg-type]
    return events


_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)


def _as_utc(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return _utc(value)  # naive (floating) read as UTC: a REPLY carries the sender's copy of our values
    return None


def calendar_from_mail(raw: bytes) -> bytes:
    """The iCalendar object in what was saved from a mail client: the object itself, or a whole message
    (.eml) whose text/calendar part (or .ics attachment) carries it.
    """
    if raw.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):
        return raw
    message = BytesParser(policy=policy.default).parsebytes(raw)
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("text/calendar", "application/ics") or (part.get_filename() or "").lower().endswith(
            ".ics"
        ):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and payload.strip():
                return payload
    raise ItipError("no calendar object in this file")


def parse_reply(data: bytes | str) -> Reply:
    """The answer in a METHOD:REPLY object; ItipError when it is not one we can use.

    One attendee per REPLY (RFC 5546 3.2.3); an answer for one occurrence carries its RECURRENCE-ID.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_REPLY_BYTES:
        raise ItipError("too large")
    try:
        cal = Calendar.from_ical(raw)
    except (ValueError, IndexError, KeyError) as exc:
        raise ItipError(f"not an iCalendar object: {exc}") from exc
    if str(cal.get("METHOD", "")).upper() != "REPLY":
        raise ItipError("not a METHOD:REPLY")
    events = cal.walk("VEVENT")
    if not events:
        raise ItipError("no VEVENT")
    if len({str(e.get("UID", "")) for e in events}) != 1:
        raise ItipError("more than one UID")
    event = events[0]
    uid = str(event.get("UID", "")).strip()
    if not uid:
        raise ItipError("no UID")
    attendees = event.get("ATTENDEE")
    if attendees is None:
        raise ItipError("no ATTENDEE")
    if isinstance(attendees, list):
        if len(attendees) != 1:
            raise ItipError("a REPLY answers for exactly one attendee")
        attendees = attendees[0]
    email = _MAILTO.sub("", str(attendees)).strip().lower()
    if not email or "@" not in email:
        raise ItipError("the ATTENDEE is not an e-mail address")
    partstat = str(attendees.params.get("PARTSTAT", "")).upper()
    if partstat not in REPLY_PARTSTATS:
        raise ItipError(f"PARTSTAT {partstat or '(none)'} is not an answer")
    try:
        sequence = int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError) as exc:
        raise ItipError("SEQUENCE is not a number") from exc
    recurrence = event.get("RECURRENCE-ID")
    stamp = event.get("DTSTAMP")
    return Reply(
        uid=uid,
        email=email,
        partstat=partstat,
        sequence=sequence,
        recurrence_id=_as_utc(recurrence.dt) if recurrence is not None else None,
        dtstamp=_as_utc(stamp.dt) if stamp is not None else None,
        comment=one_line(str(event.get("COMMENT", ""))),
    )
