"""Input and output shapes of the devices API. Secrets never appear in an output struct but RevealRead."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

Kind = Literal["laptop", "smartphone", "tablet", "router"]
DeviceStatus = Literal["in_stock", "on_loan", "in_repair", "lost", "retired"]
SettableStatus = Literal["in_stock", "in_repair", "retired"]
LineStatus = Literal["in_stock", "on_loan", "suspended", "cancelled"]
SimForm = Literal["standard", "micro", "nano", "esim"]
Condition = Literal["good", "worn", "damaged", "missing_parts"]
IncidentKind = Literal["lost", "stolen"]
Wanted = Literal["laptop", "smartphone", "tablet", "router", "line"]
Text100 = Annotated[str, msgspec.Meta(max_length=100)]
Text1000 = Annotated[str, msgspec.Meta(max_length=1000)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]
Yen = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error."""


class DeviceIn(Strict, kw_only=True):
    asset_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    kind: Kind
    serial: Annotated[str, msgspec.Meta(max_length=64)] = ""
    imei: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    maker: Annotated[str, msgspec.Meta(max_length=80)] = ""
    model: Annotated[str, msgspec.Meta(max_length=120)] = ""
    purchase_date: date | None = None
    cost: Yen | None = None
    warranty_end: date | None = None
    notes: Text1000 = ""


class StatusIn(Strict, kw_only=True):
    status: SettableStatus
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class DeviceRead(msgspec.Struct, kw_only=True):
    id: int
    asset_tag: str
    kind: str
    serial: str
    imei: str | None
    maker: str
    model: str
    status: str
    purchase_date: date | None
    cost: int | None
    warranty_end: date | None
    notes: str
    holder: str | None = None
    loan_id: int | None = None


class DeviceList(msgspec.Struct, kw_only=True):
    items: list[DeviceRead]
    total: int
    page: int
    per_page: int


class CarrierIn(Strict, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    mcc: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{3}$")]
    mnc: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2,3}$")]


class CarrierRead(msgspec.Struct, kw_only=True):
    id: int
    name: str
    mcc: str
    mnc: str


