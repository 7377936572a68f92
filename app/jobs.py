"""Periodic background jobs inside the server process (every worker runs them; jobs must be idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("telework.jobs")


class Jobs:
    """Runs each registered coroutine every `interval` seconds until stopped; failures are only logged."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def every(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        if interval <= 0:
            return
        self._tasks.append(asyncio.create_task(self._loop(name, interval, job), name=f"job:{name}"))

    async def _loop(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background job %s failed; it runs again in %s s", name, interval)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
