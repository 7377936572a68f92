"""Role rules for rtc's usage-figure routes (merged into tests/rtc/route_rules.py RULES)."""

from __future__ import annotations

from tests.route_rule import Rule

RULES: dict[tuple[str, str], Rule] = {}
