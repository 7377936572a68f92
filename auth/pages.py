"""Admin pages for people and the org tree: find, read, add and change, with forms that explain mistakes."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from app import audit
from app.deps import DB
from app.errors import DomainError, field_errors
from app.security import Principal, requires
from app.web import page_context, request_locale
from auth import schemas, services
from auth.controllers import PEOPLE_READERS, client_ip
from auth.passwords import Passwords
from auth.sessions import SessionManager

PasswordsDep = NamedDependency[Passwords]
SessionsDep = NamedDependency[SessionManager]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
UserId = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
ORG_WRITERS = ("hr_admin", "sysadmin")
ROLE_CHOICES = ("employee", "unit_head", "it_admin", "hr_admin", "auditor", "sysadmin")
Text = Annotated[str, msgspec.Meta(max_length=400)]


class UserForm(msgspec.Struct, kw_only=True):
    """What the browser posts: every field as text; validation happens on conversion to the API schema."""

    employee_number: Text = ""
    name: Text = ""
    kana: Text = ""
    email: Text = ""
    employment_type: Text = "regular"
    locale: Text = "ja"
    unit_code: Text = ""
    active: Text = ""
    password: Text = ""


class RolesForm(msgspec.Struct, kw_only=True):
    roles: list[Text] | Text = msgspec.field(default_factory=list)
    head_unit_id: Text = ""


class UnitForm(msgspec.Struct, kw_only=True):
    code: Text = ""
    name: Text = ""
    name_en: Text = ""
    level: Text = "ka"
    parent_code: Text = ""


def _clean(form: msgspec.Struct, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Empty optional text means 'not given'."""
    return {k: v for k, v in msgspec.structs.asdict(form).items() if v != "" and k not in drop}


async def _user_context(request: Request[Principal, Any, Any], db: Any, user_id: int) -> dict[str, Any]:
    user = await services.get_user(db, request.user, user_id)
    units = await services.list_units(db)
    return {
        "user": (await services.user_reads(db, [user]))[0],
        "units": units,
        "role_choices": ROLE_CHOICES,
        "can_edit": request.user.has(*ORG_WRITERS),
        "can_set_roles": request.user.has("sysadmin"),
        "errors": [],
        "saved": request.query_params.get("saved") == "1",
    }


