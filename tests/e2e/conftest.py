"""Browser tier: the real server in a subprocess, driven by the system's headless Chromium.

Fixtures here run on pytest-asyncio's session loop (the browser outlives single tests); the test modules
mark themselves ``pytest.mark.asyncio(loop_scope="session")`` to share it. The rest of the suite keeps its
function-scoped loops.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.live_server import ROOT, LiveServer, live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULTS_DIR = ROOT / "test-results"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def chromium() -> Path:
    """The apt-installed Chromium; never a downloaded one. Missing: skip locally, fail on CI."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"{CHROMIUM} not found: `apt-get install -y chromium` (never `playwright install`)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`python -m app serve` on a free loopback port, SQLite in a temp dir, demo organisation seeded."""
    with live_server(tmp_path_factory.mktemp("e2e")) as srv:
        yield srv


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(browser: Browser, server: LiveServer) -> AsyncIterator:
    """Factory for isolated browser contexts (own cookies) against the live server, Japanese by default."""
    contexts: list[BrowserContext] = []

    async def _make(**options: object) -> BrowserContext:
        options.setdefault("locale", "ja-JP")
        ctx = await browser.new_context(base_url=server.url, **options)  # type: ignore[arg-type]
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return ctx

    yield _make
    for ctx in contexts:
        await ctx.close()


@pytest.fixture(scope="package")
def results_dir() -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    return RESULTS_DIR
