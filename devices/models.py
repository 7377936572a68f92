"""Devices, SIM cards, mobile lines and the loans that hand them to people.

An item is in at most one open loan: each open loan item holds an ``open_key`` ("device:12", "line:7")
under a unique constraint, cleared when the item comes back. Two checkouts racing for the same item
cannot both commit, whatever the workers in front of the database believe.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import utcnow

DEVICE_KINDS = ("laptop", "smartphone", "tablet", "router")
DEVICE_STATUSES = ("in_stock", "on_loan", "in_repair", "lost", "retired")
LINE_STATUSES = ("in_stock", "on_loan", "suspended", "cancelled")
SIM_FORMS = ("standard", "micro", "nano", "esim")
LOAN_STATUSES = ("awaiting_acceptance", "active", "returned")
CONDITIONS = ("good", "worn", "damaged", "missing_parts")
INCIDENT_KINDS = ("lost", "stolen")
REQUEST_STATUSES = ("open", "fulfilled", "declined", "cancelled")


class Device(SQLModel, table=True):
    __tablename__ = "device"

    id: int | None = Field(default=None, primary_key=True)
    asset_tag: str = Field(max_length=32, unique=True)
    serial: str = Field(default="", max_length=64, index=True)
    imei: str | None = Field(default=None, max_length=15, unique=True)
    kind: str = Field(max_length=12, index=True)
    maker: str = Field(default="", max_length=80)
    model: str = Field(default="", max_length=120)
    status: str = Field(default="in_stock", max_length=12, index=True)
    purchase_date: date | None = None
    cost: int | None = None  # yen, tax included
    warranty_end: date | None = None
    notes: str = Field(default="", max_length=1000)
    # Lower-case tag, serial, IMEI, maker and model: one column to scan for a free-text search.
    search: str = Field(default="", max_length=400)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Carrier(SQLModel, table=True):
    __tablename__ = "device_carrier"
    __table_args__ = (UniqueConstraint("mcc", "mnc", name="uq_device_carrier_mcc_mnc"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    mcc: str = Field(max_length=3)
    mnc: str = Field(max_length=3)


class Plan(SQLModel, table=True):
    __tablename__ = "device_plan"

    id: int | None = Field(default=None, primary_key=True)
    carrier_id: int | None = Field(default=None, foreign_key="device_carrier.id", index=True)
    name: str = Field(max_length=100, unique=True)
    monthly_fee: int = 0  # yen
    data_gb: int | None = None  # None: unlimited


class Line(SQLModel, table=True):
    """A mobile data or voice line: the number, its contract, and when it may be handed out again."""

    __tablename__ = "device_line"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=16, unique=True)  # E.164, e.g. +819012345678
    carrier_id: int | None = Field(default=None, foreign_key="device_carrier.id", index=True)
    plan_id: int | None = Field(default=None, foreign_key="device_plan.id", index=True)
    status: str = Field(default="in_stock", max_length=12, index=True)
    contract_start: date | None = None
    min_term_end: date | None = None
    notice_days: int = 30
    contract_end: date | None = None
    quarantine_until: date | None = None  # a released number is not handed to someone else before this
    notes: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SimCard(SQLModel, table=True):
    """A SIM; PIN and PUK are stored encrypted and only ever shown through a logged reveal."""

    __tablename__ = "device_sim"

    id: int | None = Field(default=None, primary_key=True)
    iccid: str = Field(max_length=20, unique=True)
    form_factor: str = Field(default="nano", max_length=10)
    line_id: int | None = Field(default=None, foreign_key="device_line.id", index=True)
    device_id: int | None = Field(default=None, foreign_key="device.id", index=True)
    pin_enc: str | None = Field(default=None, sa_column=Column(Text))
    puk_enc: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SecretReveal(SQLModel, table=True):
    """Who saw a SIM's PIN/PUK, when, and why."""

    __tablename__ = "device_secret_reveal"

    id: int | None = Field(default=None, primary_key=True)
    sim_id: int = Field(foreign_key="device_sim.id", index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    reason: str = Field(max_length=500)


class Loan(SQLModel, table=True):
    """A bundle of devices and lines lent to one holder, accepted once as a whole."""

    __tablename__ = "device_loan"

    id: int | None = Field(default=None, primary_key=True)
    holder_id: int = Field(foreign_key="app_user.id", index=True)
    holder_unit_id: int | None = Field(default=None, foreign_key="org_unit.id", index=True)
    status: str = Field(default="awaiting_acceptance", max_length=20, index=True)
    telework_request_id: int | None = None
    out_at: datetime = Field(default_factory=utcnow)
    expected_return: date | None = Field(default=None, index=True)
    accepted_at: datetime | None = None
    terms_version: str | None = Field(default=None, max_length=20)
    returned_at: datetime | None = None
    checked_out_by: int | None = Field(default=None, foreign_key="app_user.id")
    returned_by: int | None = Field(default=None, foreign_key="app_user.id")
    notes: str = Field(default="", max_length=1000)
    return_notes: str = Field(default="", max_length=1000)


class LoanItem(SQLModel, table=True):
    __tablename__ = "device_loan_item"

    id: int | None = Field(default=None, primary_key=True)
    loan_id: int = Field(foreign_key="device_loan.id", index=True)
    device_id: int | None = Field(default=None, foreign_key="device.id", index=True)
    line_id: int | None = Field(default=None, foreign_key="device_line.id", index=True)
    # "device:<id>" or "line:<id>" while the loan is open, NULL after: the one-open-loan rule.
    open_key: str | None = Field(default=None, max_length=24, unique=True)
    returned_at: datetime | None = None
    condition: str | None = Field(default=None, max_length=16)
    condition_note: str = Field(default="", max_length=500)


class Incident(SQLModel, table=True):
    """A lost or stolen device: each step of the response gets its own timestamp."""

    __tablename__ = "device_incident"

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    line_id: int | None = Field(default=None, foreign_key="device_line.id")
    loan_id: int | None = Field(default=None, foreign_key="device_loan.id")
    kind: str = Field(max_length=10)
    description: str = Field(default="", max_length=2000)
    reported_by: int | None = Field(default=None, foreign_key="app_user.id")
    reported_at: datetime = Field(default_factory=utcnow)
    device_marked_at: datetime | None = None
    line_suspension_requested_at: datetime | None = None
    line_suspended_at: datetime | None = None
    closed_at: datetime | None = None


class EquipmentRequest(SQLModel, table=True):
    """An employee asks IT for equipment; IT works the queue and answers with a loan or a reason."""

    __tablename__ = "device_request"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    kinds: str = Field(max_length=60)  # comma-separated device kinds and/or "line"
    reason: str = Field(default="", max_length=1000)
    needed_from: date | None = None
    needed_until: date | None = None
    telework_request_id: int | None = None  # the person's approved telework request (scheduling)
    status: str = Field(default="open", max_length=10, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    handled_by: int | None = Field(default=None, foreign_key="app_user.id")
    handled_at: datetime | None = None
    loan_id: int | None = Field(default=None, foreign_key="device_loan.id")
    answer: str = Field(default="", max_length=1000)


class Stocktake(SQLModel, table=True):
    __tablename__ = "device_stocktake"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    opened_by: int | None = Field(default=None, foreign_key="app_user.id")
    opened_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None


class StocktakeScan(SQLModel, table=True):
    __tablename__ = "device_stocktake_scan"
    __table_args__ = (UniqueConstraint("stocktake_id", "asset_tag", name="uq_device_stocktake_scan"),)

    id: int | None = Field(default=None, primary_key=True)
    stocktake_id: int = Field(foreign_key="device_stocktake.id", index=True)
    asset_tag: str = Field(max_length=32)
    device_id: int | None = Field(default=None, foreign_key="device.id")
    scanned_by: int | None = Field(default=None, foreign_key="app_user.id")
    scanned_at: datetime = Field(default_factory=utcnow)


class UsageRecord(SQLModel, table=True):
    """Data used by one line in one month, from the carrier's monthly CSV."""

    __tablename__ = "device_line_usage"
    __table_args__ = (
        UniqueConstraint("line_id", "month", name="uq_device_line_usage"),
        Index("ix_device_line_usage_month", "month"),
    )

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="device_line.id")
    month: date  # first day of the month
    data_mb: int = 0
