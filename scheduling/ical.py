"""iCalendar (RFC 5545) output for telework feeds (and the meetings in them): pure, no database, no HTTP.

Calendar clients are picky in different ways, so the output keeps to what Outlook, Google and Apple
all accept: CRLF line ends, lines folded at 75 octets without splitting a UTF-8 character, VERSION
and PRODID first, METHOD:PUBLISH, a VTIMEZONE for every TZID used, UTC DTSTAMP, and all-day events
as DATE values with an exclusive DTEND. A day's UID never changes; its SEQUENCE is the row's own
counter, bumped on every change, so a client replaces the event instead of adding a copy.

icalendar is imported only in `scheduling/` (one importer per heavy library).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from urllib.parse import urlsplit

from icalendar import Calendar, Event, Timezone, vDuration

from app.i18n import translate
from scheduling.config import TOKYO

PRODID = "-//Telework Hub//Telework feed 1.0//JA"
TZID = "Asia/Tokyo"
PART_ORDER = {"full": 0, "am": 1, "pm": 2}


@dataclass(frozen=True)
class PartTimes:
    """Local (Asia/Tokyo) times of the two half days."""

    am_start: time = time(8, 30)
    am_end: time = time(12, 0)
    pm_start: time = time(13, 0)
    pm_end: time = time(17, 15)


@dataclass(frozen=True)
class FeedDay:
    """What one event needs from a TeleworkDay, its request and (in a unit feed) its person."""

    id: int
    day: date
    part: str  # full, am, pm
    state: str  # approved, cancelled (other states are not published)
    sequence: int
    updated_at: datetime
    place: str = "home"
    place_note: str = ""
    plan: str = ""
    person: str | None = None  # set in a unit feed: the name goes into SUMMARY


def uid_host(base_url: str) -> str:
    """The host part of UIDs: the site's host name, stable across ports and schemes."""
    host = urlsplit(base_url).hostname or ""
    return host or "telework-hub.invalid"


def day_uid(day_id: int, host: str) -> str:
    return f"telework-day-{day_id}@{host}"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029]")


def clean_text(value: str) -> str:
    """Text a person typed, made safe for a TEXT value: newlines as LF (escaped on output), no controls.

    icalendar escapes LF, but a bare CR or another control character would break the content line.
    """
    return _CONTROL.sub("", _NEWLINES.sub("\n", value))


def _utc(value: datetime) -> datetime:
    """Aware UTC, whole seconds (a naive value from the database is UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)


def summary(day: FeedDay, locale: str) -> str:
    place = translate(locale, f"ical.place.{day.place if day.place in ('home', 'satellite') else 'other'}")
    text = translate(locale, f"ical.summary.{day.part if day.part in PART_ORDER else 'full'}", place=place)
    if day.person:
        text = translate(locale, "ical.summary.person", name=day.person, summary=text)
    if day.state == "cancelled":
        text = translate(locale, "ical.summary.cancelled", summary=text)
    return text


def description(day: FeedDay, locale: str, details: bool) -> str:
    """Place for everyone; the place note and the planned work only in the person's own feed."""
    place_key = f"ical.place_full.{day.place if day.place in ('home', 'satellite') else 'other'}"
    lines = [translate(locale, "ical.description.place", place=translate(locale, place_key))]
    if details and day.place_note.strip():
        lines[0] += f" ({day.place_note.strip()})"
    if details and day.plan.strip():
        lines.append(translate(locale, "ical.description.plan", plan=day.plan.strip()))
    if day.state == "cancelled":
        lines.append(translate(locale, "ical.description.cancelled"))
    return "\n".join(lines)


def _event(day: FeedDay, *, locale: str, host: str, times: PartTimes, details: bool) -> Event:
    event = Event()
    event.add("uid", day_uid(day.id, host))
    stamp = _utc(day.updated_at)
    event.add("dtstamp", stamp)
    event.add("last-modified", stamp)
    event.add("sequence", max(0, int(day.sequence)))
    if day.part == "am":
        event.add("dtstart", datetime.combine(day.day, times.am_start, tzinfo=TOKYO))
        event.add("dtend", datetime.combine(day.day, times.am_end, tzinfo=TOKYO))
    elif day.part == "pm":
        event.add("dtstart", datetime.combine(day.day, times.pm_start, tzinfo=TOKYO))
        event.add("dtend", datetime.combine(day.day, times.pm_end, tzinfo=TOKYO))
    else:
        event.add("dtstart", day.day)
        event.add("dtend", day.day + timedelta(days=1))  # exclusive: a one-day all-day event
    event.add("summary", clean_text(summary(day, locale)).replace("\n", " "))
    event.add("description", clean_text(description(day, locale, details)))
    cancelled = day.state == "cancelled"
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    # Working elsewhere is not 'busy': keep free/busy open, and tell Outlook what it is.
    event.add("transp", "TRANSPARENT")
    event.add("x-microsoft-cdo-busystatus", "FREE" if cancelled else "WORKINGELSEWHERE")
    event.add("class", "PUBLIC")
    return event


@cache
def _tokyo_zone() -> Timezone:
    """The VTIMEZONE, built once (15–20 ms a time); shared by every feed and never changed after."""
    zone = Timezone.from_tzid(TZID)
    zone.pop("COMMENT", None)  # "only works 1970–2038": Japan has kept +09:00 without DST since 1951
    return zone


def build_calendar(
    days: Iterable[FeedDay],
    *,
    locale: str,
    host: str,
    name: str,
    description_text: str = "",
    times: PartTimes | None = None,
    details: bool = True,
    refresh: timedelta = timedelta(hours=1),
    events: Iterable[Event] = (),
) -> bytes:
    """A complete VCALENDAR (UTF-8, CRLF, folded) with one VEVENT per day, in date order.

    ``events``: other VEVENTs to carry as they are (meetings, from scheduling.itip.publish_events); their
    times must use this calendar's zone (Asia/Tokyo) or UTC.
    """
    times = times or PartTimes()
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    name = clean_text(name).replace("\n", " ")
    cal.add("name", name)  # RFC 7986
    cal.add("x-wr-calname", name)  # Outlook, Google, Apple
    if description_text:
        cal.add("x-wr-caldesc", clean_text(description_text))
    cal.add("x-wr-timezone", TZID)
    cal.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})  # RFC 7986
    cal.add("x-published-ttl", vDuration(refresh))  # Outlook
    # Always present, even for an empty feed: a calendar needs one component, and clients that
    # ignore TZID definitions still find the zone named by X-WR-TIMEZONE.
    cal.add_component(_tokyo_zone())
    ordered = sorted(days, key=lambda d: (d.day, PART_ORDER.get(d.part, 9), d.id))
    for day in ordered:
        cal.add_component(_event(day, locale=locale, host=host, times=times, details=details))
    for event in events:
        cal.add_component(event)
    return cal.to_ical()
