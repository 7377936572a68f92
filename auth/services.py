"""Rules for people, the org tree, roles and sign-in. No HTTP here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import audit
from app.db import utcnow
from app.errors import Conflict, DomainError, Forbidden, NotFound, TooManyRequests
from app.security import Principal
from app.settings import Settings
from app.stores import Counter
from auth import schemas
from auth.models import OrgUnit, RoleAssignment, User
from auth.passwords import Passwords

ADMIN_READERS = ("hr_admin", "sysadmin", "it_admin", "auditor")
ADMIN_WRITERS = ("hr_admin", "sysadmin")


# ---------------------------------------------------------------- the org tree


async def subtree_ids(db: AsyncSession, roots: Iterable[int]) -> set[int]:
    """Ids of these units and every unit below them (one recursive query on both databases)."""
    roots = list(roots)
    if not roots:
        return set()
    base = select(col(OrgUnit.id).label("id")).where(col(OrgUnit.id).in_(roots)).cte("tree", recursive=True)
    tree = base.union_all(select(col(OrgUnit.id)).where(col(OrgUnit.parent_id) == base.c.id))
    return set((await db.execute(select(tree.c.id))).scalars())


async def ancestors(db: AsyncSession, unit_id: int) -> list[int]:
    chain: list[int] = []
    current: int | None = unit_id
    while current is not None and current not in chain:
        chain.append(current)
        current = (
            await db.execute(select(col(OrgUnit.parent_id)).where(col(OrgUnit.id) == current))
        ).scalar_one_or_none()
    return chain


async def unit_by_code(db: AsyncSession, code: str | None) -> OrgUnit | None:
    if code is None:
        return None
    unit = (await db.execute(select(OrgUnit).where(col(OrgUnit.code) == code))).scalar_one_or_none()
    if unit is None:
        raise DomainError("org.unit_code_unknown", code=code, status_code=422)
    return unit


def unit_dict(unit: OrgUnit) -> dict[str, Any]:
    return {
        "code": unit.code,
        "name": unit.name,
        "name_en": unit.name_en,
        "level": unit.level,
        "parent_id": unit.parent_id,
        "active": unit.active,
    }


async def list_units(db: AsyncSession) -> list[schemas.UnitRead]:
    units = list((await db.execute(select(OrgUnit).order_by(col(OrgUnit.code)))).scalars())
    by_id = {u.id: u for u in units}
    counts = dict(
        (
            await db.execute(
                select(col(User.unit_id), func.count()).where(col(User.active)).group_by(col(User.unit_id))
            )
        ).all()
    )
    heads: dict[int | None, list[str]] = {}
    rows = await db.execute(
        select(col(RoleAssignment.unit_id), col(User.name))
        .join(User, col(User.id) == col(RoleAssignment.user_id))
        .where(col(RoleAssignment.role) == "unit_head")
        .order_by(col(User.name))
    )
    for unit_id, name in rows.all():
        heads.setdefault(unit_id, []).append(name)
    return [unit_read(u, by_id, heads.get(u.id or 0, []), int(counts.get(u.id, 0))) for u in units]


def unit_read(
    unit: OrgUnit, by_id: dict[int | None, OrgUnit], heads: list[str], members: int
) -> schemas.UnitRead:
    parent = by_id.get(unit.parent_id) if unit.parent_id else None
    return schemas.UnitRead(
        id=unit.id or 0,
        code=unit.code,
        name=unit.name,
        name_en=unit.name_en,
        level=unit.level,  # type: ignore[arg-type]
        parent_id=unit.parent_id,
        parent_code=parent.code if parent else None,
        active=unit.active,
        head=heads,
        member_count=members,
    )


async def get_unit(db: AsyncSession, unit_id: int) -> OrgUnit:
    unit = await db.get(OrgUnit, unit_id)
    if unit is None:
        raise NotFound("org.unit_not_found")
    return unit


async def create_unit(db: AsyncSession, actor: Principal, data: schemas.UnitCreate, ip: str = "") -> OrgUnit:
    """Add a unit under its parent; codes are unique."""
    parent = await unit_by_code(db, data.parent_code)
    if (await db.execute(select(col(OrgUnit.id)).where(col(OrgUnit.code) == data.code))).first():
        raise Conflict("org.unit_code_taken", code=data.code)
    unit = OrgUnit(
        code=data.code,
        name=data.name,
        name_en=data.name_en,
        level=data.level,
        parent_id=parent.id if parent else None,
    )
    db.add(unit)
    await _flush(db)
    audit.record(
        db,
        "org.unit.create",
        actor_id=actor.id,
        entity_type="org_unit",
        entity_id=unit.id,
        after=unit_dict(unit),
        ip=ip,
    )
    return unit


async def update_unit(
    db: AsyncSession, actor: Principal, unit_id: int, data: schemas.UnitUpdate, ip: str = ""
) -> OrgUnit:
    """Rename, re-level, move or (de)activate a unit; a unit can never move below itself."""
    unit = await get_unit(db, unit_id)
    before = unit_dict(unit)
    fields = msgspec_fields(data)
    if "parent_code" in fields:
        parent = await unit_by_code(db, data.parent_code)
        if parent is not None and unit.id in await ancestors(db, parent.id or 0):
            raise DomainError("org.unit_cycle", status_code=422)
        unit.parent_id = parent.id if parent else None
    for name in ("name", "name_en", "level", "active"):
        if name in fields:
            setattr(unit, name, fields[name])
    unit.updated_at = utcnow()
    await _flush(db)
    audit.record(
        db,
        "org.unit.update",
        actor_id=actor.id,
        entity_type="org_unit",
        entity_id=unit.id,
        before=before,
        after=unit_dict(unit),
        ip=ip,
    )
    return unit


def msgspec_fields(data: Any) -> dict[str, Any]:
    """The fields a client actually sent in a partial update (None means 'not sent' in our Update structs)."""
    return {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not None}


async def _flush(db: AsyncSession) -> None:
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("error.conflict") from exc


# ---------------------------------------------------------------- people


def user_dict(user: User) -> dict[str, Any]:
    return {
        "employee_number": user.employee_number,
        "name": user.name,
        "kana": user.kana,
        "email": user.email,
        "employment_type": user.employment_type,
        "locale": user.locale,
        "active": user.active,
        "unit_id": user.unit_id,
        "password_hash": user.password_hash,
    }


async def roles_of(db: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[schemas.RoleRead]]:
    out: dict[int, list[schemas.RoleRead]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    rows = await db.execute(
        select(RoleAssignment)
        .where(col(RoleAssignment.user_id).in_(user_ids))
        .order_by(col(RoleAssignment.role))
    )
    for ra in rows.scalars():
        out[ra.user_id].append(schemas.RoleRead(role=ra.role, unit_id=ra.unit_id))  # type: ignore[arg-type]
    return out


async def user_reads(db: AsyncSession, users: Sequence[User]) -> list[schemas.UserRead]:
    roles = await roles_of(db, [u.id for u in users if u.id])
    unit_ids = {u.unit_id for u in users if u.unit_id}
    units = {
        u.id: u for u in (await db.execute(select(OrgUnit).where(col(OrgUnit.id).in_(unit_ids)))).scalars()
    }
    return [
        schemas.UserRead(
            id=u.id or 0,
            employee_number=u.employee_number,
            name=u.name,
            kana=u.kana,
            email=u.email,
            employment_type=u.employment_type,  # type: ignore[arg-type]
            locale=u.locale,  # type: ignore[arg-type]
            active=u.active,
            unit=unit_brief(units.get(u.unit_id)),
            roles=roles.get(u.id or 0, []),
            sso_linked=bool(u.oidc_sub),
            last_login_at=u.last_login_at,
        )
        for u in users
    ]


def unit_brief(unit: OrgUnit | None) -> schemas.UnitBrief | None:
    if unit is None:
        return None
    return schemas.UnitBrief(id=unit.id or 0, code=unit.code, name=unit.name, name_en=unit.name_en)


def can_read_people(principal: Principal) -> bool:
    return principal.has(*ADMIN_READERS) or (principal.has("unit_head") and bool(principal.scope_unit_ids))


async def list_users(
    db: AsyncSession,
    principal: Principal,
    *,
    q: str | None = None,
    unit_id: int | None = None,
    include_inactive: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[User], int]:
    """People the principal may see: admins everyone, a unit head their subtree."""
    query = select(User)
    if not principal.has(*ADMIN_READERS):
        if not principal.has("unit_head"):
            raise Forbidden("error.forbidden")
        query = query.where(col(User.unit_id).in_(principal.scope_unit_ids))
    if unit_id is not None:
        query = query.where(col(User.unit_id).in_(await subtree_ids(db, [unit_id])))
    if not include_inactive:
        query = query.where(col(User.active))
    if q:
        like = f"%{q.strip()}%"
        query = query.where(
            or_(
                col(User.name).like(like),
                col(User.kana).like(like),
                col(User.email).like(like),
                col(User.employee_number).like(like),
            )
        )
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(
        query.order_by(col(User.kana), col(User.employee_number)).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)


async def get_user(db: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("user.not_found")
    if user.id == principal.id or principal.has(*ADMIN_READERS):
        return user
    if principal.has("unit_head") and user.unit_id in principal.scope_unit_ids:
        return user
    # Same answer as a missing user: do not confirm who exists outside one's scope.
    raise NotFound("user.not_found")


async def create_user(
    db: AsyncSession, actor: Principal, data: schemas.UserCreate, passwords: Passwords, ip: str = ""
) -> User:
    """Add a person with the employee role; unique employee number and email."""
    unit = await unit_by_code(db, data.unit_code)
    await _ensure_unique(db, employee_number=data.employee_number, email=data.email)
    user = User(
        employee_number=data.employee_number,
        name=data.name,
        kana=data.kana,
        email=data.email.lower(),
        employment_type=data.employment_type,
        locale=data.locale,
        unit_id=unit.id if unit else None,
        password_hash=passwords.hash(data.password) if data.password else None,
    )
    db.add(user)
    await _flush(db)
    db.add(RoleAssignment(user_id=user.id or 0, role="employee"))
    audit.record(
        db,
        "user.create",
        actor_id=actor.id,
        entity_type="user",
        entity_id=user.id,
        after=user_dict(user),
        ip=ip,
    )
    await _flush(db)
    return user


async def _ensure_unique(
    db: AsyncSession,
    *,
    employee_number: str | None = None,
    email: str | None = None,
    except_id: int | None = None,
) -> None:
    if employee_number is not None:
        found = (
            await db.execute(select(col(User.id)).where(col(User.employee_number) == employee_number))
        ).scalar()
        if found is not None and found != except_id:
            raise Conflict("user.employee_number_taken", value=employee_number)
    if email is not None:
        found = (
            await db.execute(select(col(User.id)).where(func.lower(col(User.email)) == email.lower()))
        ).scalar()
        if found is not None and found != except_id:
            raise Conflict("user.email_taken", value=email)


async def update_user(
    db: AsyncSession,
    actor: Principal,
    user_id: int,
    data: schemas.UserUpdate,
    passwords: Passwords,
    ip: str = "",
) -> User:
    """Change a person's details; deactivation is how people leave (history stays)."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("user.not_found")
    fields = msgspec_fields(data)
    if user.id == actor.id and fields.get("active") is False:
        raise DomainError("user.cannot_deactivate_self", status_code=422)
    before = user_dict(user)
    if "email" in fields:
        await _ensure_unique(db, email=fields["email"], except_id=user.id)
        user.email = fields["email"].lower()
    if "unit_code" in fields:
        unit = await unit_by_code(db, fields["unit_code"])
        user.unit_id = unit.id if unit else None
    if "password" in fields:
        user.password_hash = passwords.hash(fields["password"])
    for name in ("name", "kana", "employment_type", "locale", "active"):
        if name in fields:
            setattr(user, name, fields[name])
    user.updated_at = utcnow()
    await _flush(db)
    audit.record(
        db,
        "user.update",
        actor_id=actor.id,
        entity_type="user",
        entity_id=user.id,
        before=before,
        after=user_dict(user),
        ip=ip,
    )
    return user


