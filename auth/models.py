"""People, the org tree and role assignments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import utcnow

UNIT_LEVELS = ("kyoku", "bu", "ka", "kakari")  # 局 / 部 / 課 / 係
EMPLOYMENT_TYPES = ("regular", "fixed_term", "part_time", "reappointed")


class OrgUnit(SQLModel, table=True):
    __tablename__ = "org_unit"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=100)
    level: str = Field(max_length=10)
    parent_id: int | None = Field(default=None, foreign_key="org_unit.id", index=True)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("oidc_iss", "oidc_sub", name="uq_app_user_oidc"),)

    id: int | None = Field(default=None, primary_key=True)
    employee_number: str = Field(max_length=20, unique=True, index=True)
    name: str = Field(max_length=100)
    kana: str = Field(default="", max_length=100)
    email: str = Field(max_length=254, unique=True, index=True)
    employment_type: str = Field(default="regular", max_length=20)
    locale: str = Field(default="ja", max_length=5)
    active: bool = Field(default=True)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id", index=True)
    password_hash: str | None = Field(default=None, max_length=255)
    oidc_iss: str | None = Field(default=None, max_length=255)
    oidc_sub: str | None = Field(default=None, max_length=255)
    last_login_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RoleAssignment(SQLModel, table=True):
    """A role held by a user; for unit_head, unit_id names the unit headed (scope = its subtree)."""

    __tablename__ = "role_assignment"
    __table_args__ = (UniqueConstraint("user_id", "role", "unit_id", name="uq_role_assignment"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    role: str = Field(max_length=20)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")
    created_at: datetime = Field(default_factory=utcnow)


class SsoClaimMapping(SQLModel, table=True):
    """Which ID-token claims carry what (one row; editable by sysadmin, defaults fit most providers)."""

    __tablename__ = "sso_claim_mapping"

    id: int | None = Field(default=None, primary_key=True)
    name_claim: str = Field(default="name", max_length=100)
    kana_claim: str = Field(default="", max_length=100)
    email_claim: str = Field(default="email", max_length=100)
    employee_number_claim: str = Field(default="employee_number", max_length=100)
    unit_claim: str = Field(default="unit_code", max_length=100)
    groups_claim: str = Field(default="groups", max_length=100)
    updated_at: datetime = Field(default_factory=utcnow)


class SsoRoleMapping(SQLModel, table=True):
    """An allow-listed group or app-role value from the provider and the role it grants here."""

    __tablename__ = "sso_role_mapping"
    __table_args__ = (UniqueConstraint("value", "role", name="uq_sso_role_mapping"),)

    id: int | None = Field(default=None, primary_key=True)
    value: str = Field(max_length=255, index=True)
    role: str = Field(max_length=20)


class SsoUnmappedValue(SQLModel, table=True):
    """A group or role value seen in tokens that maps to nothing, shown to admins so they can decide."""

    __tablename__ = "sso_unmapped_value"

    id: int | None = Field(default=None, primary_key=True)
    value: str = Field(max_length=255, unique=True)
    count: int = Field(default=1)
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
