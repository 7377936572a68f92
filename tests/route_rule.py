"""The role rule used by tests/test_route_roles.py and each package's tests/<pkg>/route_rules.py."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("anon", "employee", "unit_head", "it_admin", "hr_admin", "auditor", "sysadmin")
SIGNED_IN = ROLES[1:]
PUBLIC = ROLES


@dataclass(frozen=True)
class Rule:
    """Status per role: `allowed` roles get `ok`, other signed-in roles `denied`, signed-out `anon`."""

    allowed: tuple[str, ...]
    ok: int = 200
    denied: int = 403
    anon: int = 401
    body: dict | None = None
    form: dict | None = None
    overrides: dict[str, int] = field(default_factory=dict)

    def expected(self, role: str) -> int:
        if role in self.overrides:
            return self.overrides[role]
        if role == "anon":
            return self.ok if "anon" in self.allowed else self.anon
        return self.ok if role in self.allowed else self.denied


def page(*roles: str, **kw) -> Rule:
    """An HTML page: signed-out people are sent to the sign-in page."""
    return Rule(roles, anon=303, **kw)
