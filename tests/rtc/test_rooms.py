"""Rooms and the signalling socket's rules: who may join, limits, refusals with a clear message, fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets

from tests.rtc.peers import serve


async def ws_join(base: str, room_id: str, cookie: str | None) -> Any:
    headers = {"Cookie": f"th_session={cookie}"} if cookie else {}
    ws = await websockets.connect(f"{base}/rooms/{room_id}/ws", additional_headers=headers)
    with contextlib.suppress(websockets.ConnectionClosed):  # a refused socket may already be closed
        await ws.send(json.dumps({"type": "join"}))
    return ws


async def next_of(ws: Any, kind: str, seconds: float = 20.0, **match: Any) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == kind and all(message.get(k) == v for k, v in match.items()):
                return message

    return await asyncio.wait_for(read(), seconds)


async def test_an_instant_room_has_a_page_and_is_open_to_everyone_signed_in(employee, make_client):
    r = await employee.post("/api/rooms", json={"title": "朝会"})
    assert r.status_code == 201
    room = r.json()
    assert room["url"] == f"/rooms/{room['id']}" and room["open"] and room["title"] == "朝会"
    other = await make_client("unit_head")
    assert (await other.get(f"/api/rooms/{room['id']}")).json()["created_by_name"] == room["created_by_name"]
    page = await other.get(room["url"])
    assert page.status_code == 200
    assert "参加する" in page.text and "/rtc/static/meeting.js" in page.text
    script = await other.get("/rtc/static/meeting.js")
    assert script.status_code == 200 and "RTCPeerConnection" in script.text
    assert (await other.get("/rtc/static/nothing.js")).status_code == 404


async def test_the_start_page_opens_a_room_and_sends_me_there(employee):
    r = await employee.post("/rooms", data={"_csrf_token": employee.headers["x-csrftoken"]})
    assert r.status_code == 303 and r.headers["location"].startswith("/rooms/")
    assert (await employee.get(r.headers["location"])).status_code == 200


async def test_an_invite_only_room_admits_the_creator_and_invitees(employee, make_client, db):
    from sqlalchemy import select

    from auth.models import User

    head = await make_client("unit_head")
    head_id = (await db.execute(select(User.id).where(User.employee_number == "100006"))).scalar_one()
    room = (await employee.post("/api/rooms", json={"open": False, "invitees": [head_id]})).json()
    assert (await head.get(f"/api/rooms/{room['id']}")).status_code == 200
    outsider = await make_client("hr_admin")
    r = await outsider.get(f"/api/rooms/{room['id']}")
    assert r.status_code == 403 and "招待" in r.json()["detail"]
    assert (await outsider.get(room["url"])).status_code == 403
    r = await employee.get("/api/rooms/NoSuchRoom00", headers={"accept-language": "en"})
    assert r.status_code == 404


async def test_bad_room_input_is_a_4xx(employee):
    assert (await employee.post("/api/rooms", json={"invitees": ["x"]})).status_code == 400
    assert (await employee.post("/api/rooms", json={"title": "x" * 101})).status_code == 400
    assert (await employee.post("/api/rooms", json={"nope": 1})).status_code == 400


async def test_the_socket_refuses_strangers_and_full_rooms_with_a_reason(app, make_client):
    owner, head, hr = [await make_client(r) for r in ("employee", "unit_head", "hr_admin")]
    closed = (await owner.post("/api/rooms", json={"open": False})).json()
    room = (await owner.post("/api/rooms", json={})).json()
    async with serve(app) as base:
        anon = await ws_join(base, room["id"], None)
        assert (await next_of(anon, "error"))["code"] == "sign_in"
        stranger = await ws_join(base, closed["id"], hr.cookies["th_session"])
        assert (await next_of(stranger, "error"))["code"] == "not_invited"
        missing = await ws_join(base, "NoSuchRoom00", hr.cookies["th_session"])
        assert (await next_of(missing, "error"))["code"] == "not_found"

        app.state.rtc.sfu.max_participants = 1
        first = await ws_join(base, room["id"], owner.cookies["th_session"])
        await next_of(first, "welcome")
        second = await ws_join(base, room["id"], head.cookies["th_session"])
        full = await next_of(second, "error")
        assert full["code"] == "room_full" and "上限" in full["message"]

        app.state.rtc.sfu.max_participants = 12
        app.state.rtc.sfu.max_streams = 3  # a second person needs 2 × 2 forwarded streams
        third = await ws_join(base, room["id"], hr.cookies["th_session"])
        refused = await next_of(third, "error")
        assert refused["code"] == "capacity" and "混み合って" in refused["message"]
        assert len(app.state.rtc.sfu.rooms[room["id"]].participants) == 1
        for ws in (anon, stranger, missing, first, second, third):
            await ws.close()


async def test_a_page_of_another_site_cannot_open_the_socket(app, make_client):
    owner = await make_client("employee")
    room = (await owner.post("/api/rooms", json={})).json()
    async with serve(app) as base:
        cookie = {"Cookie": f"th_session={owner.cookies['th_session']}"}
        evil = await websockets.connect(
            f"{base}/rooms/{room['id']}/ws", additional_headers=cookie, origin="http://evil.example"
        )
        refused = await next_of(evil, "error")
        assert refused["code"] == "origin"
        own = await websockets.connect(
            f"{base}/rooms/{room['id']}/ws",
            additional_headers=cookie,
            origin=base.replace("ws://", "http://"),
        )
        await own.send(json.dumps({"type": "join"}))
        await next_of(own, "welcome")
        await evil.close()
        await own.close()


async def test_chat_hand_and_mute_reach_everyone_in_the_room(app, make_client):
    owner, head = await make_client("employee"), await make_client("unit_head")
    room = (await owner.post("/api/rooms", json={})).json()
    async with serve(app) as base:
        a = await ws_join(base, room["id"], owner.cookies["th_session"])
        me_a = (await next_of(a, "welcome"))["you"]
        b = await ws_join(base, room["id"], head.cookies["th_session"])
        welcome_b = await next_of(b, "welcome")
        assert {p["id"] for p in welcome_b["participants"]} == {me_a, welcome_b["you"]}
        joined = await next_of(a, "joined")
        assert joined["participant"]["id"] == me_a  # everyone hears of each arrival, their own too
        joined = await next_of(a, "joined")
        assert joined["participant"]["id"] == welcome_b["you"] and joined["participant"]["name"]

        await a.send(json.dumps({"type": "chat", "text": "  こんにちは  "}))
        chat = await next_of(b, "chat")
        assert chat["text"] == "こんにちは" and chat["from"] == me_a and chat["name"]
        await b.send(json.dumps({"type": "state", "hand": True, "muted": True, "ignored": 1}))
        state = await next_of(a, "state", participant=welcome_b["you"])
        assert state == {"type": "state", "participant": welcome_b["you"], "hand": True, "muted": True}
        await b.send(json.dumps({"type": "ping"}))
        assert (await next_of(b, "pong"))["type"] == "pong"
        await b.send("not json")
        await b.send(json.dumps({"type": "leave"}))
        left = await next_of(a, "left", participant=welcome_b["you"])
        assert left["participant"] == welcome_b["you"]
        await a.close()
        await b.close()
    for _ in range(100):
        if not app.state.rtc.sfu.rooms:
            break
        await asyncio.sleep(0.1)
    assert not app.state.rtc.sfu.rooms and not app.state.rtc.rosters


def test_ice_servers_come_from_the_setting():
    import pytest

    from app.settings import SettingsError
    from rtc.signalling import ice_servers

    assert ice_servers("") == []
    turn = '[{"urls": "turn:turn.city.example:3478", "username": "u", "credential": "c", "x": 1}]'
    assert ice_servers(turn) == [{"urls": "turn:turn.city.example:3478", "username": "u", "credential": "c"}]
    for bad in ("nope", '{"urls": "x"}', '[{"username": "u"}]', "[1]"):
        with pytest.raises(SettingsError):
            ice_servers(bad)
