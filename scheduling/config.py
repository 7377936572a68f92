"""Telework settings, read from the environment once (documented in the README's configuration table)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class TeleworkConfig:
    escalate_hours: int = 24  # undecided this many hours before the day starts: goes one level up
    remind_hours: int = 48  # pending this close to its day: the approver is reminded once
    workday_starts: time = time(8, 30)
    am_end: time = time(12, 0)  # a morning (AM) half day: workday_starts–am_end (iCalendar events)
    pm_start: time = time(13, 0)  # an afternoon (PM) half day: pm_start–workday_ends
    workday_ends: time = time(17, 15)
    # Year-end closure of the city office, as MM-DD (12/29–1/3 by default).
    city_closures: tuple[str, ...] = ("12-29", "12-30", "12-31", "01-01", "01-02", "01-03")
    clock_file: Path | None = None  # tests only: a file holding the current time (ISO); never in production

    @classmethod
    def from_env(cls, production: bool = False) -> TeleworkConfig:
        closures = tuple(
            part.strip()
            for part in _env("TELEWORK_CITY_CLOSURES", ",".join(cls.city_closures)).split(",")
            if part.strip()
        )
        hh, mm = _env("TELEWORK_WORKDAY_STARTS", "08:30").split(":")

        def _time(name: str, default: str) -> time:
            h, m = _env(name, default).split(":")
            return time(int(h), int(m))

        clock = os.environ.get("TELEWORK_CLOCK_FILE", "").strip()
        return cls(
            escalate_hours=int(_env("TELEWORK_ESCALATE_HOURS", "24")),
            remind_hours=int(_env("TELEWORK_REMIND_HOURS", "48")),
            workday_starts=time(int(hh), int(mm)),
            am_end=_time("TELEWORK_AM_END", "12:00"),
            pm_start=_time("TELEWORK_PM_START", "13:00"),
            workday_ends=_time("TELEWORK_WORKDAY_ENDS", "17:15"),
            city_closures=closures,
            clock_file=Path(clock) if clock and not production else None,
        )

    def now(self) -> datetime:
        """The current time (aware, UTC); a test may move it with the clock file."""
        if self.clock_file is not None and self.clock_file.exists():
            text = self.clock_file.read_text().strip()
            if text:
                moved = datetime.fromisoformat(text)
                return (moved if moved.tzinfo else moved.replace(tzinfo=TOKYO)).astimezone(UTC)
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().astimezone(TOKYO).date()

    def day_start(self, day: date) -> datetime:
        return datetime.combine(day, self.workday_starts, tzinfo=TOKYO).astimezone(UTC)

    def hours_before(self, day: date, hours: int) -> datetime:
        return self.day_start(day) - timedelta(hours=hours)
