"""HTTP for sign-in, the signed-in person, people and org units (API and pages)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.params import Body, FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from app.deps import DB, CounterDep, SettingsDep
from app.errors import DomainError, describe
from app.security import Principal, requires, signed_in
from app.web import LANG_COOKIE, NavItem, page_context
from auth import schemas, services
from auth.middleware import SESSION_COOKIE
from auth.passwords import Passwords
from auth.sessions import SessionManager

PasswordsDep = NamedDependency[Passwords]
SessionsDep = NamedDependency[SessionManager]

NAV = [
    NavItem("/admin/users", "nav.users", ("unit_head", "hr_admin", "sysadmin", "it_admin", "auditor")),
    NavItem("/admin/units", "nav.units", ("hr_admin", "sysadmin")),
]


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def safe_next(target: str | None) -> str:
    """Only local paths: never send a person to another site after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def session_cookie(settings: SettingsDep, sid: str, *, clear: bool = False) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="" if clear else sid,
        path="/",
        httponly=True,
        secure=settings.production or settings.base_url.startswith("https"),
        samesite="lax",
        max_age=0 if clear else settings.session_absolute_hours * 3600,
    )


async def start_session(
    request: Request[Any, Any, Any], sessions: SessionsDep, user_id: int, method: str = "password"
) -> str:
    """End whatever session came with the request and issue a new id (no session fixation)."""
    old = request.scope.get("auth")
    if old is not None:
        await sessions.destroy(old.sid)
    record = await sessions.create(
        user_id, method, ip=client_ip(request), agent=request.headers.get("user-agent", "")
    )
    return record.sid


def me_read(principal: Principal, user: Any, roles: list[schemas.RoleRead], unit: Any) -> schemas.MeRead:
    return schemas.MeRead(
        id=principal.id,
        employee_number=user.employee_number,
        name=user.name,
        kana=user.kana,
        email=user.email,
        locale=user.locale,
        roles=roles,
        unit=services.unit_brief(unit),
        scope_unit_ids=sorted(principal.scope_unit_ids),
    )


class LoginForm(msgspec.Struct, kw_only=True):
    login: Annotated[str, msgspec.Meta(max_length=254)] = ""
    password: Annotated[str, msgspec.Meta(max_length=256)] = ""
    next: Annotated[str, msgspec.Meta(max_length=2000)] = "/"


class LangForm(msgspec.Struct, kw_only=True):
    lang: schemas.Locale
    next: Annotated[str, msgspec.Meta(max_length=2000)] = "/"


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class SignInPages(Controller):
    """The sign-in page and the language switch, open to everyone."""

    include_in_schema = False

    @get("/login", operation_id="loginPage", media_type=MediaType.HTML)
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        next_: Annotated[str, QueryParameter(name="next", max_length=2000)] = "/",
    ) -> Any:
        if request.scope.get("user") is not None:
            return Redirect(safe_next(next_), status_code=303)
        return Template(
            "auth/login.html", context=page_context(request, next=safe_next(next_), login="", error=None)
        )

    @post("/login", operation_id="loginSubmit", status_code=303, media_type=MediaType.HTML)
    async def login_submit(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        counter: CounterDep,
        passwords: PasswordsDep,
        sessions: SessionsDep,
        settings: SettingsDep,
        data: Annotated[LoginForm, Form],
    ) -> Any:
        try:
            user = await services.authenticate(
                db, counter, passwords, settings, data.login, data.password, client_ip(request)
            )
        except DomainError as exc:
            status, _title, detail, _ = describe(request, exc)
            headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else {}
            return Template(
                "auth/login.html",
                context=page_context(request, next=safe_next(data.next), login=data.login, error=detail),
                status_code=status,
                headers=headers,
            )
        sid = await start_session(request, sessions, user.id or 0)
        response = Redirect(safe_next(data.next), status_code=303)
        response.set_cookie(session_cookie(settings, sid))
        response.set_cookie(LANG_COOKIE, user.locale, path="/", samesite="lax", max_age=365 * 86400)
        return response

    @post(["/logout", "/auth/logout"], operation_id="logoutSubmit", status_code=303)
    async def logout_submit(
        self, request: Request[Any, Any, Any], sessions: SessionsDep, settings: SettingsDep
    ) -> Any:
        """Sign out here; after an SSO sign-in, also at the provider (RP-initiated logout)."""
        record = request.scope.get("auth")
        target = "/login"
        if record is not None:
            await sessions.destroy(record.sid)
            client = getattr(request.app.state, "oidc", None)
            if record.auth_method == "oidc" and client is not None:
                url = await client.end_session_url(record.id_token or None, settings.base_url + "/login")
                target = url or target
        response = Redirect(target, status_code=303)
        response.set_cookie(session_cookie(settings, "", clear=True))
        return response

    @post("/lang", operation_id="switchLanguage", status_code=303)
    async def switch_language(
        self, request: Request[Any, Any, Any], db: DB, data: Annotated[LangForm, Form]
    ) -> Any:
        principal: Principal | None = request.scope.get("user")
        if principal is not None:
            await services.update_user_locale(db, principal, data.lang)
        response = Redirect(safe_next(data.next), status_code=303)
        response.set_cookie(LANG_COOKIE, data.lang, path="/", samesite="lax", max_age=365 * 86400)
        return response


