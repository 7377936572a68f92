"""The menu marks the page one is on: the most specific entry, never two."""

from __future__ import annotations

from app.web import NavItem, current_nav


def test_current_nav_is_the_longest_match():
    nav = [NavItem("/telework", "a"), NavItem("/telework/inbox", "b"), NavItem("/admin/users", "c")]
    assert current_nav("/telework/inbox", nav) == "/telework/inbox"
    assert current_nav("/telework/requests/3", nav) == "/telework"
    assert current_nav("/teleworkx", nav) is None
    assert current_nav("/admin/users/5", nav) == "/admin/users"
