"""What every page needs: the reader's language, role-aware navigation, the CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from app.i18n import LOCALES, negotiate, translate
from app.security import Principal, current_principal

LANG_COOKIE = "lang"


@dataclass(frozen=True)
class NavItem:
    path: str
    label_key: str
    roles: tuple[str, ...] = ()  # empty: every signed-in person

    def visible_to(self, principal: Principal | None) -> bool:
        if principal is None:
            return False
        return not self.roles or principal.has(*self.roles)


def request_locale(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Signed-in person's choice, else the lang cookie, else Accept-Language, else the site default."""
    principal = current_principal(connection)
    if principal is not None and principal.locale in LOCALES:
        return principal.locale
    cookie = connection.cookies.get(LANG_COOKIE)
    if cookie in LOCALES:
        return str(cookie)
    default = connection.app.state.settings.default_locale
    return negotiate(connection.headers.get("accept-language"), default)


def current_nav(path: str, nav: list[NavItem]) -> str | None:
    """The menu entry for this page: the longest menu path that is the page or a folder above it."""
    matches = [item.path for item in nav if path == item.path or path.startswith(item.path.rstrip("/") + "/")]
    return max(matches, key=len, default=None)


def page_context(request: Request[Any, Any, Any], **extra: Any) -> dict[str, Any]:
    locale = request_locale(request)
    principal = current_principal(request)
    nav = [item for item in request.app.state.nav if item.visible_to(principal)]

    def t(key: str, **params: Any) -> str:
        return translate(locale, key, **params)

    return {
        "lang": locale,
        "t": t,
        "me": principal,
        "nav": nav,
        "current_path": request.url.path,
        "current_nav": current_nav(request.url.path, nav),
        "sso_enabled": getattr(request.app.state, "oidc", None) is not None,
        "local_login": request.app.state.settings.local_login,
        **extra,
    }