class AuthApi(Controller):
    """Sign-in and the signed-in person for API clients and the browser's scripts."""

    path = "/api"
    tags = ["auth"]

    @post("/auth/login", operation_id="login", status_code=200)
    async def login(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        counter: CounterDep,
        passwords: PasswordsDep,
        sessions: SessionsDep,
        settings: SettingsDep,
        data: JSONBody[schemas.LoginIn],
    ) -> Response[schemas.MeRead]:
        """Sign in with a local account; sets the session cookie."""
        user = await services.authenticate(
            db, counter, passwords, settings, data.login, data.password, client_ip(request)
        )
        sid = await start_session(request, sessions, user.id or 0)
        principal = await services.load_principal(db, user.id or 0, sid)
        if principal is None:  # deactivated between check and load
            raise NotAuthorizedException("sign_in_required")
        roles = (await services.roles_of(db, [principal.id]))[principal.id]
        unit = await db.get(services.OrgUnit, user.unit_id) if user.unit_id else None
        return Response(me_read(principal, user, roles, unit), cookies=[session_cookie(settings, sid)])

    @post("/auth/logout", operation_id="logout", status_code=204, guards=[signed_in])
    async def logout(
        self, request: Request[Any, Any, Any], sessions: SessionsDep, settings: SettingsDep
    ) -> Response[None]:
        """End this session."""
        await sessions.destroy(request.scope["auth"].sid)
        return Response(None, status_code=204, cookies=[session_cookie(settings, "", clear=True)])

    @get("/me", operation_id="getMe", guards=[signed_in])
    async def me(self, request: Request[Principal, Any, Any], db: DB) -> schemas.MeRead:
        """Who is signed in, with roles and unit."""
        principal = request.user
        user = await services.get_user(db, principal, principal.id)
        roles = (await services.roles_of(db, [principal.id]))[principal.id]
        unit = await db.get(services.OrgUnit, user.unit_id) if user.unit_id else None
        return me_read(principal, user, roles, unit)

    @patch("/me", operation_id="updateMe", guards=[signed_in])
    async def update_me(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.MeUpdate]
    ) -> schemas.MeRead:
        """Change one's own preferences (language)."""
        principal = request.user
        user = await services.update_user_locale(db, principal, data.locale)
        roles = (await services.roles_of(db, [principal.id]))[principal.id]
        unit = await db.get(services.OrgUnit, user.unit_id) if user.unit_id else None
        return me_read(principal, user, roles, unit)


PEOPLE_READERS = ("unit_head", "hr_admin", "sysadmin", "it_admin", "auditor")


