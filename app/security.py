"""The signed-in principal and role guards, shared by every domain.

auth/ fills ``connection.user`` with a Principal; domains only read it, so they never import auth's tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

ROLES = ("employee", "unit_head", "it_admin", "hr_admin", "auditor", "sysadmin")


@dataclass(frozen=True)
class Principal:
    id: int
    employee_number: str
    name: str
    locale: str
    roles: frozenset[str]
    unit_id: int | None
    # Units the person may act on as unit head: each headed unit and its whole subtree.
    scope_unit_ids: frozenset[int] = field(default_factory=frozenset)
    session_id: str = ""

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: any signed-in person."""
    if current_principal(connection) is None:
        raise NotAuthorizedException("sign_in_required")


def requires(*roles: str):  # type: ignore[no-untyped-def]
    """Guard factory: the person must hold at least one of these roles."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal is None:
            raise NotAuthorizedException("sign_in_required")
        if not principal.has(*roles):
            raise PermissionDeniedException("forbidden_role")

    guard.__name__ = "requires_" + "_or_".join(roles)
    return guard
