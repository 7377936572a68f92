"""Guests from outside: a signed, expiring link → a name → a short-lived guest cookie → always the lobby."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import websockets
from sqlalchemy import delete, select, update

from app import signing
from rtc.models import RoomAttendance
from scheduling.models import Meeting, MeetingAttendee
from tests.rtc.peers import ClientPeer, scheduled_meeting, serve
from tests.rtc.test_meeting import wait_until
from tests.rtc.test_rooms import next_of

EMPLOYEE = "100012"
VISITOR = "visitor@partner.example"


def link_token(app: Any, meeting: Any, **change: Any) -> str:
    """A guest link's token as scheduling's invitations make it (one day after the meeting by default)."""
    claims = {"r": meeting.room_id, "e": VISITOR, "n": "来訪 花子", "m": meeting.id}
    claims.update({k: v for k, v in change.items() if k in claims})
    return signing.sign(
        change.get("secret", app.state.settings.secret_key),
        change.get("purpose", "rtc.guest"),
        claims,
        expires_at=time.time() + change.get("expires_in", 86400),
    )


async def guest_socket(base: str, room_id: str, cookie: str) -> Any:
    ws = await websockets.connect(
        f"{base}/rooms/{room_id}/ws", additional_headers={"Cookie": f"th_guest={cookie}"}
    )
    await ws.send(json.dumps({"type": "join"}))
    return ws


async def enter_as_guest(client: Any, meeting: Any, token: str, name: str = "") -> str:
    r = await client.post(f"/rooms/{meeting.room_id}/guest", data={"t": token, "name": name})
    assert r.status_code == 303, r.text
    return str(client.cookies.get("th_guest"))


async def test_a_guest_link_leads_to_a_name_then_the_lobby_then_the_meeting(app, make_client, db):
    meeting = await scheduled_meeting(
        db, EMPLOYEE, guests=(VISITOR,)
    )  # no lobby for staff: guests still wait
    room_id = meeting.room_id
    guest = await make_client()
    token = link_token(app, meeting)
    page = await guest.get(f"/rooms/{room_id}/guest", params={"t": token})
    assert page.status_code == 200
    assert "定例会議" in page.text and 'value="来訪 花子"' in page.text and 'for="guest-name"' in page.text

    r = await guest.post(f"/rooms/{room_id}/guest", data={"t": token, "name": "  Hanako   Visitor "})
    assert r.status_code == 303 and r.headers["location"] == f"/rooms/{room_id}/guest/meeting"
    set_cookie = r.headers["set-cookie"].lower()
    assert set_cookie.startswith("th_guest=") and "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert (
        f"path=/rooms/{room_id}".lower() in set_cookie and "secure" not in set_cookie
    )  # base_url is http here
    assert "max-age=14400" in set_cookie
    cookie = str(guest.cookies.get("th_guest"))
    page = await guest.get(f"/rooms/{room_id}/guest/meeting")
    assert (
        page.status_code == 200
        and "/rtc/static/meeting.js" in page.text
        and f'data-room="{room_id}"' in page.text
    )

    organizer = await make_client("employee")
    async with serve(app) as base:
        host = ClientPeer(base, room_id, str(organizer.cookies["th_session"]))
        visitor = ClientPeer(base, room_id, cookie, shade=200, cookie_name="th_guest")
        try:
            await host.join()
            await asyncio.wait_for(host.welcome.wait(), 30)
            await visitor.join()
            waiting_id = (await visitor.event("lobby"))["you"]
            listed = await host.event("lobby-list")
            assert listed["waiting"][0] | {"since": ""} == {
                "id": waiting_id,
                "name": "Hanako Visitor",
                "guest": True,
                "since": "",
            }
            assert not visitor.welcome.is_set()

            await host.send({"type": "admit", "id": waiting_id})
            await asyncio.wait_for(visitor.welcome.wait(), 30)
            me = next(p for p in (await visitor.event("welcome"))["participants"] if p["id"] == visitor.me)
            assert me["guest"] is True and me["user"] is None and me["name"] == "Hanako Visitor"
            assert me["host"] is False
            await wait_until(
                lambda: host.received(visitor.me, "video") >= 5 and visitor.received(host.me, "video") >= 5,
                "the guest and the host to see each other",
            )
        finally:
            await host.close()
            await visitor.close()
    # The guest's stay counts for the meeting (usage figures), as a guest without a user.
    await db.rollback()
    stays = (
        (await db.execute(select(RoomAttendance).where(RoomAttendance.room_id == room_id))).scalars().all()
    )
    assert sorted((s.guest, s.user_id is None, s.meeting_id) for s in stays) == [
        (False, False, meeting.id),
        (True, True, meeting.id),
    ]


async def test_bad_guest_links_get_a_clear_page_never_a_500(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, guests=(VISITOR,))
    other = await scheduled_meeting(db, EMPLOYEE, guests=(VISITOR,))
    room_id = meeting.room_id
    guest = await make_client()

    async def page(token: str, lang: str = "ja") -> Any:
        return await guest.get(
            f"/rooms/{room_id}/guest", params={"t": token}, headers={"accept-language": lang}
        )

    expired = link_token(app, meeting, expires_in=-60)
    r = await page(expired)
    assert r.status_code == 410 and "有効期限" in r.text
    r = await page(expired, "en")
    assert r.status_code == 410 and "expired" in r.text
    valid = link_token(app, meeting)
    for forged in (
        valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB"),  # altered signature
        link_token(app, meeting, secret="someone-elses-secret"),
        link_token(app, meeting, purpose="rtc.guest-session"),  # a cookie's value is not a link
        link_token(app, other),  # another meeting's link, on this room
        "nonsense",
    ):
        r = await page(forged)
        assert r.status_code == 400 and "無効" in r.text, forged
    r = await guest.post(f"/rooms/{room_id}/guest", data={"t": expired, "name": "x"})
    assert r.status_code == 410 and "th_guest" not in r.headers.get("set-cookie", "")
    r = await guest.get(f"/rooms/{room_id}/guest/meeting")  # no guest cookie
    assert r.status_code == 403 and "招待メール" in r.text

    # The organizer takes the address off the meeting: the same link stops working.
    await db.execute(delete(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting.id))
    await db.commit()
    r = await page(valid)
    assert r.status_code == 403 and "主催者" in r.text
    await db.execute(update(Meeting).where(Meeting.id == other.id).values(status="cancelled"))
    await db.commit()
    r = await guest.get(f"/rooms/{other.room_id}/guest", params={"t": link_token(app, other)})
    assert r.status_code == 410 and "中止" in r.text


async def test_the_guest_cookie_opens_only_its_room_and_only_while_invited(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, guests=(VISITOR,))
    other = await scheduled_meeting(db, EMPLOYEE, guests=(VISITOR,))
    guest = await make_client()
    cookie = await enter_as_guest(guest, meeting, link_token(app, meeting))
    async with serve(app) as base:
        ws = await guest_socket(base, meeting.room_id, cookie)
        assert (await next_of(ws, "lobby"))["you"]
        await ws.close()
        ws = await guest_socket(base, other.room_id, cookie)  # another room: no one is signed in there
        assert (await next_of(ws, "error"))["code"] == "sign_in"
        await ws.close()
        ws = await guest_socket(base, meeting.room_id, cookie[:-2] + "xx")
        assert (await next_of(ws, "error"))["code"] == "sign_in"
        await ws.close()

        await db.execute(delete(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting.id))
        await db.commit()
        ws = await guest_socket(base, meeting.room_id, cookie)
        refused = await next_of(ws, "error")
        assert refused["code"] == "guest_removed" and "主催者" in refused["message"]
        await ws.close()


async def test_the_guest_cookie_is_secure_on_an_https_site(app, make_client, db):
    meeting = await scheduled_meeting(db, EMPLOYEE, guests=(VISITOR,))
    app.state.settings = dataclasses.replace(app.state.settings, base_url="https://telework.city.example")
    guest = await make_client()
    r = await guest.post(f"/rooms/{meeting.room_id}/guest", data={"t": link_token(app, meeting), "name": ""})
    assert r.status_code == 303
    set_cookie = r.headers["set-cookie"].lower()
    assert "; secure" in set_cookie and "httponly" in set_cookie
    token = r.headers["set-cookie"].split(";")[0].removeprefix("th_guest=")
    claims = signing.verify(app.state.settings.secret_key, "rtc.guest-session", token)
    assert claims["n"] == "来訪 花子"  # no name given: the one in the link
