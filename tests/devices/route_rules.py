"""Role rules for `devices` routes, merged into tests/test_route_roles.py's TABLE."""

from __future__ import annotations

from typing import Any

from tests.route_rule import Rule

RULES: dict[tuple[str, str], Rule] = {}


async def samples(db: Any) -> dict[str, str]:
    """Values for this package's path placeholders (e.g. '{loan_id:int}': '3'), made in the test database."""
    return {}
