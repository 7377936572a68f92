"""A movable clock for telework tests: the app's TeleworkConfig reads the time from a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from litestar import Litestar

from scheduling.config import TOKYO, TeleworkConfig


class Clock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, when: str) -> datetime:
        """Move the app's clock to a Tokyo wall time like '2027-03-01 09:00'."""
        moment = datetime.fromisoformat(when).replace(tzinfo=TOKYO)
        self.path.write_text(moment.isoformat())
        return moment


@pytest.fixture
def clock(app: Litestar, tmp_path: Path) -> Clock:
    path = tmp_path / "clock.txt"
    app.state.telework_config = TeleworkConfig(clock_file=path)
    c = Clock(path)
    c.set("2027-03-01 09:00")  # a Monday
    return c