class PeopleApi(Controller):
    """People: admins manage everyone; unit heads read their own subtree."""

    path = "/api/users"
    tags = ["people"]

    @get("/", operation_id="listUsers", guards=[requires(*PEOPLE_READERS)])
    async def list_users(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Annotated[str | None, QueryParameter(max_length=100)] = None,
        unit_id: Annotated[int | None, QueryParameter(ge=1, le=2_147_483_647)] = None,
        include_inactive: FromQuery[bool] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> schemas.UserPage:
        """Search people by name, kana, email or employee number."""
        users, total = await services.list_users(
            db,
            request.user,
            q=q,
            unit_id=unit_id,
            include_inactive=include_inactive,
            limit=limit,
            offset=offset,
        )
        return schemas.UserPage(
            items=await services.user_reads(db, users), total=total, limit=limit, offset=offset
        )

    @post("/", operation_id="createUser", guards=[requires("hr_admin", "sysadmin")])
    async def create_user(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        passwords: PasswordsDep,
        data: JSONBody[schemas.UserCreate],
    ) -> schemas.UserRead:
        """Add a person."""
        user = await services.create_user(db, request.user, data, passwords, client_ip(request))
        return (await services.user_reads(db, [user]))[0]

    @get("/{user_id:int}", operation_id="getUser", guards=[signed_in])
    async def get_user(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        user_id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)],
    ) -> schemas.UserRead:
        """One person, if within the reader's scope."""
        user = await services.get_user(db, request.user, user_id)
        return (await services.user_reads(db, [user]))[0]

    @patch("/{user_id:int}", operation_id="updateUser", guards=[requires("hr_admin", "sysadmin")])
    async def update_user(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        passwords: PasswordsDep,
        sessions: SessionsDep,
        user_id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)],
        data: JSONBody[schemas.UserUpdate],
    ) -> schemas.UserRead:
        """Change a person's details or deactivate them (their sessions end)."""
        user = await services.update_user(db, request.user, user_id, data, passwords, client_ip(request))
        if not user.active or data.password is not None:
            await sessions.destroy_all_for(user.id or 0)
        return (await services.user_reads(db, [user]))[0]

    @put("/{user_id:int}/roles", operation_id="setUserRoles", guards=[requires("sysadmin")])
    async def set_roles(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        user_id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)],
        data: JSONBody[schemas.RolesIn],
    ) -> list[schemas.RoleRead]:
        """Replace a person's roles."""
        return await services.set_roles(db, request.user, user_id, data.roles, client_ip(request))


class UnitsApi(Controller):
    """The org tree: everyone reads it, HR and sysadmins change it."""

    path = "/api/units"
    tags = ["org"]

    @get("/", operation_id="listUnits", guards=[signed_in])
    async def list_units(self, db: DB) -> schemas.UnitList:
        """Every unit, ordered by code, with heads and member counts."""
        items = await services.list_units(db)
        return schemas.UnitList(items=items, total=len(items))

    @post("/", operation_id="createUnit", guards=[requires("hr_admin", "sysadmin")])
    async def create_unit(
        self, request: Request[Principal, Any, Any], db: DB, data: JSONBody[schemas.UnitCreate]
    ) -> schemas.UnitRead:
        """Add a unit."""
        unit = await services.create_unit(db, request.user, data, client_ip(request))
        return await services.unit_read_one(db, unit)

    @get("/{unit_id:int}", operation_id="getUnit", guards=[signed_in])
    async def get_unit(
        self, db: DB, unit_id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
    ) -> schemas.UnitRead:
        """One unit."""
        return await services.unit_read_one(db, await services.get_unit(db, unit_id))

    @patch("/{unit_id:int}", operation_id="updateUnit", guards=[requires("hr_admin", "sysadmin")])
    async def update_unit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        unit_id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)],
        data: JSONBody[schemas.UnitUpdate],
    ) -> schemas.UnitRead:
        """Rename, move or (de)activate a unit."""
        unit = await services.update_unit(db, request.user, unit_id, data, client_ip(request))
        return await services.unit_read_one(db, unit)
