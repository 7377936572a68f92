"""Role rules for rtc's usage-figure routes (merged into tests/rtc/route_rules.py RULES).

Those who read the telework indicator see the meeting figures too (unit heads: their subtree's people),
and IT, who run the meeting servers (tests/rtc/test_usage.py covers the scopes).
"""

from __future__ import annotations

from tests.route_rule import Rule, page

READERS = ("unit_head", "it_admin", "hr_admin", "auditor", "sysadmin")

RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/rtc/usage"): Rule(READERS),
    ("GET", "/api/rtc/usage.csv"): Rule(READERS),
    ("GET", "/rooms/usage"): page(*READERS),
}
