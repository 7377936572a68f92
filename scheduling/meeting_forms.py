"""The meeting forms as posted (every field a string, so what was typed comes back as typed) and their
conversion to the API's input: one set of rules and messages for pages and API."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import msgspec

from app.errors import DomainError
from scheduling import meeting_schemas as ms
from scheduling.config import TOKYO
from scheduling.meeting_recurrence import utc


def number(text: str) -> int | None:
    """A whole number typed into a form (ASCII digits only), or None."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= 2_147_483_647:
        return int(text)
    return None


def _list(value: list[str] | str) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _ids(value: list[str] | str) -> list[int]:
    out = []
    for v in _list(value):
        n = number(v)
        if n:
            out.append(n)
    return list(dict.fromkeys(out))[:250]


class MeetingForm(msgspec.Struct, kw_only=True):
    """What the schedule/edit form posts (every field a string, so what was typed comes back as typed)."""

    action: str = "save"  # save, search, check
    add: str = ""  # a person's id from the search results
    remove: str = ""  # a chosen person's id
    q: str = ""
    title: str = ""
    agenda: str = ""
    day: str = ""
    start_time: str = ""
    end_time: str = ""
    attendee_ids: list[str] | str = msgspec.field(default_factory=list)
    cohost_ids: list[str] | str = msgspec.field(default_factory=list)
    emails: str = ""
    lobby: str = ""
    freq: str = ""
    interval: str = "1"
    byday: list[str] | str = msgspec.field(default_factory=list)
    monthly_by: str = "monthday"
    ends: str = "count"  # count, until
    count: str = ""
    until: str = ""
    sequence: str = ""

    def chosen(self) -> list[int]:
        ids = _ids(self.attendee_ids)
        added = number(self.add)
        if added:
            ids = list(dict.fromkeys([*ids, added]))
        return [i for i in ids if str(i) != self.remove]

    def cohosts(self) -> list[int]:
        return [i for i in _ids(self.cohost_ids) if i in self.chosen()]

    def byday_list(self) -> list[str]:
        return _list(self.byday)

    def email_list(self) -> list[str]:
        return [
            e.strip() for e in self.emails.replace(",", "\n").replace(";", "\n").splitlines() if e.strip()
        ]


class AnswerForm(msgspec.Struct, kw_only=True):
    answer: str = ""
    sequence: str = ""  # the version on the page (blank: answer whatever is current)


class SequenceForm(msgspec.Struct, kw_only=True):
    sequence: str = ""
    confirm: str = ""  # cancelling the whole meeting asks for a tick first


class MoveForm(msgspec.Struct, kw_only=True):
    day: str = ""
    start_time: str = ""
    end_time: str = ""
    sequence: str = ""


def wall_time(day: str, clock: str, field: str) -> datetime:
    try:
        d = date.fromisoformat(day.strip())
        h, m = clock.strip().split(":")[:2]
        return datetime.combine(d, time(int(h), int(m)))  # Tokyo wall time
    except ValueError as exc:
        raise DomainError("mt.form.bad_time", field=field, status_code=422) from exc


def to_meeting_in(form: MeetingForm) -> ms.MeetingIn:
    """The form as the API's input; a bad field becomes a DomainError naming it."""
    start = wall_time(form.day, form.start_time, "mt_start")
    end = wall_time(form.day, form.end_time, "mt_end")
    payload: dict[str, Any] = {
        "title": form.title,
        "agenda": form.agenda,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "attendee_ids": form.chosen(),
        "cohost_ids": form.cohosts(),
        "emails": form.email_list(),
        "lobby": form.lobby in ("on", "1", "true"),
        "freq": form.freq if form.freq in ("weekly", "monthly") else "",
    }
    if payload["freq"]:
        interval = number(form.interval)
        if interval is None:
            raise DomainError("meeting.rrule.interval", field="mt_repeat", status_code=422)
        payload["interval"] = interval
        payload["byday"] = form.byday_list()
        payload["monthly_by"] = form.monthly_by
        if form.ends == "until":
            payload["until"] = form.until.strip()
        else:
            count = number(form.count)
            if count is None:
                raise DomainError("meeting.rrule.count", field="mt_repeat", n=100, status_code=422)
            payload["count"] = count
    try:
        return msgspec.convert(payload, ms.MeetingIn)
    except msgspec.ValidationError as exc:
        raise DomainError("mt.form.invalid", status_code=422, detail=str(exc)) from exc


def form_of(read: ms.MeetingRead) -> MeetingForm:
    """An edit form filled from the meeting as it is."""
    start, end = read.start.astimezone(TOKYO), read.end.astimezone(TOKYO)
    return MeetingForm(
        title=read.title,
        agenda=read.agenda,
        day=start.date().isoformat(),
        start_time=start.strftime("%H:%M"),
        end_time=end.strftime("%H:%M"),
        attendee_ids=[str(a.user_id) for a in read.attendees if a.user_id is not None],
        cohost_ids=[str(a.user_id) for a in read.attendees if a.user_id is not None and a.role == "cohost"],
        emails="\n".join(a.email for a in read.attendees if a.user_id is None),
        lobby="on" if read.lobby else "",
        freq=read.freq,
        interval=str(read.interval),
        byday=list(read.byday),
        monthly_by=read.monthly_by,
        ends="until" if read.until else "count",
        count=str(read.count or ""),
        until=read.until.isoformat() if read.until else "",
        sequence=str(read.sequence),
    )


def jst(moment: datetime | None) -> datetime | None:
    return utc(moment).astimezone(TOKYO) if moment else None


def settled(form: MeetingForm) -> MeetingForm:
    """The form after an add/remove button: the chosen list updated, the search kept for more picks."""
    return msgspec.structs.replace(
        form,
        attendee_ids=[str(i) for i in form.chosen()],
        cohost_ids=[str(i) for i in form.cohosts()],
        add="",
        remove="",
        action="save",
    )
