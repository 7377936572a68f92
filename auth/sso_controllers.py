"""HTTP for single sign-on: start, callback, back-channel logout, and the sysadmin's SSO page and API."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlmodel import col

from app import audit
from app.deps import DB, CounterDep, SettingsDep
from app.errors import DomainError
from app.security import Principal, requires
from app.settings import Settings
from app.web import LANG_COOKIE, NavItem, page_context
from auth import sso
from auth.controllers import client_ip, safe_next, session_cookie
from auth.oidc_errors import OidcError, ProviderUnavailable

if TYPE_CHECKING:
    from auth.oidc import OidcClient
from auth.sessions import SessionManager

log = logging.getLogger("telework.sso")
SessionsDep = NamedDependency[SessionManager]
FLOW_COOKIE = "th_sso"
FLOW_TTL = 600
NAV = [NavItem("/admin/sso", "nav.sso", ("sysadmin",))]


def oidc_client(request: Request[Any, Any, Any]) -> OidcClient:
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        raise NotFoundException("sso_not_configured")
    return client


def _binding(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _failure_page(request: Request[Any, Any, Any], reason: str, status: int) -> Template:
    response = Template(
        "auth/sso_error.html", context=page_context(request, reason=reason), status_code=status
    )
    response.delete_cookie(FLOW_COOKIE, path="/auth/sso")
    return response


class MappingIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name_claim: Annotated[str, msgspec.Meta(max_length=100)] = "name"
    kana_claim: Annotated[str, msgspec.Meta(max_length=100)] = ""
    email_claim: Annotated[str, msgspec.Meta(max_length=100)] = "email"
    employee_number_claim: Annotated[str, msgspec.Meta(max_length=100)] = "employee_number"
    unit_claim: Annotated[str, msgspec.Meta(max_length=100)] = "unit_code"
    groups_claim: Annotated[str, msgspec.Meta(max_length=100)] = "groups"
    roles: Annotated[
        list[dict[str, Annotated[str, msgspec.Meta(min_length=1, max_length=255)]]],
        msgspec.Meta(max_length=500),
    ] = msgspec.field(default_factory=list)


class SsoStatus(msgspec.Struct, kw_only=True):
    enabled: bool
    issuer: str | None
    client_id: str | None
    local_login: str
    last_success_at: str | None
    key_ids_seen: list[str]
    mapping: dict[str, str]
    roles: list[dict[str, str]]
    unmapped: list[dict[str, Any]]


async def _status(request: Request[Any, Any, Any], db: Any, settings: Settings) -> SsoStatus:
    conf = await sso.mapping(db)
    last = (
        await db.execute(
            select(col(audit.AuditEvent.at))
            .where(col(audit.AuditEvent.action) == "auth.sso.success")
            .order_by(col(audit.AuditEvent.id).desc())
            .limit(1)
        )
    ).scalar()
    kids_raw = await request.app.state.backends.store.get(sso.KIDS_KEY)
    kids = sorted(json.loads(kids_raw)) if kids_raw else []
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is not None:
        kids = sorted(set(kids) | client.key_ids_seen)
    return SsoStatus(
        enabled=settings.sso_enabled,
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        local_login=settings.local_login,
        last_success_at=last.isoformat() if last else None,
        key_ids_seen=kids,
        mapping={f: getattr(conf, f) for f in sso.MAPPING_FIELDS},
        roles=[{"value": m.value, "role": m.role} for m in await sso.role_mappings(db)],
        unmapped=[
            {"value": u.value, "count": u.count, "last_seen": u.last_seen.isoformat()}
            for u in await sso.unmapped_values(db)
        ],
    )


class SsoFlow(Controller):
    """The browser's trip to the identity provider and back."""

    path = "/auth/sso"
    include_in_schema = False

    @get("/login", operation_id="ssoLogin")
    async def login(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        next_: Annotated[str, QueryParameter(name="next", max_length=2000)] = "/",
    ) -> Any:
        """Start the authorization code flow with PKCE; state and nonce are bound to this browser."""
        client = oidc_client(request)
        try:
            auth = await client.authorization_request()
        except ProviderUnavailable as exc:
            audit.record(
                db, "auth.sso.failure", actor_label="sso", after={"reason": exc.reason}, ip=client_ip(request)
            )
            return _failure_page(request, exc.reason, 502)
        binding = secrets.token_urlsafe(32)
        record = sso.flow_record(auth.nonce, auth.code_verifier, safe_next(next_), _binding(binding))
        await request.app.state.backends.store.set(sso.FLOW_PREFIX + auth.state, record, expires_in=FLOW_TTL)
        response = Redirect(auth.url, status_code=303)
        response.set_cookie(
            FLOW_COOKIE,
            binding,
            path="/auth/sso",
            httponly=True,
            samesite="lax",
            max_age=FLOW_TTL,
            secure=request.app.state.settings.production,
        )
        return response

    @get("/callback", operation_id="ssoCallback", media_type=MediaType.HTML)
    async def callback(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        counter: CounterDep,
        sessions: SessionsDep,
        settings: SettingsDep,
        code: Annotated[str | None, QueryParameter(max_length=4096)] = None,
        state_: Annotated[str | None, QueryParameter(name="state", max_length=512)] = None,
        error: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> Any:
        """Finish sign-in: one-time state, browser binding, code exchange, ID-token checks, provisioning."""
        client = oidc_client(request)
        ip = client_ip(request)

        async def fail(reason: str, status: int, detail: str = "") -> Template:
            audit.record(
                db, "auth.sso.failure", actor_label="sso", after={"reason": reason, "detail": detail}, ip=ip
            )
            return _failure_page(request, reason, status)

        store = request.app.state.backends.store
        state = state_
        raw = await store.get(sso.FLOW_PREFIX + state) if state else None
        if raw is None or not await sso.first_use(counter, "sso-state-used:" + (state or ""), FLOW_TTL):
            return await fail("bad_state", 400)
        await store.delete(sso.FLOW_PREFIX + (state or ""))
        flow = json.loads(raw)
        cookie = request.cookies.get(FLOW_COOKIE, "")
        if not cookie or not secrets.compare_digest(_binding(cookie), flow["binding"]):
            return await fail("bad_state", 400, "browser binding")
        if error:
            return await fail("denied" if error == "access_denied" else "provider_error", 400, error[:100])
        if not code:
            return await fail("bad_state", 400, "no code")
        try:
            tokens = await client.exchange_code(code, flow["verifier"])
            claims = await client.validate_id_token(
                tokens["id_token"], flow["nonce"], tokens.get("access_token")
            )
        except ProviderUnavailable as exc:
            return await fail(exc.reason, 502, exc.detail)
        except OidcError as exc:
            return await fail(exc.reason, 400, exc.detail)
        await store.set(sso.KIDS_KEY, json.dumps(sorted(client.key_ids_seen)))
        if settings.oidc_hosted_domain and claims.get("hd") != settings.oidc_hosted_domain:
            return await fail("wrong_domain", 403, str(claims.get("hd", ""))[:100])
        try:
            user = await sso.provision(db, client.issuer, claims, ip)
        except sso.SsoRefused as exc:
            await db.rollback()
            return await fail(exc.reason, 403, str(claims.get("sub", ""))[:80])
        old = request.scope.get("auth")
        if old is not None:
            await sessions.destroy(old.sid)
        record = await sessions.create(
            user.id or 0,
            "oidc",
            oidc_sid=str(claims.get("sid", ""))[:255],
            id_token=tokens["id_token"],
            ip=ip,
            agent=request.headers.get("user-agent", ""),
        )
        audit.record(
            db,
            "auth.sso.success",
            actor_id=user.id,
            actor_label=user.employee_number,
            entity_type="user",
            entity_id=user.id,
            after={"sub": claims["sub"], "sid": claims.get("sid")},
            ip=ip,
        )
        response = Redirect(flow["next"], status_code=303)
        response.set_cookie(session_cookie(settings, record.sid))
        response.set_cookie(LANG_COOKIE, user.locale, path="/", samesite="lax", max_age=365 * 86400)
        response.delete_cookie(FLOW_COOKIE, path="/auth/sso")
        return response

    @post(
        "/backchannel-logout",
        operation_id="ssoBackchannelLogout",
        status_code=200,
        exclude_from_csrf=True,
        include_in_schema=True,
        tags=["sso"],
    )
    async def backchannel_logout(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        counter: CounterDep,
        sessions: SessionsDep,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[dict[str, Any]]:
        """OIDC Back-Channel Logout 1.0: the provider ends a person's sessions here, server to server."""
        client = oidc_client(request)
        headers = {"Cache-Control": "no-store"}
        token = data.get("logout_token", "")
        if not token or len(token) > 16384:
            return Response({"error": "invalid_request"}, status_code=400, headers=headers)
        try:
            claims = await client.validate_logout_token(token)
        except OidcError as exc:
            audit.record(
                db,
                "auth.sso.backchannel_rejected",
                actor_label="sso",
                after={"reason": exc.reason, "detail": exc.detail},
                ip=client_ip(request),
            )
            return Response(
                {"error": "invalid_request", "reason": exc.reason}, status_code=400, headers=headers
            )
        ttl = (
            max(60, int(claims.get("exp", 0)) - int(claims["iat"]) + 2 * client.leeway)
            if "exp" in claims
            else 86400
        )
        if not await sso.first_use(counter, "bcl-jti:" + str(claims["jti"])[:200], ttl):
            audit.record(
                db,
                "auth.sso.backchannel_rejected",
                actor_label="sso",
                after={"reason": "replayed_jti"},
                ip=client_ip(request),
            )
            return Response(
                {"error": "invalid_request", "reason": "replayed_jti"}, status_code=400, headers=headers
            )
        ended = 0
        if claims.get("sid"):
            ended += await sessions.destroy_by_oidc_sid(str(claims["sid"]))
        if claims.get("sub"):
            from auth.models import User

            user_id = (
                await db.execute(
                    select(col(User.id)).where(
                        col(User.oidc_iss) == client.issuer, col(User.oidc_sub) == claims["sub"]
                    )
                )
            ).scalar()
            if user_id is not None and not claims.get("sid"):
                ended += await sessions.destroy_all_for(user_id)
        audit.record(
            db,
            "auth.sso.backchannel_logout",
            actor_label="sso",
            entity_type="oidc_session",
            entity_id=str(claims.get("sid") or claims.get("sub")),
            after={"sessions_ended": ended},
            ip=client_ip(request),
        )
        return Response({"sessions_ended": ended}, headers=headers)


class SsoAdmin(Controller):
    """The sysadmin's view of SSO: status, claim mapping, allow-listed roles, unmapped values, sessions."""

    guards = [requires("sysadmin")]
    tags = ["sso"]

    @get("/api/sso", operation_id="getSsoStatus")
    async def status(self, request: Request[Any, Any, Any], db: DB, settings: SettingsDep) -> SsoStatus:
        """SSO status, claim mapping, role mapping and the unmapped values seen."""
        return await _status(request, db, settings)

    @put("/api/sso/mapping", operation_id="updateSsoMapping")
    async def update(
        self, request: Request[Principal, Any, Any], db: DB, settings: SettingsDep, data: JSONBody[MappingIn]
    ) -> SsoStatus:
        """Replace the claim mapping and the allow-list of provider values → roles."""
        roles: list[tuple[str, str]] = []
        for item in data.roles:
            if set(item) != {"value", "role"}:
                raise DomainError("sso.role_mapping_shape", status_code=422)
            roles.append((item["value"], item["role"]))
        fields = {f: getattr(data, f) for f in sso.MAPPING_FIELDS}
        await sso.update_mapping(db, request.user, fields, roles, client_ip(request))
        return await _status(request, db, settings)

    @delete("/api/users/{user_id:int}/sessions", operation_id="endUserSessions", status_code=200)
    async def end_sessions(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        sessions: SessionsDep,
        user_id: Annotated[int, PathParameter(ge=1, le=2_147_483_647)],
    ) -> dict[str, int]:
        """End every session of a person, on every worker."""
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
        return {"sessions_ended": ended}

    @get("/admin/sso", operation_id="ssoPage", include_in_schema=False)
    async def page(
        self, request: Request[Any, Any, Any], db: DB, settings: SettingsDep, saved: FromQuery[bool] = False
    ) -> Template:
        status = await _status(request, db, settings)
        return Template(
            "auth/sso_admin.html", context=page_context(request, status=status, saved=saved, errors=[])
        )

    @post("/admin/sso", operation_id="ssoPageSubmit", include_in_schema=False, status_code=303)
    async def page_submit(
        self,
        request: Request[Principal, Any, Any],
        db: DB,
        settings: SettingsDep,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Any:
        fields = {f: str(data.get(f, ""))[:100] for f in sso.MAPPING_FIELDS}
        roles = []
        for line in str(data.get("roles", "")).splitlines():
            value, sep, role = line.strip().rpartition("=")
            if line.strip() and (not sep or not value.strip()):
                status = await _status(request, db, settings)
                errors = [{"field": "roles", "message": line.strip()[:100]}]
                return Template(
                    "auth/sso_admin.html",
                    context=page_context(request, status=status, saved=False, errors=errors),
                    status_code=422,
                )
            if sep:
                roles.append((value.strip()[:255], role.strip()))
        await sso.update_mapping(db, request.user, fields, roles, client_ip(request))
        return Redirect("/admin/sso?saved=true", status_code=303)
