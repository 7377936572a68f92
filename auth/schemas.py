"""Input and output shapes of the auth API (tables are never returned directly)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Role = Literal["employee", "unit_head", "it_admin", "hr_admin", "auditor", "sysadmin"]
Level = Literal["kyoku", "bu", "ka", "kakari"]
EmploymentType = Literal["regular", "fixed_term", "part_time", "reappointed"]
Locale = Literal["ja", "en"]

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Kana = Annotated[str, msgspec.Meta(max_length=100)]
EmployeeNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9-]+$")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
LoginId = Annotated[str, msgspec.Meta(min_length=1, max_length=254)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error, not silently dropped."""


class LoginIn(Strict, kw_only=True):
    login: LoginId
    password: Password


class RoleRead(msgspec.Struct, kw_only=True):
    role: Role
    unit_id: int | None = None


class RoleIn(Strict, kw_only=True):
    role: Role
    unit_id: Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)] | None = None


class RolesIn(Strict, kw_only=True):
    roles: Annotated[list[RoleIn], msgspec.Meta(max_length=50)]


class UnitBrief(msgspec.Struct, kw_only=True):
    id: int
    code: str
    name: str
    name_en: str


class UserRead(msgspec.Struct, kw_only=True):
    id: int
    employee_number: str
    name: str
    kana: str
    email: str
    employment_type: EmploymentType
    locale: Locale
    active: bool
    unit: UnitBrief | None
    roles: list[RoleRead]
    sso_linked: bool
    last_login_at: datetime | None


class UserCreate(Strict, kw_only=True):
    employee_number: EmployeeNumber
    name: Name
    kana: Kana = ""
    email: Email
    employment_type: EmploymentType = "regular"
    locale: Locale = "ja"
    unit_code: Code | None = None
    password: Annotated[str, msgspec.Meta(min_length=12, max_length=256)] | None = None


class UserUpdate(Strict, kw_only=True):
    name: Name | None = None
    kana: Kana | None = None
    email: Email | None = None
    employment_type: EmploymentType | None = None
    locale: Locale | None = None
    unit_code: Code | None = None
    active: bool | None = None
    password: Annotated[str, msgspec.Meta(min_length=12, max_length=256)] | None = None


class MeUpdate(Strict, kw_only=True):
    locale: Locale


class UnitRead(msgspec.Struct, kw_only=True):
    id: int
    code: str
    name: str
    name_en: str
    level: Level
    parent_id: int | None
    parent_code: str | None
    active: bool
    head: list[str]
    member_count: int


class UnitCreate(Strict, kw_only=True):
    code: Code
    name: Name
    name_en: Annotated[str, msgspec.Meta(max_length=100)] = ""
    level: Level
    parent_code: Code | None = None


class UnitUpdate(Strict, kw_only=True):
    name: Name | None = None
    name_en: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    level: Level | None = None
    parent_code: Code | None = None
    active: bool | None = None


class MeRead(msgspec.Struct, kw_only=True):
    id: int
    employee_number: str
    name: str
    kana: str
    email: str
    locale: Locale
    roles: list[RoleRead]
    unit: UnitBrief | None
    scope_unit_ids: list[int]


class UserPage(msgspec.Struct, kw_only=True):
    items: list[UserRead]
    total: int
    limit: int
    offset: int


class UnitList(msgspec.Struct, kw_only=True):
    items: list[UnitRead]
    total: int
