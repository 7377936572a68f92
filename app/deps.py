"""Named dependencies every controller may ask for (provided in app.main)."""

from __future__ import annotations

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings
from app.stores import Counter

DB = NamedDependency[AsyncSession]
SettingsDep = NamedDependency[Settings]
CounterDep = NamedDependency[Counter]
