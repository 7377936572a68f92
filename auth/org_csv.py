"""CSV import and export of org units and people, so HR can keep the org chart in Excel. No HTTP here."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.csvutil import excel_csv, read_records, unguard
from app.db import utcnow
from app.errors import Conflict, DomainError
from app.security import ROLES, Principal
from auth.models import EMPLOYMENT_TYPES, UNIT_LEVELS, OrgUnit, RoleAssignment, User
from auth.services import unit_dict, user_dict

Kind = Literal["units", "users"]
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000

# Every accepted header per column: the English name itself, then Japanese ones (the first is used on export).
COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "units": {
        "code": ("組織コード", "コード"),
        "name": ("組織名", "名称"),
        "name_en": ("組織名（英語）", "英語名", "英語名称"),
        "level": ("階層", "区分"),
        "parent_code": ("上位組織コード", "親組織コード", "上位コード"),
        "active": ("有効",),
    },
    "users": {
        "employee_number": ("職員番号",),
        "name": ("氏名",),
        "kana": ("ふりがな", "かな", "フリガナ", "カナ"),
        "email": ("メールアドレス", "メール"),
        "employment_type": ("任用形態",),
        "unit_code": ("所属コード", "組織コード"),
        "locale": ("言語",),
        "active": ("在籍", "有効"),
        "roles": ("役割", "ロール"),
    },
}
REQUIRED = {"units": ("code", "name", "level"), "users": ("employee_number", "name", "email")}

# Accepted cell values (matched after _norm) and what they mean.
LEVELS = {lv: lv for lv in UNIT_LEVELS} | dict(zip("局部課係", UNIT_LEVELS, strict=True))
JA_EMPLOYMENT = ("正規職員", "会計年度任用職員", "短時間勤務職員", "再任用職員")
EMPLOYMENT = {e: e for e in EMPLOYMENT_TYPES} | dict(zip(JA_EMPLOYMENT, EMPLOYMENT_TYPES, strict=True))
LOCALES = {"ja": "ja", "en": "en", "日本語": "ja", "英語": "en", "english": "en", "japanese": "ja"}
ACTIVE = {w: True for w in ("true", "1", "yes", "有効", "在籍", "○")} | {
    w: False for w in ("false", "0", "no", "無効", "退職", "×")
}
CODE_RE = re.compile(r"[A-Za-z0-9_-]+")
NUMBER_RE = re.compile(r"[A-Za-z0-9-]+")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _limit(model: Any, name: str) -> int:
    return int(model.__table__.c[name].type.length)


CODE_LEN, UNIT_NAME_LEN, NAME_EN_LEN = (_limit(OrgUnit, c) for c in ("code", "name", "name_en"))
NUMBER_LEN, USER_NAME_LEN, KANA_LEN, EMAIL_LEN = (
    _limit(User, c) for c in ("employee_number", "name", "kana", "email")
)


class RowError(msgspec.Struct, kw_only=True):
    row: int
    field: str
    code: str
    message: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class ImportReport(msgspec.Struct, kw_only=True):
    kind: str
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: list[RowError]


def row_error(row: int, name: str, key: str, **params: Any) -> dict[str, Any]:
    """Same shape as DomainError.errors, so app.errors.describe translates the message key."""
    return {"row": row, "field": name, "code": key, "message": key, "params": params}


def _norm(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", unicodedata.normalize("NFKC", text).strip().casefold())


# ---------------------------------------------------------------- reading a file


def decode(data: bytes) -> str:
    """Text of an upload: UTF-8 with or without BOM, else Shift_JIS as Japanese Excel saves it (cp932)."""
    if len(data) > MAX_BYTES:
        raise DomainError("csv.too_large", status_code=413, max_mb=MAX_BYTES // (1024 * 1024))
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise DomainError("csv.spreadsheet", status_code=415)
    if b"\x00" in data:
        raise DomainError("csv.binary", status_code=415)
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if any(ch < " " and ch not in "\t\r\n" for ch in text):
            raise DomainError("csv.binary", status_code=415)
        return text
    raise DomainError("csv.encoding", status_code=422)


@dataclass
class Sheet:
    """A parsed file: data rows as {column: value} with the file line each starts on."""

    columns: list[str]
    records: int = 0
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


_cell = unguard


def parse(text: str, kind: Kind) -> Sheet:
    """Rows of a CSV text; a broken file or header is an error for the whole file."""
    records = read_records(text, MAX_ROWS)
    header_line, header = records[0]
    sheet = Sheet(columns=_header(header_line, header, kind), records=len(records) - 1)
    for start, cells in records[1:]:
        if len(cells) != len(sheet.columns):
            sheet.errors.append(
                row_error(start, "", "csv.column_count", expected=len(sheet.columns), got=len(cells))
            )
            continue
        sheet.rows.append((start, {col: _cell(v) for col, v in zip(sheet.columns, cells, strict=True)}))
    return sheet


def _header(line: int, cells: list[str], kind: Kind) -> list[str]:
    lookup = {_norm(alias): col for col, aliases in COLUMNS[kind].items() for alias in (col, *aliases)}
    errors: list[dict[str, Any]] = []
    columns: list[str] = []
    for cell in cells:
        col = lookup.get(_norm(cell))
        if col is None:
            errors.append(row_error(line, "", "csv.unknown_column", column=cell.strip()[:50]))
        elif col in columns:
            errors.append(row_error(line, col, "csv.duplicate_column", column=cell.strip()[:50]))
        columns.append(col or "")
    errors += [
        row_error(line, c, "csv.missing_column", column=f"{c} / {COLUMNS[kind][c][0]}")
        for c in REQUIRED[kind]
        if c not in columns
    ]
    if errors:
        raise DomainError("csv.bad_header", status_code=422, errors=errors)
    return columns


@dataclass
class Checker:
    """Validates one row's cells; None means 'column not in the file, or left empty where that means keep'."""

    line: int
    cells: dict[str, str]
    errors: list[dict[str, Any]]

    def fail(self, name: str, key: str, **params: Any) -> None:
        self.errors.append(row_error(self.line, name, key, **params))

    def text(
        self, name: str, limit: int, *, required: bool = False, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        if name not in self.cells:
            return None
        value = self.cells[name]
        if not value:
            if required:
                self.fail(name, "csv.required")
                return None
            return ""
        if len(value) > limit:
            self.fail(name, "csv.too_long", max=limit)
        elif pattern is not None and not pattern.fullmatch(value):
            self.fail(name, f"csv.invalid_{name}")
        return value

    def choice(self, name: str, table: dict[str, Any], *, required: bool = False) -> Any:
        value = self.cells.get(name, "")
        if not value:
            if required:
                self.fail(name, "csv.required")
            return None
        found = table.get(_norm(value))
        if found is None:
            self.fail(name, "csv.invalid_choice", value=value[:50])
        return found


def _report(
    kind: str, dry_run: bool, rows: int, status: dict[str, str], errors: list[dict[str, Any]]
) -> ImportReport:
    counts = {k: sum(1 for s in status.values() if s == k) for k in ("created", "updated", "unchanged")}
    errors.sort(key=lambda e: (e["row"], e["field"]))
    return ImportReport(
        kind=kind, dry_run=dry_run, rows=rows, errors=[RowError(**e) for e in errors], **counts
    )


async def _flush(db: AsyncSession) -> None:
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("error.conflict") from exc


def _audit(
    db: AsyncSession, actor: Principal, ip: str, action: str, entity: str, entity_id: Any, **change: Any
) -> None:
    audit.record(db, action, actor_id=actor.id, entity_type=entity, entity_id=entity_id, ip=ip, **change)


def _summary(db: AsyncSession, actor: Principal, report: ImportReport, ip: str) -> None:
    after = {k: v for k, v in msgspec.structs.asdict(report).items() if k not in ("errors", "dry_run")}
    _audit(db, actor, ip, "org.import", "org_import", report.kind, after=after)


# ---------------------------------------------------------------- units


@dataclass
class UnitRow:
    line: int
    code: str
    name: str
    name_en: str | None
    level: str
    parent_code: str | None  # None: keep (column absent); "": top level
    active: bool | None


async def import_units(
    db: AsyncSession, actor: Principal, data: bytes, *, dry_run: bool = True, ip: str = ""
) -> ImportReport:
    """Upsert units by code; parents may come later in the file; any error or a dry run writes nothing."""
    sheet = parse(decode(data), "units")
    errors = sheet.errors
    existing = {u.code: u for u in (await db.execute(select(OrgUnit))).scalars()}
    code_of = {u.id: u.code for u in existing.values()}
    rows: dict[str, UnitRow] = {}
    for line, cells in sheet.rows:
        c = Checker(line, cells, errors)
        code = c.text("code", CODE_LEN, required=True, pattern=CODE_RE)
        name = c.text("name", UNIT_NAME_LEN, required=True)
        name_en = c.text("name_en", NAME_EN_LEN)
        level = c.choice("level", LEVELS, required=True)
        parent = c.text("parent_code", CODE_LEN)
        active = c.choice("active", ACTIVE)
        if code and code in rows:
            c.fail("code", "csv.duplicate", value=code, first=rows[code].line)
        elif code:
            rows[code] = UnitRow(line, code, name or "", name_en, level or "", parent, active)

    def parent_of(code: str) -> str | None:
        row = rows.get(code)
        if row is not None and row.parent_code is not None:
            return row.parent_code or None
        unit = existing.get(code)
        return code_of.get(unit.parent_id) if unit is not None and unit.parent_id else None

    rooted: set[str] = set()
    for row in rows.values():
        if row.parent_code and row.parent_code not in rows and row.parent_code not in existing:
            errors.append(row_error(row.line, "parent_code", "csv.unknown_unit", value=row.parent_code))
            continue
        path: list[str] = []
        cur: str | None = row.code
        while cur is not None and cur not in rooted and cur not in path:
            path.append(cur)
            cur = parent_of(cur)
        if cur is not None and cur in path:
            if cur == row.code:
                errors.append(row_error(row.line, "parent_code", "csv.cycle", value=row.code))
        else:
            rooted.update(path)

    def changed(unit: OrgUnit, row: UnitRow) -> bool:
        return (
            (unit.name, unit.level) != (row.name, row.level)
            or (row.name_en is not None and row.name_en != unit.name_en)
            or (row.active is not None and row.active != unit.active)
            or (row.parent_code is not None and (row.parent_code or None) != code_of.get(unit.parent_id))
        )

    status = {
        c: "updated" if changed(existing[c], r) else "unchanged" for c, r in rows.items() if c in existing
    }
    status |= {c: "created" for c in rows if c not in existing}
    report = _report("units", dry_run, sheet.records, status, errors)
    if errors or dry_run:
        return report

    order: list[str] = []  # parents before children, so new parents get their id first
    placed: set[str] = set()
    for code in rows:
        chain: list[str] = []
        cur = code
        while cur in rows and cur not in placed:
            chain.append(cur)
            placed.add(cur)
            cur = rows[cur].parent_code or ""
        order.extend(reversed(chain))
    touched: list[tuple[OrgUnit, dict[str, Any] | None]] = []
    for code in order:
        row, unit = rows[code], existing.get(code)
        if status[code] == "unchanged":
            continue
        parent_unit = existing.get(row.parent_code) if row.parent_code else None
        if parent_unit is not None and parent_unit.id is None:
            await _flush(db)
        before = unit_dict(unit) if unit is not None else None
        if unit is None:
            unit = existing[code] = OrgUnit(code=code, name=row.name, level=row.level)
            db.add(unit)
        unit.name, unit.level, unit.updated_at = row.name, row.level, utcnow()
        if row.name_en is not None:
            unit.name_en = row.name_en
        if row.active is not None:
            unit.active = row.active
        if row.parent_code is not None:
            unit.parent_id = parent_unit.id if parent_unit is not None else None
        touched.append((unit, before))
    await _flush(db)
    for unit, before in touched:
        _audit(db, actor, ip, "org.unit.import", "org_unit", unit.id, before=before, after=unit_dict(unit))
    _summary(db, actor, report, ip)
    await _flush(db)
    return report


# ---------------------------------------------------------------- people


@dataclass
class UserRow:
    line: int
    name: str
    kana: str | None
    email: str
    employment: str | None
    unit_code: str | None  # None: keep (column absent); "": no unit
    locale: str | None
    active: bool | None
    roles: set[tuple[str, int | None]]
    current_roles: set[tuple[str, int | None]]


def _role_names(c: Checker) -> list[str] | None:
    value = unicodedata.normalize("NFKC", c.cells.get("roles", "")).strip()
    if not value:
        return None
    names = [n.casefold() for n in re.split(r"[\s;]+", value)]
    for name in names:
        if name not in ROLES:
            c.fail("roles", "csv.unknown_role", value=name[:30])
    return names


def _user_audit(user: User, roles: set[tuple[str, int | None]]) -> dict[str, Any]:
    return user_dict(user) | {"roles": sorted(f"{r}:{u or ''}" for r, u in roles)}


async def import_users(
    db: AsyncSession, actor: Principal, data: bytes, *, dry_run: bool = True, ip: str = ""
) -> ImportReport:
    """Upsert people by employee number; only sysadmins change roles; an error or a dry run writes nothing."""
    sheet = parse(decode(data), "users")
    errors = sheet.errors
    units = {u.code: u for u in (await db.execute(select(OrgUnit))).scalars()}
    users = {u.employee_number: u for u in (await db.execute(select(User))).scalars()}
    email_owner = {u.email.lower(): number for number, u in users.items()}
    assignments: dict[int, list[RoleAssignment]] = {}
    for ra in (await db.execute(select(RoleAssignment))).scalars():
        assignments.setdefault(ra.user_id, []).append(ra)
    rows: dict[str, UserRow] = {}
    first_email: dict[str, int] = {}
    for line, cells in sheet.rows:
        c = Checker(line, cells, errors)
        number = c.text("employee_number", NUMBER_LEN, required=True, pattern=NUMBER_RE)
        name = c.text("name", USER_NAME_LEN, required=True)
        kana = c.text("kana", KANA_LEN)
        email = (c.text("email", EMAIL_LEN, required=True, pattern=EMAIL_RE) or "").lower()
        employment = c.choice("employment_type", EMPLOYMENT)
        unit_code = c.text("unit_code", CODE_LEN)
        locale = c.choice("locale", LOCALES)
        active = c.choice("active", ACTIVE)
        names = _role_names(c)
        if unit_code and unit_code not in units:
            c.fail("unit_code", "csv.unknown_unit", value=unit_code)
        if email in first_email:
            c.fail("email", "csv.duplicate", value=email, first=first_email[email])
        elif email:
            first_email[email] = line
            if email_owner.get(email, number) != number:
                c.fail("email", "csv.email_taken", value=email)
        if not number:
            continue
        if number in rows:
            c.fail("employee_number", "csv.duplicate", value=number, first=rows[number].line)
            continue
        user = users.get(number)
        own_unit = user.unit_id if user is not None else None
        if unit_code is not None:
            own_unit = units[unit_code].id if unit_code in units else None
        current: set[tuple[str, int | None]] = (
            {(a.role, a.unit_id) for a in assignments.get(user.id or 0, [])} if user else {("employee", None)}
        )
        wanted = current
        moved = user is not None and own_unit != user.unit_id
        if names is not None and (set(names) != {r for r, _ in current} or moved):
            wanted = {(r, own_unit if r == "unit_head" else None) for r in names}
            if "unit_head" in names and own_unit is None:
                c.fail("roles", "csv.unit_head_needs_unit")
            if wanted != current and not actor.has("sysadmin"):
                c.fail("roles", "csv.roles_need_sysadmin")
        if user is not None and user.id == actor.id:
            if ("sysadmin", None) in current - wanted:
                c.fail("roles", "csv.cannot_drop_own_sysadmin")
            if active is False:
                c.fail("active", "csv.cannot_deactivate_self")
        rows[number] = UserRow(
            line, name or "", kana, email, employment, unit_code, locale, active, wanted, current
        )

    def unit_id(row: UserRow, user: User) -> int | None:
        if row.unit_code is None:
            return user.unit_id
        return units[row.unit_code].id if row.unit_code else None

    def changed(user: User, row: UserRow) -> bool:
        keep = (row.kana, row.employment, row.locale, row.active)
        now = (user.kana, user.employment_type, user.locale, user.active)
        return (
            (user.name, user.email.lower(), user.unit_id) != (row.name, row.email, unit_id(row, user))
            or any(new is not None and new != old for new, old in zip(keep, now, strict=True))
            or row.roles != row.current_roles
        )

    status = {n: "updated" if changed(users[n], r) else "unchanged" for n, r in rows.items() if n in users}
    status |= {n: "created" for n in rows if n not in users}
    report = _report("users", dry_run, sheet.records, status, errors)
    if errors or dry_run:
        return report

    touched: list[tuple[User, UserRow, dict[str, Any] | None]] = []
    for number, row in rows.items():
        if status[number] == "unchanged":
            continue
        user = users.get(number)
        before = _user_audit(user, row.current_roles) if user is not None else None
        if user is None:
            user = User(employee_number=number, name=row.name, email=row.email)
            db.add(user)
        user.unit_id = unit_id(row, user)
        user.name, user.email = row.name, row.email
        optional = {
            "kana": row.kana,
            "employment_type": row.employment,
            "locale": row.locale,
            "active": row.active,
        }
        for attr, value in optional.items():
            if value is not None:
                setattr(user, attr, value)
        user.updated_at = utcnow()
        touched.append((user, row, before))
    await _flush(db)
    for user, row, before in touched:
        have = {(ra.role, ra.unit_id): ra for ra in assignments.get(user.id or 0, [])} if before else {}
        for key, ra in have.items():
            if key not in row.roles:
                await db.delete(ra)
        for role, unit in sorted(row.roles - have.keys(), key=lambda r: (r[0], r[1] or 0)):
            db.add(RoleAssignment(user_id=user.id or 0, role=role, unit_id=unit))
        _audit(
            db, actor, ip, "user.import", "user", user.id, before=before, after=_user_audit(user, row.roles)
        )
    _summary(db, actor, report, ip)
    await _flush(db)
    return report


# ---------------------------------------------------------------- export


def _csv(kind: Kind, lang: str, rows: list[list[str]]) -> bytes:
    return excel_csv([aliases[0] if lang == "ja" else col for col, aliases in COLUMNS[kind].items()], rows)


def _flag(value: bool) -> str:
    return "true" if value else "false"


async def export_units(db: AsyncSession, lang: str = "ja") -> bytes:
    """Every unit in the import's columns, so the file re-imports unchanged."""
    units = list((await db.execute(select(OrgUnit).order_by(OrgUnit.code))).scalars())
    code_of = {u.id: u.code for u in units}
    rows = [
        [u.code, u.name, u.name_en, u.level, code_of.get(u.parent_id, ""), _flag(u.active)] for u in units
    ]
    return _csv("units", lang, rows)


async def export_users(db: AsyncSession, lang: str = "ja") -> bytes:
    """Every person (inactive too) in the import's columns, so the file re-imports unchanged."""
    code_of = {u.id: u.code for u in (await db.execute(select(OrgUnit))).scalars()}
    roles: dict[int, set[str]] = {}
    for ra in (await db.execute(select(RoleAssignment))).scalars():
        roles.setdefault(ra.user_id, set()).add(ra.role)
    users = (await db.execute(select(User).order_by(User.employee_number))).scalars()

    def cells(u: User) -> list[str]:
        own = roles.get(u.id or 0, set())
        first = [u.employee_number, u.name, u.kana, u.email, u.employment_type, code_of.get(u.unit_id, "")]
        return [*first, u.locale, _flag(u.active), " ".join(r for r in ROLES if r in own)]

    return _csv("users", lang, [cells(u) for u in users])
