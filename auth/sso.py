"""Single sign-on rules: just-in-time provisioning from ID-token claims, and the claim and role mappings."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import audit
from app.db import utcnow
from app.errors import DomainError
from app.security import ROLES, Principal
from app.stores import Counter
from auth.models import OrgUnit, RoleAssignment, SsoClaimMapping, SsoRoleMapping, SsoUnmappedValue, User

MAPPING_FIELDS = (
    "name_claim",
    "kana_claim",
    "email_claim",
    "employee_number_claim",
    "unit_claim",
    "groups_claim",
)
FLOW_PREFIX = "sso-flow:"
KIDS_KEY = "sso:kids"


class SsoRefused(Exception):
    """Sign-in through the provider worked, but this service will not let the person in."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or a nested one by dotted path (Keycloak's `realm_access.roles`)."""
    if not path:
        return None
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        return text[:limit] if text else None
    return None


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list):
        return [str(v)[:255] for v in value if isinstance(v, (str, int)) and str(v)]
    return []


async def mapping(db: AsyncSession) -> SsoClaimMapping:
    """The one mapping row, created with defaults on first use."""
    row = (await db.execute(select(SsoClaimMapping).order_by(col(SsoClaimMapping.id)))).scalars().first()
    if row is None:
        row = SsoClaimMapping()
        db.add(row)
        await db.flush()
    return row


async def role_mappings(db: AsyncSession) -> list[SsoRoleMapping]:
    rows = await db.execute(
        select(SsoRoleMapping).order_by(col(SsoRoleMapping.value), col(SsoRoleMapping.role))
    )
    return list(rows.scalars())


async def unmapped_values(db: AsyncSession, limit: int = 200) -> list[SsoUnmappedValue]:
    rows = await db.execute(
        select(SsoUnmappedValue).order_by(col(SsoUnmappedValue.last_seen).desc()).limit(limit)
    )
    return list(rows.scalars())


async def update_mapping(
    db: AsyncSession,
    actor: Principal,
    fields: dict[str, str],
    roles: list[tuple[str, str]] | None,
    ip: str = "",
) -> SsoClaimMapping:
    """Change which claims are read and which provider values grant which roles."""
    row = await mapping(db)
    before = {f: getattr(row, f) for f in MAPPING_FIELDS}
    for name, value in fields.items():
        if name in MAPPING_FIELDS:
            setattr(row, name, value.strip())
    row.updated_at = utcnow()
    after: dict[str, Any] = {f: getattr(row, f) for f in MAPPING_FIELDS}
    if roles is not None:
        for _value, role in roles:
            if role not in ROLES:
                raise DomainError("sso.unknown_role", role=role, status_code=422)
        before["roles"] = sorted(f"{m.value}={m.role}" for m in await role_mappings(db))
        for existing in await role_mappings(db):
            await db.delete(existing)
        await db.flush()
        for value, role in sorted(set(roles)):
            db.add(SsoRoleMapping(value=value.strip()[:255], role=role))
        after["roles"] = sorted(f"{v.strip()}={r}" for v, r in set(roles))
    await db.flush()
    audit.record(
        db,
        "sso.mapping.update",
        actor_id=actor.id,
        entity_type="sso_mapping",
        entity_id=row.id,
        before=before,
        after=after,
        ip=ip,
    )
    return row


async def _record_unmapped(db: AsyncSession, values: list[str]) -> None:
    for value in values:
        row = (
            await db.execute(select(SsoUnmappedValue).where(col(SsoUnmappedValue.value) == value))
        ).scalar()
        if row is None:
            db.add(SsoUnmappedValue(value=value))
        else:
            row.count += 1
            row.last_seen = utcnow()


async def _find(db: AsyncSession, issuer: str, subject: str) -> User | None:
    query = select(User).where(col(User.oidc_iss) == issuer, col(User.oidc_sub) == subject)
    return (await db.execute(query)).scalar_one_or_none()


async def _find_to_link(
    db: AsyncSession, employee_number: str | None, email: str | None, verified: bool
) -> User | None:
    """A person HR created before their first SSO sign-in: by employee number, or by verified email."""
    if employee_number:
        user = (await db.execute(select(User).where(col(User.employee_number) == employee_number))).scalar()
        if user is not None:
            return user if user.oidc_sub is None else None
    if email and verified:
        user = (await db.execute(select(User).where(col(User.email) == email.lower()))).scalar()
        if user is not None and user.oidc_sub is None:
            return user
    return None