async def set_roles(
    db: AsyncSession, actor: Principal, user_id: int, roles: list[schemas.RoleIn], ip: str = ""
) -> list[schemas.RoleRead]:
    """Replace a person's role assignments; unit_head needs a unit, the others take none."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("user.not_found")
    wanted: set[tuple[str, int | None]] = set()
    for r in roles:
        if r.role == "unit_head":
            if r.unit_id is None:
                raise DomainError("role.unit_head_needs_unit", status_code=422)
            await get_unit(db, r.unit_id)
            wanted.add((r.role, r.unit_id))
        else:
            wanted.add((r.role, None))
    if user.id == actor.id and ("sysadmin", None) not in wanted and actor.has("sysadmin"):
        raise DomainError("role.cannot_drop_own_sysadmin", status_code=422)
    current = list(
        (await db.execute(select(RoleAssignment).where(col(RoleAssignment.user_id) == user_id))).scalars()
    )
    before = sorted(f"{ra.role}:{ra.unit_id or ''}" for ra in current)
    for ra in current:
        if (ra.role, ra.unit_id) not in wanted:
            await db.delete(ra)
    have = {(ra.role, ra.unit_id) for ra in current}
    for role, unit_id in sorted(wanted, key=lambda x: (x[0], x[1] or 0)):
        if (role, unit_id) not in have:
            db.add(RoleAssignment(user_id=user_id, role=role, unit_id=unit_id))
    await _flush(db)
    after = sorted(f"{r}:{u or ''}" for r, u in wanted)
    audit.record(
        db,
        "user.roles",
        actor_id=actor.id,
        entity_type="user",
        entity_id=user_id,
        before={"roles": before},
        after={"roles": after},
        ip=ip,
    )
    return (await roles_of(db, [user_id]))[user_id]


# ---------------------------------------------------------------- sign-in


async def load_principal(db: AsyncSession, user_id: int, session_id: str = "") -> Principal | None:
    """The signed-in person as guards see them, or None when the account is gone or deactivated."""
    user = await db.get(User, user_id)
    if user is None or not user.active:
        return None
    assignments = list(
        (await db.execute(select(RoleAssignment).where(col(RoleAssignment.user_id) == user_id))).scalars()
    )
    headed = [ra.unit_id for ra in assignments if ra.role == "unit_head" and ra.unit_id]
    return Principal(
        id=user.id or 0,
        employee_number=user.employee_number,
        name=user.name,
        locale=user.locale,
        roles=frozenset(ra.role for ra in assignments),
        unit_id=user.unit_id,
        scope_unit_ids=frozenset(await subtree_ids(db, headed)),
        session_id=session_id,
    )


async def find_login(db: AsyncSession, login: str) -> User | None:
    login = login.strip()
    return (
        await db.execute(
            select(User).where(
                or_(col(User.employee_number) == login, func.lower(col(User.email)) == login.lower())
            )
        )
    ).scalar_one_or_none()


async def local_login_allowed(db: AsyncSession, settings: Settings, user: User) -> bool:
    """With SSO on and LOCAL_LOGIN=admins, only break-glass sysadmins may use a password."""
    if not settings.sso_enabled or settings.local_login == "all":
        return True
    roles = (
        await db.execute(select(col(RoleAssignment.role)).where(col(RoleAssignment.user_id) == user.id))
    ).scalars()
    return "sysadmin" in set(roles)


async def authenticate(
    db: AsyncSession,
    counter: Counter,
    passwords: Passwords,
    settings: Settings,
    login: str,
    password: str,
    ip: str,
) -> User:
    """Check a local password with per-account and per-IP throttling; every attempt is audited."""
    account_key = "login-fail:acct:" + login.strip().lower()[:254]
    ip_key = "login-fail:ip:" + ip
    window = settings.login_lock_minutes * 60
    if await counter.count(account_key) >= settings.login_max_failures:
        audit.record(
            db, "auth.login.locked", actor_label=login, entity_type="account", entity_id=login, ip=ip
        )
        await db.commit()
        raise TooManyRequests("auth.locked", retry_after=await counter.ttl(account_key) or window)
    if await counter.count(ip_key) >= settings.login_ip_max_failures:
        audit.record(db, "auth.login.ip_throttled", actor_label=login, entity_type="ip", entity_id=ip, ip=ip)
        await db.commit()
        raise TooManyRequests("auth.ip_throttled", retry_after=await counter.ttl(ip_key) or window)
    user = await find_login(db, login)
    ok = passwords.verify(user.password_hash if user else None, password)
    if ok and user is not None and user.active and not await local_login_allowed(db, settings, user):
        audit.record(
            db,
            "auth.login.local_disabled",
            actor_id=user.id,
            actor_label=login,
            entity_type="user",
            entity_id=user.id,
            ip=ip,
        )
        await db.commit()
        raise Forbidden("auth.use_sso")
    if not ok or user is None or not user.active:
        failures = await counter.hit(account_key, window)
        await counter.hit(ip_key, window)
        audit.record(
            db,
            "auth.login.failure",
            actor_id=user.id if user else None,
            actor_label=login,
            entity_type="account",
            entity_id=login,
            after={
                "reason": "inactive" if (user and ok and not user.active) else "bad_credentials",
                "failures": failures,
            },
            ip=ip,
        )
        if failures >= settings.login_max_failures:
            audit.record(
                db, "auth.login.locked", actor_label=login, entity_type="account", entity_id=login, ip=ip
            )
        await db.commit()  # the refusal is an error response, but its audit events must stay
        raise DomainError("auth.bad_credentials", status_code=401)
    await counter.reset(account_key)
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash(password)
    user.last_login_at = utcnow()
    audit.record(
        db,
        "auth.login.success",
        actor_id=user.id,
        actor_label=user.employee_number,
        entity_type="user",
        entity_id=user.id,
        ip=ip,
    )
    return user


async def update_user_locale(db: AsyncSession, principal: Principal, locale: str) -> User:
    """A person's own language choice; audited like any other change."""
    user = await db.get(User, principal.id)
    if user is None:
        raise NotFound("user.not_found")
    if user.locale != locale:
        audit.record(
            db,
            "user.locale",
            actor_id=principal.id,
            entity_type="user",
            entity_id=user.id,
            before={"locale": user.locale},
            after={"locale": locale},
        )
        user.locale = locale
        user.updated_at = utcnow()
        await _flush(db)
    return user


async def unit_read_one(db: AsyncSession, unit: OrgUnit) -> schemas.UnitRead:
    return next(u for u in await list_units(db) if u.id == unit.id)


def as_tree(units: list[schemas.UnitRead]) -> list[tuple[int, schemas.UnitRead]]:
    """Units in depth-first order with their depth, for an indented tree view."""
    children: dict[int | None, list[schemas.UnitRead]] = {}
    ids = {u.id for u in units}
    for u in units:
        children.setdefault(u.parent_id if u.parent_id in ids else None, []).append(u)
    out: list[tuple[int, schemas.UnitRead]] = []

    def walk(parent: int | None, depth: int) -> None:
        for u in children.get(parent, []):
            out.append((depth, u))
            walk(u.id, depth + 1)

    walk(None, 0)
    return out