class AdminPages(Controller):
    """Staff and org pages for HR, IT, auditors and unit heads (each sees what their role allows)."""

    include_in_schema = False

    @get("/admin/users", operation_id="usersPage", guards=[requires(*PEOPLE_READERS)])
    async def users_page(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        q: Annotated[str | None, QueryParameter(max_length=100)] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
    ) -> Template:
        per_page = 25
        users, total = await services.list_users(
            db, request.user, q=q, limit=per_page, offset=(page - 1) * per_page
        )
        return Template(
            "auth/users.html",
            context=page_context(
                request,
                users=await services.user_reads(db, users),
                total=total,
                q=q or "",
                page=page,
                pages=max(1, (total + per_page - 1) // per_page),
                can_edit=request.user.has(*ORG_WRITERS),
            ),
        )

    @get("/admin/users/new", operation_id="newUserPage", guards=[requires(*ORG_WRITERS)])
    async def new_user_page(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        units = await services.list_units(db)
        return Template(
            "auth/user_new.html", context=page_context(request, units=units, form=UserForm(), errors=[])
        )

    @post("/admin/users/new", operation_id="newUserSubmit", guards=[requires(*ORG_WRITERS)], status_code=303)
    async def new_user_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        passwords: PasswordsDep,
        data: Annotated[UserForm, Form],
    ) -> Any:
        try:
            payload = msgspec.convert(_clean(data, drop=("active",)), schemas.UserCreate)
            user = await services.create_user(db, request.user, payload, passwords, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            units = await services.list_units(db)
            return Template(
                "auth/user_new.html",
                context=page_context(
                    request, units=units, form=data, errors=field_errors(request_locale(request), exc)
                ),
                status_code=422
                if isinstance(exc, msgspec.ValidationError)
                else getattr(exc, "status_code", 400),
            )
        return Redirect(f"/admin/users/{user.id}?saved=1", status_code=303)

    @get("/admin/users/{user_id:int}", operation_id="userPage", guards=[requires(*PEOPLE_READERS)])
    async def user_page(self, request: Request[Principal, Any, Any], db: DB, user_id: UserId) -> Template:
        return Template(
            "auth/user.html", context=page_context(request, **await _user_context(request, db, user_id))
        )

    @post(
        "/admin/users/{user_id:int}",
        operation_id="userSubmit",
        guards=[requires(*ORG_WRITERS)],
        status_code=303,
    )
    async def user_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        passwords: PasswordsDep,
        sessions: SessionsDep,
        user_id: UserId,
        data: Annotated[UserForm, Form],
    ) -> Any:
        fields = _clean(data, drop=("employee_number", "active"))
        fields["active"] = data.active == "on"
        if "unit_code" not in fields:
            fields["unit_code"] = None
        try:
            payload = msgspec.convert({k: v for k, v in fields.items() if v is not None}, schemas.UserUpdate)
            user = await services.update_user(
                db, request.user, user_id, payload, passwords, client_ip(request)
            )
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            context = await _user_context(request, db, user_id)
            context["errors"] = field_errors(request_locale(request), exc)
            return Template("auth/user.html", context=page_context(request, **context), status_code=422)
        if not user.active or "password" in fields:
            await sessions.destroy_all_for(user.id or 0)
        return Redirect(f"/admin/users/{user_id}?saved=1", status_code=303)

    @post(
        "/admin/users/{user_id:int}/roles",
        operation_id="userRolesSubmit",
        guards=[requires("sysadmin")],
        status_code=303,
    )
    async def roles_submit(
        self, request: Request[Principal, Any, Any], db: DB, user_id: UserId, data: Annotated[RolesForm, Form]
    ) -> Any:
        chosen = [data.roles] if isinstance(data.roles, str) else data.roles
        roles = []
        try:
            for role in chosen:
                if role not in ROLE_CHOICES:
                    raise DomainError("error.invalid_choice", status_code=422)
                unit_id = (
                    int(data.head_unit_id) if role == "unit_head" and data.head_unit_id.isdigit() else None
                )
                roles.append(schemas.RoleIn(role=role, unit_id=unit_id))  # type: ignore[arg-type]
            await services.set_roles(db, request.user, user_id, roles, client_ip(request))
        except DomainError as exc:
            await db.rollback()
            context = await _user_context(request, db, user_id)
            context["errors"] = field_errors(request_locale(request), exc)
            return Template("auth/user.html", context=page_context(request, **context), status_code=422)
        return Redirect(f"/admin/users/{user_id}?saved=1", status_code=303)

    @post(
        "/admin/users/{user_id:int}/sessions/end",
        operation_id="userSessionsEndSubmit",
        guards=[requires("sysadmin")],
        status_code=303,
    )
    async def end_sessions_submit(
        self, request: Request[Principal, Any, Any], db: DB, sessions: SessionsDep, user_id: UserId
    ) -> Any:
        """Sign a person out everywhere (lost phone, suspected misuse)."""
        await services.get_user(db, request.user, user_id)
        ended = await sessions.destroy_all_for(user_id)
        audit.record(
            db,
            "user.sessions_ended",
            actor_id=request.user.id,
            entity_type="user",
            entity_id=user_id,
            after={"sessions_ended": ended},
            ip=client_ip(request),
        )
        return Redirect(f"/admin/users/{user_id}?saved=1", status_code=303)

    @get("/admin/units", operation_id="unitsPage", guards=[requires(*ORG_WRITERS)])
    async def units_page(self, request: Request[Principal, Any, Any], db: DB) -> Template:
        units = await services.list_units(db)
        return Template(
            "auth/units.html",
            context=page_context(
                request,
                units=units,
                tree=services.as_tree(units),
                form=UnitForm(),
                errors=[],
                saved=request.query_params.get("saved") == "1",
            ),
        )

    @post("/admin/units", operation_id="unitsSubmit", guards=[requires(*ORG_WRITERS)], status_code=303)
    async def units_submit(
        self, request: Request[Principal, Any, Any], db: DB, data: Annotated[UnitForm, Form]
    ) -> Any:
        try:
            payload = msgspec.convert(_clean(data), schemas.UnitCreate)
            await services.create_unit(db, request.user, payload, client_ip(request))
        except (msgspec.ValidationError, DomainError) as exc:
            await db.rollback()
            units = await services.list_units(db)
            return Template(
                "auth/units.html",
                context=page_context(
                    request,
                    units=units,
                    tree=services.as_tree(units),
                    form=data,
                    errors=field_errors(request_locale(request), exc),
                    saved=False,
                ),
                status_code=422,
            )
        return Redirect("/admin/units?saved=1", status_code=303)
