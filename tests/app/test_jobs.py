"""Background jobs keep running after a failure and stop cleanly."""

from __future__ import annotations

import asyncio
import logging

from app.jobs import Jobs


async def test_job_runs_repeatedly_survives_errors_and_stops(caplog):
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database restarting")

    jobs = Jobs()
    with caplog.at_level(logging.ERROR, logger="telework.jobs"):
        jobs.every("test", 0.01, job)
        for _ in range(100):
            if calls >= 3:
                break
            await asyncio.sleep(0.01)
        await jobs.stop()
    assert calls >= 3
    assert any("background job test failed" in r.getMessage() for r in caplog.records)
    seen = calls
    await asyncio.sleep(0.05)
    assert calls == seen  # stopped


async def test_interval_zero_schedules_nothing():
    jobs = Jobs()
    jobs.every("off", 0, lambda: asyncio.sleep(0))
    await jobs.stop()
    assert jobs._tasks == []
