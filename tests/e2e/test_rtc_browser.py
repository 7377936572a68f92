"""Two headless Chromium pages meet through the real server and SFU; each decodes the other's video; then
the host locks the meeting and removes the other through the page's host controls; last, a guest opens a
scheduled meeting's signed link, gives a name, waits in the lobby and is admitted by the organizer.

Per the shared recipe the whole meeting (server, browser, ICE) runs in its own network namespace (only `lo`),
so no packet can leave loopback: this module re-runs itself there (`python -m tests.e2e.test_rtc_browser`) and
the test reads the JSON it writes. Join time: navigation → first decoded remote frame, by the page's clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from app import signing
from app.i18n import translate
from tests.conftest import DEMO_PASSWORD, LOGIN_BY_ROLE
from tests.live_server import ROOT, live_server

CHROMIUM = "/usr/bin/chromium"
SECRET_KEY = "e2e-" + uuid.uuid4().hex  # to sign a guest's link as the invitation mail would
VISITOR = "visitor@partner.example"
RECIPE_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
NAMESPACE = (
    'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" -m tests.e2e.test_rtc_browser "$1"'
)

STATS_JS = """async () => {
  const s = window.__rtc;
  if (!s || !s.pc) return null;
  const out = {video: [], audio: []};
  (await s.pc.getStats()).forEach((r) => {
    if (r.type !== 'inbound-rtp') return;
    if (r.kind === 'video') out.video.push({frames: r.framesDecoded || 0, width: r.frameWidth || 0,
                                            lost: r.packetsLost || 0, packets: r.packetsReceived || 0});
    if (r.kind === 'audio') out.audio.push({packets: r.packetsReceived || 0});
  });
  out.firstFrameAt = s.firstFrameAt;
  out.joinStarted = s.joinStarted;
  out.roster = s.roster.size;
  return out;
}"""


def t(key: str) -> str:
    return translate("ja", key)


async def sign_in(page: Any, login: str) -> None:
    await page.goto("/login")
    await page.get_by_label(t("auth.login_id"), exact=True).fill(login)
    await page.get_by_label(t("auth.password"), exact=True).fill(DEMO_PASSWORD)
    async with page.expect_navigation():
        await page.get_by_role("button", name=t("auth.login"), exact=True).click()
    assert urlsplit(page.url).path == "/"


def best_video(stats: dict[str, Any] | None) -> dict[str, Any]:
    videos = (stats or {}).get("video") or [{"frames": 0, "width": 0, "lost": 0, "packets": 0}]
    return max(videos, key=lambda v: v["frames"])


async def meeting() -> dict[str, Any]:
    """Inside the namespace: server, two signed-in pages, one room; record what each page decodes."""
    from playwright.async_api import async_playwright

    result: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        live_server(Path(tmp), extra_env={"SECRET_KEY": SECRET_KEY}) as server,
    ):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=RECIPE_ARGS)
            pages = []
            console: list[str] = []
            for role in ("employee", "unit_head"):
                context = await browser.new_context(base_url=server.url, locale="ja-JP")
                context.set_default_timeout(30_000)
                page = await context.new_page()
                page.on("console", lambda m, r=role: console.append(f"{r} {m.type}: {m.text}"))
                page.on("pageerror", lambda e, r=role: console.append(f"{r} error: {e}"))
                await sign_in(page, LOGIN_BY_ROLE[role])
                pages.append(page)
            host, guest = pages
            await host.goto("/rooms")
            async with host.expect_navigation():
                await host.get_by_role("button", name=t("rtc.start.button")).click()
            room_path = urlsplit(host.url).path
            join = t("rtc.prejoin.join")
            await host.get_by_role("button", name=join).click()
            started = time.monotonic()
            await guest.goto(room_path)
            await guest.get_by_role("button", name=join).click()
            samples: dict[str, list[int]] = {"host": [], "guest": []}
            deadline = time.monotonic() + 60
            stats: dict[str, Any] = {}
            while time.monotonic() < deadline:
                for name, page in (("host", host), ("guest", guest)):
                    stats[name] = await page.evaluate(STATS_JS)
                    samples[name].append(best_video(stats[name])["frames"])
                if all(len(s) > 3 and s[-1] >= 60 and s[-1] > s[-4] for s in samples.values()):
                    break
                await asyncio.sleep(0.5)
            from axe_playwright_python.async_playwright import Axe

            axe = await Axe().run(guest)  # the page in a meeting: tiles, toolbar, panels
            await guest.get_by_role("button", name=t("rtc.js.chat")).click()
            await guest.get_by_label(t("rtc.js.message")).fill("こんにちは")
            await guest.keyboard.press("Enter")  # the chat form, by keyboard
            await host.get_by_role("button", name=t("rtc.js.chat")).first.click()
            chat_seen = await host.locator("#chat-log li").filter(has_text="こんにちは").count()
            # Mute by keyboard (Alt+M) on one page; the other page's participant list says so.
            await guest.locator("#btn-mute").focus()
            await guest.keyboard.press("Alt+m")
            await host.get_by_role("button", name=t("rtc.js.participants"), exact=False).click()
            muted = host.locator("#people-list li").filter(has_text=t("rtc.js.muted"))
            await muted.first.wait_for(timeout=15_000)
            muted_seen = await muted.count()
            # A network blip: the socket drops; the page reconnects by itself and decodes again.
            await guest.evaluate("() => window.__rtc.ws.close()")
            await asyncio.sleep(0.5)
            reconnected: list[int] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reconnected.append(best_video(await guest.evaluate(STATS_JS))["frames"])
                if reconnected[-1] >= 30:
                    break
                await asyncio.sleep(0.5)
            # Host controls: the creator hosts. Lock (the guest hears of it), then remove the guest.
            await host.get_by_role("heading", name=t("rtc.js.host_controls")).wait_for()
            host_axe = await Axe().run(host)  # the host's page: lobby panel, lock, end, per-person buttons
            await host.get_by_role("button", name=t("rtc.js.lock")).click()
            lock_told = guest.locator("#rtc-status").filter(has_text=t("rtc.js.locked_on"))
            await lock_told.wait_for(timeout=15_000)
            host.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await host.locator("#people-list button.danger").first.click()  # "remove …", confirmed
            removed = guest.locator("#ended-text").filter(has_text=t("rtc.js.removed"))
            await removed.wait_for(timeout=15_000)
            # A guest from outside: the invitation's signed link → a name → the lobby; the organizer admits.
            csrf = next(c["value"] for c in await host.context.cookies() if c["name"] == "csrftoken")
            start = datetime.now(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None, microsecond=0) + timedelta(
                minutes=10
            )
            scheduled = await host.request.post(
                "/api/meetings",
                data={
                    "title": "来訪者との打合せ",
                    "start": start.isoformat(),
                    "end": (start + timedelta(hours=1)).isoformat(),
                    "emails": [VISITOR],
                },
                headers={"x-csrftoken": csrf},
            )
            assert scheduled.status == 201, await scheduled.text()
            created = await scheduled.json()
            claims = {"r": created["room_id"], "e": VISITOR, "n": "来訪 花子", "m": created["id"]}
            token = signing.sign(SECRET_KEY, "rtc.guest", claims, expires_at=time.time() + 3600)
            visitor_context = await browser.new_context(base_url=server.url, locale="ja-JP")
            visitor_context.set_default_timeout(30_000)
            visitor = await visitor_context.new_page()
            visitor.on("pageerror", lambda e: console.append(f"visitor error: {e}"))
            await visitor.goto(f"/rooms/{created['room_id']}/guest?t={token}")
            await visitor.get_by_label(t("rtc.guest.name")).fill("Hanako Visitor")
            async with visitor.expect_navigation():
                await visitor.get_by_role("button", name=t("rtc.guest.continue")).click()
            await visitor.get_by_role("button", name=join).click()
            await visitor.get_by_role("heading", name=t("rtc.js.lobby")).wait_for()
            lobby_axe = await Axe().run(visitor)  # the waiting screen
            await host.goto(f"/rooms/{created['room_id']}")
            await host.get_by_role("button", name=join).click()
            waiting = host.locator("#waiting-list li").filter(has_text="Hanako Visitor")
            await waiting.get_by_role("button", name=t("rtc.js.admit")).click()
            visitor_frames: list[int] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                visitor_frames.append(best_video(await visitor.evaluate(STATS_JS))["frames"])
                if visitor_frames[-1] >= 30:
                    break
                await asyncio.sleep(0.5)
            result = {
                "visitor_frames": visitor_frames,
                "visitor_in_call": await visitor.locator("#call").is_visible(),
                "removed_seen": await removed.count(),
                "rejoin_offered_after_removal": await guest.locator("#rejoin").is_visible(),
                "host_roster_after_removal": await host.evaluate("() => window.__rtc.roster.size"),
                "axe": [
                    {"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:160] for n in v["nodes"][:3]]}
                    for report in (axe, host_axe, lobby_axe)
                    for v in report.response["violations"]
                    if v.get("impact") in ("serious", "critical")
                ],
                "chat_seen": chat_seen,
                "muted_seen": muted_seen,
                "reconnected_frames": reconnected,
                "frames": samples,
                "stats": stats,
                "wall_seconds_to_both_decoding": time.monotonic() - started,
                "guest_join_ms": stats["guest"] and stats["guest"]["firstFrameAt"],
                "guest_click_to_frame_ms": stats["guest"]
                and stats["guest"]["firstFrameAt"]
                and stats["guest"]["firstFrameAt"] - stats["guest"]["joinStarted"],
                "guest_tiles": await guest.locator("#tiles li").count(),
                "server_log": server.log_tail(2000),
                "console": console[-40:],
            }
            await browser.close()
    return result


def test_two_browsers_decode_each_other(tmp_path: Path, results_dir: Path) -> None:
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} not found: `apt-get install -y chromium`"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        pytest.fail("the WebRTC browser test needs `unshare` and `ip` (util-linux, iproute2)")
    out = tmp_path / "meeting.json"
    proc = subprocess.run(
        [unshare, "--net", "sh", "-c", NAMESPACE, sys.executable, str(out)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        capture_output=True,
        text=True,
        timeout=240,
    )
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr and not os.environ.get("CI"):
        pytest.skip("no permission for a network namespace here (CI runs as root)")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (results_dir / "rtc-browser.json").write_text(json.dumps(result, indent=1))
    for name in ("host", "guest"):
        frames = result["frames"][name]
        video = best_video(result["stats"][name])
        assert frames[-1] >= 60 and frames[-1] > frames[-4], f"{name} is not decoding: {frames}\n{result}"
        assert video["width"] > 0 and video["lost"] <= max(5, video["packets"] // 50), video
        assert any(a["packets"] > 0 for a in result["stats"][name]["audio"]), f"{name} got no audio"
    assert result["guest_tiles"] >= 2  # the host's tile and their own
    assert result["axe"] == [], result["axe"]
    assert result["chat_seen"] == 1
    assert result["muted_seen"] == 1
    assert result["reconnected_frames"][-1] >= 30, (
        f"no video after reconnecting: {result['reconnected_frames']}"
    )
    assert result["guest_join_ms"] is not None
    assert result["removed_seen"] == 1 and result["rejoin_offered_after_removal"] is False
    assert result["visitor_in_call"] and result["visitor_frames"][-1] >= 30, result["visitor_frames"]
    print(
        f"\nbrowser meeting: guest join (navigation → first remote frame) {result['guest_join_ms']:.0f} ms, "
        f"click → frame {result['guest_click_to_frame_ms']:.0f} ms"
    )


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(asyncio.run(meeting())))
