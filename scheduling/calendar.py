"""The working calendar: weekends, national holidays, the city's year-end closure, custom closures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import holidays
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from scheduling.config import TeleworkConfig
from scheduling.models import Closure


@dataclass(frozen=True)
class DayOff:
    day: date
    kind: str  # weekend, holiday, city_closure, closure
    name: str
    name_en: str

    def label(self, locale: str) -> str:
        return self.name_en if locale == "en" and self.name_en else self.name


@lru_cache(maxsize=64)
def _national(year: int) -> tuple[dict[date, str], dict[date, str]]:
    ja = holidays.Japan(years=year, language="ja")
    en = holidays.Japan(years=year, language="en_US")
    return dict(ja.items()), dict(en.items())


class WorkingCalendar:
    """Which days are working days, and why a day is not; built for a span of days in one query."""

    def __init__(self, config: TeleworkConfig, closures: Iterable[Closure]) -> None:
        self._config = config
        self._closures = {c.day: c for c in closures}

    @classmethod
    async def load(cls, db: AsyncSession, config: TeleworkConfig, first: date, last: date) -> WorkingCalendar:
        rows = (
            await db.execute(select(Closure).where(col(Closure.day) >= first, col(Closure.day) <= last))
        ).scalars()
        return cls(config, list(rows))

    def day_off(self, day: date) -> DayOff | None:
        closure = self._closures.get(day)
        if closure is not None:
            return DayOff(day, "closure", closure.name, closure.name_en)
        ja, en = _national(day.year)
        if day in ja:
            return DayOff(day, "holiday", ja[day], en.get(day, ja[day]))
        if day.strftime("%m-%d") in self._config.city_closures:
            return DayOff(day, "city_closure", "年末年始休暇", "Year-end closure")
        if day.weekday() >= 5:
            return DayOff(
                day,
                "weekend",
                "土曜日" if day.weekday() == 5 else "日曜日",
                "Saturday" if day.weekday() == 5 else "Sunday",
            )
        return None

    def is_working(self, day: date) -> bool:
        return self.day_off(day) is None

    def working_days(self, first: date, last: date) -> list[date]:
        days = []
        day = first
        while day <= last:
            if self.is_working(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def next_working_day(self, after: date) -> date:
        day = after + timedelta(days=1)
        for _ in range(60):
            if self.is_working(day):
                return day
            day += timedelta(days=1)
        return day

    def previous_working_day(self, before: date) -> date:
        day = before - timedelta(days=1)
        for _ in range(60):
            if self.is_working(day):
                return day
            day -= timedelta(days=1)
        return day
