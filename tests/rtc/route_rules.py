"""Role rules for `rtc` routes, merged into tests/test_route_roles.py's TABLE."""

from __future__ import annotations

from typing import Any

from tests.route_rule import PUBLIC, SIGNED_IN, Rule, page
from tests.rtc.usage_route_rules import RULES as USAGE_RULES

RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/rooms"): Rule(SIGNED_IN, ok=201, body={}),
    # Rooms live in the store, not the database, so the sample id names no room: signed-in people get past the
    # guard to 'not found' (tests/rtc/test_rooms.py covers open and invite-only rooms).
    ("GET", "/api/rooms/{room_id:str}"): Rule(SIGNED_IN, ok=404),
    ("GET", "/rooms"): page(*SIGNED_IN),
    ("POST", "/rooms"): Rule(SIGNED_IN, ok=303, form={}),
    ("GET", "/rooms/{room_id:str}"): page(*SIGNED_IN, ok=404),
    ("GET", "/rtc/static/{name:str}"): Rule(PUBLIC),
    # Guests have no account: the signed link is the authority (tests/rtc/test_guests.py). Without a link
    # the page is a 400, without the guest cookie the meeting page a 403, for everyone.
    ("GET", "/rooms/{room_id:str}/guest"): Rule(PUBLIC, ok=400),
    ("POST", "/rooms/{room_id:str}/guest"): Rule(PUBLIC, ok=400, form={}),
    ("GET", "/rooms/{room_id:str}/guest/meeting"): Rule(PUBLIC, ok=403),
    **USAGE_RULES,
}


async def samples(db: Any) -> dict[str, str]:
    """Values for this package's path placeholders (e.g. '{loan_id:int}': '3'), made in the test database."""
    return {"{room_id:str}": "NoSuchRoom00", "{name:str}": "meeting.js"}
