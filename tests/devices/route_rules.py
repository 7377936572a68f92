"""Role rules for `devices` routes, merged into tests/test_route_roles.py's TABLE.

Bodies are deliberately incomplete so an allowed role gets a 400/422 and nothing changes between roles.
Loans and SIMs belong to the demo employee (100012); unit heads see loans of their units only.
"""

from __future__ import annotations

from typing import Any

from tests.route_rule import SIGNED_IN, Rule, page

IT = ("it_admin", "sysadmin")
READERS = ("it_admin", "sysadmin", "auditor")
LOAN_PAGES = (*READERS, "unit_head")

RULES: dict[tuple[str, str], Rule] = {
    # API: inventory
    ("GET", "/api/devices/items"): Rule(READERS),
    ("POST", "/api/devices/items"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/items/{device_id:int}"): Rule(READERS),
    ("PUT", "/api/devices/items/{device_id:int}"): Rule(IT, ok=400, body={}),
    ("POST", "/api/devices/items/{device_id:int}/status"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/items/{device_id:int}/history"): Rule(READERS),
    ("POST", "/api/devices/items/{device_id:int}/lost"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/items.csv"): Rule(READERS),
    ("GET", "/api/devices/carriers"): Rule(READERS),
    ("POST", "/api/devices/carriers"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/plans"): Rule(READERS),
    ("POST", "/api/devices/plans"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/lines"): Rule(READERS),
    ("POST", "/api/devices/lines"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/lines/{line_id:int}"): Rule(READERS),
    ("PUT", "/api/devices/lines/{line_id:int}"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/lines/{line_id:int}/history"): Rule(READERS),
    ("GET", "/api/devices/lines.csv"): Rule(READERS),
    ("GET", "/api/devices/sims"): Rule(READERS),
    ("POST", "/api/devices/sims"): Rule(IT, ok=400, body={}),
    ("PUT", "/api/devices/sims/{sim_id:int}"): Rule(IT, ok=400, body={}),
    # Only IT administrators may see a PIN: not even sysadmins or auditors.
    ("POST", "/api/devices/sims/{sim_id:int}/reveal"): Rule(("it_admin",), ok=400, body={}),
    ("GET", "/api/devices/reveals"): Rule(("it_admin", "auditor", "sysadmin")),
    ("GET", "/api/devices/sims.csv"): Rule(READERS),
    ("POST", "/api/devices/import/{kind:str}"): Rule(IT, ok=415, form={}),  # not multipart
    # API: loans, requests, incidents, stocktakes, reports
    ("GET", "/api/devices/loans"): Rule(SIGNED_IN),
    ("POST", "/api/devices/loans"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/loans/{loan_id:int}"): Rule((*READERS, "employee"), denied=404),
    ("POST", "/api/devices/loans/{loan_id:int}/accept"): Rule(SIGNED_IN, ok=400, body={}),
    ("POST", "/api/devices/loans/{loan_id:int}/return"): Rule(IT, ok=400, body={"items": "x"}),
    ("GET", "/api/devices/mine"): Rule(SIGNED_IN),
    ("POST", "/api/devices/requests"): Rule(SIGNED_IN, ok=400, body={}),
    ("GET", "/api/devices/requests"): Rule(IT),
    ("POST", "/api/devices/requests/{request_id:int}/answer"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/incidents"): Rule(READERS),
    ("POST", "/api/devices/incidents/{incident_id:int}/line-suspended"): Rule(IT, ok=404),
    ("POST", "/api/devices/incidents/{incident_id:int}/close"): Rule(IT, ok=404),
    ("POST", "/api/devices/stocktakes"): Rule(IT, ok=400, body={}),
    ("GET", "/api/devices/stocktakes/{stocktake_id:int}"): Rule(READERS),
    ("POST", "/api/devices/stocktakes/{stocktake_id:int}/scans"): Rule(IT, ok=400, body={}),
    # it_admin closes the sample stocktake; sysadmin, coming later, finds it closed.
    ("POST", "/api/devices/stocktakes/{stocktake_id:int}/close"): Rule(IT, overrides={"sysadmin": 409}),
    ("GET", "/api/devices/reports"): Rule(READERS),
    # Pages
    ("GET", "/devices/mine"): page(*SIGNED_IN),
    ("POST", "/devices/mine/requests"): Rule(SIGNED_IN, ok=422, form={}),
    # The sample request is the employee's own: they withdraw it; for anyone else it does not exist.
    ("POST", "/devices/requests/{request_id:int}/cancel"): Rule(
        SIGNED_IN, ok=404, form={}, overrides={"employee": 303}
    ),
    # The holder must tick the box (422); IT and auditors see the loan but may not accept it (403).
    ("POST", "/devices/loans/{loan_id:int}/accept"): Rule(
        SIGNED_IN,
        ok=404,
        form={},
        overrides={"employee": 422, "it_admin": 403, "sysadmin": 403, "auditor": 403},
    ),
    ("GET", "/devices/inventory"): page(*READERS),
    ("POST", "/devices/inventory"): Rule(IT, ok=422, form={}),
    ("GET", "/devices/items/{device_id:int}"): page(*READERS),
    ("POST", "/devices/items/{device_id:int}/status"): Rule(IT, ok=422, form={}),
    ("POST", "/devices/items/{device_id:int}/edit"): Rule(IT, ok=422, form={}),
    ("POST", "/devices/catalog/{what:str}"): Rule(IT, ok=422, form={}),
    ("POST", "/devices/lines/{line_id:int}/sims"): Rule(IT, ok=422, form={}),
    ("POST", "/devices/items/{device_id:int}/lost"): Rule(IT, ok=422, form={}),
    ("GET", "/devices/lines"): page(*READERS),
    ("POST", "/devices/lines"): Rule(IT, ok=422, form={}),
    ("GET", "/devices/lines/{line_id:int}"): page(*READERS),
    ("GET", "/devices/sims/{sim_id:int}"): page(*READERS),
    ("POST", "/devices/sims/{sim_id:int}/reveal"): Rule(("it_admin",), ok=422, form={}),
    ("GET", "/devices/loans"): page(*LOAN_PAGES),
    ("GET", "/devices/loans/new"): page(*IT),
    ("POST", "/devices/loans/new"): Rule(IT, ok=422, form={}),
    ("GET", "/devices/loans/{loan_id:int}"): page(*READERS, "employee", denied=404),
    ("POST", "/devices/loans/{loan_id:int}/return"): Rule(IT, ok=422, form={"condition-1": "shiny"}),
    ("GET", "/devices/requests"): page(*IT),
    ("POST", "/devices/requests/{request_id:int}/answer"): Rule(IT, ok=422, form={}),
    ("GET", "/devices/incidents"): page(*READERS),
    ("POST", "/devices/incidents/{incident_id:int}/{step:str}"): Rule(IT, ok=404, form={}),
    ("GET", "/devices/stocktakes"): page(*READERS),
    ("POST", "/devices/stocktakes"): Rule(IT, ok=422, form={}),
    ("GET", "/devices/stocktakes/{stocktake_id:int}"): page(*READERS),
    ("POST", "/devices/stocktakes/{stocktake_id:int}/scans"): Rule(IT, ok=422, form={}),
    ("POST", "/devices/stocktakes/{stocktake_id:int}/close"): Rule(
        IT, ok=303, form={}, overrides={"sysadmin": 409}
    ),
    ("GET", "/devices/reports"): page(*READERS),
    ("GET", "/devices/import"): page(*IT),
    ("POST", "/devices/import/{kind:str}"): Rule(IT, ok=400, form={}),
    ("GET", "/devices/labels"): page(*READERS),
    ("GET", "/devices/tag/{tag:str}"): page(*READERS, ok=303),
}


async def samples(db: Any) -> dict[str, str]:
    """A device, line, SIM and open request; a loan to the demo employee; a stocktake. Made per test."""
    from sqlalchemy import select

    from auth.models import User
    from devices import loans, reports, schemas, services
    from devices.checks import SecretBox
    from tests.devices.helpers import EMPLOYEE, device, iccid, line, principal
    from tests.devices.helpers import IT as IT_LOGIN

    it = await principal(db, IT_LOGIN)
    emp = await principal(db, EMPLOYEE)
    pc = await device(db, it, 9001)
    lent = await device(db, it, 9002)
    ln = await line(db, it, 9001)
    sim = await services.create_sim(
        db, it, SecretBox("sample"), schemas.SimIn(iccid=iccid(9001), line_id=ln.id, pin="1234")
    )
    loan = await loans.checkout(db, it, schemas.LoanIn(holder_id=emp.id, device_ids=[lent.id]))
    request = await loans.create_request(db, emp, schemas.RequestIn(kinds=["laptop"]))
    take = await reports.open_stocktake(db, it, schemas.StocktakeIn(name="sample"))
    await db.commit()
    assert (await db.execute(select(User.id).where(User.id == emp.id))).scalar_one()
    return {
        "{device_id:int}": str(pc.id),
        "{line_id:int}": str(ln.id),
        "{sim_id:int}": str(sim.id),
        "{loan_id:int}": str(loan.id),
        "{request_id:int}": str(request.id),
        "{incident_id:int}": "999999",
        "{stocktake_id:int}": str(take.id),
        "{kind:str}": "devices",
        "{step:str}": "close",
        "{what:str}": "carriers",
        "{tag:str}": pc.asset_tag,
    }