async def provision(db: AsyncSession, issuer: str, claims: dict[str, Any], ip: str = "") -> User:
    """Create or update the person behind these claims, keyed by (iss, sub); roles from the allow-list."""
    subject = str(claims["sub"])[:255]
    conf = await mapping(db)
    name = _text(claim(claims, conf.name_claim), 100)
    kana = _text(claim(claims, conf.kana_claim), 100)
    email = _text(claim(claims, conf.email_claim), 254)
    number = _text(claim(claims, conf.employee_number_claim), 20)
    unit_code = _text(claim(claims, conf.unit_claim), 32)
    provided = _values(claim(claims, conf.groups_claim))

    user = await _find(db, issuer, subject)
    created = False
    if user is None:
        user = await _find_to_link(db, number, email, bool(claims.get("email_verified")))
        if user is not None:
            user.oidc_iss, user.oidc_sub = issuer, subject
    if user is None:
        user = User(
            employee_number=number or f"sso-{subject}"[:20],
            name=name or (email or subject),
            email=(email or f"{subject}@sso.invalid").lower(),
            oidc_iss=issuer,
            oidc_sub=subject,
        )
        try:
            async with db.begin_nested():
                db.add(user)
        except IntegrityError:
            # Someone else's sign-in created this person a moment ago: use theirs.
            existing = await _find(db, issuer, subject)
            if existing is None:
                raise SsoRefused("identity_conflict") from None
            user = existing
        else:
            created = True
    if not user.active:
        raise SsoRefused("deactivated")
    before = {
        "name": user.name,
        "email": user.email,
        "employee_number": user.employee_number,
        "unit_id": user.unit_id,
    }
    if name:
        user.name = name
    if kana:
        user.kana = kana
    if email and not await _taken(db, User.email, email.lower(), user.id):
        user.email = email.lower()
    if number and not await _taken(db, User.employee_number, number, user.id):
        user.employee_number = number
    if unit_code:
        unit = (await db.execute(select(OrgUnit).where(col(OrgUnit.code) == unit_code))).scalar()
        if unit is not None:
            user.unit_id = unit.id
    user.last_login_at = user.updated_at = utcnow()
    await db.flush()
    roles = await _sync_roles(db, user, provided)
    after = {
        "name": user.name,
        "email": user.email,
        "employee_number": user.employee_number,
        "unit_id": user.unit_id,
        "roles": roles,
    }
    audit.record(
        db,
        "user.sso_create" if created else "user.sso_update",
        actor_id=user.id,
        actor_label=f"sso:{subject}",
        entity_type="user",
        entity_id=user.id,
        before=None if created else before,
        after=after,
        ip=ip,
    )
    return user


async def _taken(db: AsyncSession, column: Any, value: str, user_id: int | None) -> bool:
    found = (await db.execute(select(col(User.id)).where(col(column) == value))).scalar()
    return found is not None and found != user_id


async def _sync_roles(db: AsyncSession, user: User, provided: list[str]) -> list[str]:
    """Roles the mapping can grant follow the provider; other roles stay as assigned here."""
    table = await role_mappings(db)
    managed = {m.role for m in table}
    granted = {m.role for m in table if m.value in provided}
    known = {m.value for m in table}
    await _record_unmapped(db, sorted({v for v in provided if v not in known}))
    current = list(
        (await db.execute(select(RoleAssignment).where(col(RoleAssignment.user_id) == user.id))).scalars()
    )
    keep = {(ra.role, ra.unit_id) for ra in current if ra.role not in managed}
    wanted = keep | {("employee", None)} | {(r, user.unit_id if r == "unit_head" else None) for r in granted}
    wanted = {(r, u) for r, u in wanted if not (r == "unit_head" and u is None)}
    for ra in current:
        if (ra.role, ra.unit_id) not in wanted:
            await db.delete(ra)
    have = {(ra.role, ra.unit_id) for ra in current}
    for role, unit_id in wanted - have:
        db.add(RoleAssignment(user_id=user.id or 0, role=role, unit_id=unit_id))
    await db.flush()
    return sorted(r for r, _ in wanted)


async def first_use(counter: Counter, key: str, ttl: int) -> bool:
    """True once per key within ttl, across every worker: one-time state, logout-token replay."""
    return await counter.hit(key, ttl) == 1


def flow_record(nonce: str, verifier: str, next_path: str, binding: str) -> str:
    return json.dumps({"nonce": nonce, "verifier": verifier, "next": next_path, "binding": binding})
