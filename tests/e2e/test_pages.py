"""Every page each role can reach from the main menu: status, language, heading, console, accessibility (axe).

Pages are discovered, not listed: sign in through the real form as each demo role, read the links of the
main-menu landmark and visit each. A new NavItem is covered the moment it appears in the menu.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import BrowserContext, ConsoleMessage, Page

from app.i18n import translate
from tests.conftest import DEMO_PASSWORD, LOGIN_BY_ROLE
from tests.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

BLOCKING_IMPACTS = {"serious", "critical"}
PHONE = {"width": 390, "height": 844}
# The break-glass sysadmin, used only by the English pass so switching its language affects no other test.
ENGLISH_LOGIN = "admin"
axe = Axe()


def t(key: str, lang: str = "ja") -> str:
    return translate(lang, key)


class PageWatch:
    """Console errors and uncaught exceptions of one page, collected between visits."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text} ({msg.location.get('url', '')})")

    def take(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"      at {' '.join(map(str, node['target']))}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " / ")
            if summary:
                lines.append(f"         {summary[:300]}")
        if len(v["nodes"]) > 5:
            lines.append(f"      ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


async def check_page(page: Page, watch: PageWatch, path: str, *, lang: str = "ja") -> list[str]:
    """Visit path and return what is wrong with it (empty when all is well)."""
    problems: list[str] = []
    response = await page.goto(path)
    await page.wait_for_load_state("load")
    if response is None or response.status >= 400:
        problems.append(f"HTTP {response.status if response else 'no response'}")
    elif not response.headers.get("content-type", "").startswith("text/html"):
        problems.append(f"served as {response.headers.get('content-type')!r}, not text/html")
    html_lang = await page.locator("html").get_attribute("lang")
    if html_lang != lang:
        problems.append(f'<html lang="{html_lang}">, expected "{lang}"')
    if await page.locator("h1").count() == 0:
        problems.append("no <h1>")
    problems.extend(watch.take())
    results = await axe.run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    if blocking:
        problems.append("axe:\n" + describe_violations(blocking))
    return [f"{path}: {p}" for p in problems]


async def sign_in(page: Page, login: str) -> None:
    """Through the real form: type into the labelled fields and press the button."""
    await page.goto("/login")
    await page.get_by_label(t("auth.login_id"), exact=True).fill(login)
    await page.get_by_label(t("auth.password"), exact=True).fill(DEMO_PASSWORD)
    async with page.expect_navigation():
        await page.get_by_role("button", name=t("auth.login"), exact=True).click()
    assert urlsplit(page.url).path == "/", f"sign-in as {login} did not land on the home page but {page.url}"


async def menu_paths(page: Page, lang: str = "ja") -> list[str]:
    """Same-origin paths of the main-menu landmark, in menu order, home first."""
    nav = page.get_by_role("navigation", name=t("a11y.main_nav", lang), exact=True)
    await nav.wait_for()
    hrefs = await nav.get_by_role("link").evaluate_all("links => links.map(a => a.href)")
    origin = urlsplit(page.url)
    paths = ["/"]
    for href in hrefs:
        parts = urlsplit(href)
        if (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc):
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path not in paths:
                paths.append(path)
    return paths


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 = no horizontal scroll)."""
    return await page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


async def check_skip_link(page: Page) -> list[str]:
    """First Tab lands on the skip link; following it puts focus on <main>."""
    problems: list[str] = []
    await page.keyboard.press("Tab")
    first = await page.evaluate(
        "(() => { const e = document.activeElement;"
        " return [e.tagName, e.className, e.getAttribute('href')]; })()"
    )
    if first != ["A", "skip-link", "#main"]:
        problems.append(f"first focusable element is {first}, expected the skip link to #main")
        return problems
    await page.keyboard.press("Enter")
    focused = await page.evaluate("document.activeElement.tagName + '#' + document.activeElement.id")
    if focused != "MAIN#main":
        problems.append(f"after the skip link, focus is on {focused}, expected MAIN#main")
    return problems


def report(title: str, problems: list[str]) -> str:
    return f"{title}: {len(problems)} problem(s)\n" + "\n".join(problems)


ContextFactory = Callable[..., Any]


@pytest.mark.parametrize("role", list(LOGIN_BY_ROLE))
async def test_menu_pages_for_role(role: str, new_context: ContextFactory, results_dir: Path) -> None:
    context: BrowserContext = await new_context()
    page = await context.new_page()
    watch = PageWatch(page)
    await sign_in(page, LOGIN_BY_ROLE[role])
    await page.screenshot(path=str(results_dir / f"home-{role}.png"), full_page=True)
    paths = await menu_paths(page)
    problems: list[str] = list(watch.take())
    for path in paths:
        problems += await check_page(page, watch, path)

    # The same pages on a phone, with this role's session: nothing may scroll sideways.
    phone = await new_context(viewport=PHONE, storage_state=await context.storage_state(), has_touch=True)
    phone_page = await phone.new_page()
    for path in paths:
        await phone_page.goto(path)
        overflow = await horizontal_overflow(phone_page)
        if overflow > 0:
            problems.append(f"{path}: scrolls sideways by {overflow}px at {PHONE['width']}px wide")
    await phone_page.goto("/")
    await phone_page.screenshot(path=str(results_dir / f"home-{role}-phone.png"), full_page=True)

    # Keyboard: the skip link comes first and moves focus into the content.
    await page.goto("/")
    problems += [f"/ (keyboard): {p}" for p in await check_skip_link(page)]
    assert not problems, report(f"{role} ({len(paths)} pages: {', '.join(paths)})", problems)


async def test_login_page_signed_out(new_context: ContextFactory) -> None:
    context = await new_context()
    page = await context.new_page()
    watch = PageWatch(page)
    problems = await check_page(page, watch, "/login")
    if await page.get_by_role("navigation", name=t("a11y.main_nav"), exact=True).count():
        problems.append("/login: the main menu is shown to a signed-out visitor")
    await page.goto("/login")
    problems += [f"/login (keyboard): {p}" for p in await check_skip_link(page)]

    phone = await new_context(viewport=PHONE, has_touch=True)
    phone_page = await phone.new_page()
    await phone_page.goto("/login")
    overflow = await horizontal_overflow(phone_page)
    if overflow > 0:
        problems.append(f"/login: scrolls sideways by {overflow}px at {PHONE['width']}px wide")
    assert not problems, report("signed out", problems)


async def test_english_via_header_button(new_context: ContextFactory) -> None:
    """The header's language button switches the whole UI to English, signed out and signed in."""
    context = await new_context()
    page = await context.new_page()
    watch = PageWatch(page)
    await page.goto("/login")
    async with page.expect_navigation():
        await page.get_by_role("button", name="English", exact=True).click()
    assert urlsplit(page.url).path == "/login"
    problems = await check_page(page, watch, "/login", lang="en")
    assert await page.get_by_role("heading", level=1).inner_text() == t("auth.login_title", "en")

    await page.get_by_label(t("auth.login_id", "en"), exact=True).fill(ENGLISH_LOGIN)
    await page.get_by_label(t("auth.password", "en"), exact=True).fill(DEMO_PASSWORD)
    async with page.expect_navigation():
        await page.get_by_role("button", name=t("auth.login", "en"), exact=True).click()
    # Signing in applies the person's saved language (Japanese); switch again, as a signed-in person.
    if await page.locator("html").get_attribute("lang") != "en":
        async with page.expect_navigation():
            await page.get_by_role("button", name="English", exact=True).click()
    try:
        for path in await menu_paths(page, "en"):
            problems += await check_page(page, watch, path, lang="en")
    finally:  # put the account back to Japanese
        await page.goto("/")
        async with page.expect_navigation():
            await page.get_by_role("button", name="日本語", exact=True).click()
    assert await page.locator("html").get_attribute("lang") == "ja"
    assert not problems, report("English", problems)


async def test_server_log_has_no_tracebacks(chromium: Path, server: LiveServer) -> None:
    """Runs after the page tests (file order): none of the visits above may have logged a server error."""
    assert "Traceback" not in server.log.read_text(encoding="utf-8", errors="replace"), server.log_tail()