class PlanIn(Strict, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    carrier_id: Id | None = None
    monthly_fee: Yen = 0
    data_gb: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None


class PlanRead(msgspec.Struct, kw_only=True):
    id: int
    name: str
    carrier_id: int | None
    monthly_fee: int
    data_gb: int | None


class LineIn(Strict, kw_only=True):
    number: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    carrier_id: Id | None = None
    plan_id: Id | None = None
    contract_start: date | None = None
    min_term_end: date | None = None
    notice_days: Annotated[int, msgspec.Meta(ge=0, le=365)] = 30
    contract_end: date | None = None
    notes: Text1000 = ""


class LineRead(msgspec.Struct, kw_only=True):
    id: int
    number: str
    carrier_id: int | None
    carrier: str | None
    plan_id: int | None
    plan: str | None
    monthly_fee: int | None
    status: str
    contract_start: date | None
    min_term_end: date | None
    notice_days: int
    contract_end: date | None
    notice_deadline: date | None
    quarantine_until: date | None
    notes: str
    holder: str | None = None
    loan_id: int | None = None


class LineList(msgspec.Struct, kw_only=True):
    items: list[LineRead]
    total: int
    page: int
    per_page: int


class SimIn(Strict, kw_only=True):
    iccid: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    form_factor: SimForm = "nano"
    line_id: Id | None = None
    device_id: Id | None = None
    pin: Annotated[str, msgspec.Meta(max_length=12)] | None = None
    puk: Annotated[str, msgspec.Meta(max_length=12)] | None = None


class SimRead(msgspec.Struct, kw_only=True):
    id: int
    iccid: str
    form_factor: str
    line_id: int | None
    number: str | None
    device_id: int | None
    asset_tag: str | None
    has_pin: bool
    has_puk: bool


class SimList(msgspec.Struct, kw_only=True):
    items: list[SimRead]
    total: int
    page: int
    per_page: int


class RevealIn(Strict, kw_only=True):
    reason: Annotated[str, msgspec.Meta(min_length=5, max_length=500)]


class RevealRead(msgspec.Struct, kw_only=True):
    sim_id: int
    iccid: str
    pin: str | None
    puk: str | None
    revealed_at: datetime


class RevealLog(msgspec.Struct, kw_only=True):
    id: int
    sim_id: int
    iccid: str
    user_id: int
    user_name: str
    at: datetime
    reason: str


class LoanIn(Strict, kw_only=True):
    holder_id: Id
    device_ids: Annotated[list[Id], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    line_ids: Annotated[list[Id], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    expected_return: date | None = None
    telework_request_id: Id | None = None
    request_id: Id | None = None
    notes: Text1000 = ""


class AcceptIn(Strict, kw_only=True):
    terms_version: Annotated[str, msgspec.Meta(max_length=20)]
    agree: bool


class ReturnItemIn(Strict, kw_only=True):
    item_id: Id
    condition: Condition = "good"
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ReturnIn(Strict, kw_only=True):
    items: Annotated[list[ReturnItemIn], msgspec.Meta(max_length=40)] = msgspec.field(default_factory=list)
    notes: Text1000 = ""


class LoanItemRead(msgspec.Struct, kw_only=True):
    id: int
    device_id: int | None
    line_id: int | None
    label: str
    kind: str
    returned_at: datetime | None
    condition: str | None
    condition_note: str


class LoanRead(msgspec.Struct, kw_only=True):
    id: int
    holder_id: int
    holder_name: str
    holder_unit_id: int | None
    status: str
    overdue: bool
    out_at: datetime
    expected_return: date | None
    accepted_at: datetime | None
    terms_version: str | None
    returned_at: datetime | None
    telework_request_id: int | None
    notes: str
    return_notes: str
    items: list[LoanItemRead]


class LoanList(msgspec.Struct, kw_only=True):
    items: list[LoanRead]
    total: int
    page: int
    per_page: int


class IncidentIn(Strict, kw_only=True):
    kind: IncidentKind
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class IncidentRead(msgspec.Struct, kw_only=True):
    id: int
    device_id: int
    asset_tag: str
    line_id: int | None
    number: str | None
    loan_id: int | None
    kind: str
    description: str
    reported_at: datetime
    device_marked_at: datetime | None
    line_suspension_requested_at: datetime | None
    line_suspended_at: datetime | None
    closed_at: datetime | None


class RequestIn(Strict, kw_only=True):
    kinds: Annotated[list[Wanted], msgspec.Meta(min_length=1, max_length=5)]
    reason: Text1000 = ""
    needed_from: date | None = None
    needed_until: date | None = None
    telework_request_id: Id | None = None  # suggests the period: first to last approved day


class RequestAnswerIn(Strict, kw_only=True):
    status: Literal["fulfilled", "declined"]
    answer: Text1000 = ""
    loan_id: Id | None = None


class RequestRead(msgspec.Struct, kw_only=True):
    id: int
    user_id: int
    user_name: str
    kinds: list[str]
    reason: str
    needed_from: date | None
    needed_until: date | None
    telework_request_id: int | None
    status: str
    created_at: datetime
    answer: str
    loan_id: int | None


class StocktakeIn(Strict, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]


class ScanIn(Strict, kw_only=True):
    asset_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class StocktakeItem(msgspec.Struct, kw_only=True):
    asset_tag: str
    device_id: int | None
    kind: str | None
    status: str | None


class StocktakeRead(msgspec.Struct, kw_only=True):
    id: int
    name: str
    opened_at: datetime
    closed_at: datetime | None
    expected: int
    found: list[StocktakeItem]
    missing: list[StocktakeItem]
    unexpected: list[StocktakeItem]


class HistoryEntry(msgspec.Struct, kw_only=True):
    at: datetime
    action: str
    actor: str
    detail: dict[str, object]


class CountRow(msgspec.Struct, kw_only=True):
    kind: str
    status: str
    count: int


class DeadlineRow(msgspec.Struct, kw_only=True):
    line_id: int
    number: str
    notice_deadline: date | None
    contract_end: date | None
    plan: str | None


class CostRow(msgspec.Struct, kw_only=True):
    unit_id: int | None
    unit: str
    lines: int
    monthly_fee: int


class IdleRow(msgspec.Struct, kw_only=True):
    line_id: int
    number: str
    months: int
    holder: str | None


class Report(msgspec.Struct, kw_only=True):
    counts: list[CountRow]
    open_loans: int
    overdue: list[LoanRead]
    deadlines: list[DeadlineRow]
    costs: list[CostRow]
    idle: list[IdleRow]
    within_days: int
    idle_months: int
