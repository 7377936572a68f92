"""A person sees their own sign-in sessions and ends one or all the others (ASVS 7.5.2)."""

from __future__ import annotations

import re

from tests.conftest import DEMO_PASSWORD, LOGIN_BY_ROLE


async def _sign_in(make_client, role: str, agent: str):
    client = await make_client()
    client.headers["user-agent"] = agent
    response = await client.post("/login", data={"login": LOGIN_BY_ROLE[role], "password": DEMO_PASSWORD})
    assert response.status_code == 303, response.text
    return client


def _handles(html: str) -> list[str]:
    return re.findall(r'name="handle" value="([0-9a-f]{20})"', html)


async def test_list_end_one_and_end_others(make_client) -> None:
    laptop = await _sign_in(make_client, "employee", "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0 Safari/537")
    phone = await _sign_in(make_client, "employee", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Safari/604.1")
    tablet = await _sign_in(make_client, "employee", "Mozilla/5.0 (Linux; Android 15) Firefox/131.0")
    stranger = await _sign_in(make_client, "unit_head", "curl/8.0")

    page = await laptop.get("/account/sessions")
    assert page.status_code == 200
    for label in ("Chrome / Windows", "Safari / iPhone", "Firefox / Android"):
        assert label in page.text
    assert "curl" not in page.text  # only this person's sessions
    handles = _handles(page.text)
    assert len(handles) == 3 and len(set(handles)) == 3
    # The newest (the tablet) is listed first; the page marks the laptop as "this device".
    assert page.text.index("Firefox / Android") < page.text.index("Chrome / Windows")

    # Another person's handle is refused and ends nothing.
    other = _handles((await stranger.get("/account/sessions")).text)[0]
    refused = await laptop.post("/account/sessions/end", data={"handle": other})
    assert refused.status_code == 404 and "見つかりません" in refused.text
    assert (await stranger.get("/account/sessions")).status_code == 200

    tablet_handle = handles[0]
    ended = await laptop.post("/account/sessions/end", data={"handle": tablet_handle})
    assert ended.status_code == 303 and ended.headers["location"] == "/account/sessions?ended=one"
    assert (await tablet.get("/account/sessions")).status_code == 303  # signed out: sent to sign in
    assert (await phone.get("/account/sessions")).status_code == 200

    others = await laptop.post("/account/sessions/end", data={"handle": "others"})
    assert others.headers["location"] == "/account/sessions?ended=others"
    assert (await phone.get("/account/sessions")).status_code == 303
    remaining = await laptop.get("/account/sessions?ended=others")
    assert len(_handles(remaining.text)) == 1 and "ほかの端末をすべてサインアウトさせました" in remaining.text

    # Ending this very session signs this browser out.
    mine = _handles(remaining.text)[0]
    bye = await laptop.post("/account/sessions/end", data={"handle": mine})
    assert bye.status_code == 303 and bye.headers["location"] == "/login"
    assert (await laptop.get("/account/sessions")).status_code == 303
