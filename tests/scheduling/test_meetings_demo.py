"""The demo organisation gets a weekly unit meeting and a one-off meeting with an outside guest."""

from __future__ import annotations

from sqlalchemy import select

from scheduling.config import TeleworkConfig
from scheduling.demo import seed_if_empty
from scheduling.models import Meeting


async def test_demo_meetings_show_in_the_employees_list(db, make_client):
    await seed_if_empty(db, TeleworkConfig(), "http://hub.example.lg.jp")
    rows = list((await db.execute(select(Meeting).order_by(Meeting.id))).scalars())
    assert [m.rrule for m in rows] == ["FREQ=WEEKLY;COUNT=12", ""]
    assert all(m.uid.endswith("@hub.example.lg.jp") for m in rows)
    employee = await make_client("employee")
    listed = (await employee.get("/api/meetings")).json()
    titles = {i["title"] for i in listed["items"]}
    assert titles == {"行政改革課 週次定例", "在宅勤務要領の見直し 打ち合わせ"}
    one = (await employee.get(f"/api/meetings/{rows[1].id}")).json()
    assert "advisor@example.com" in [a["email"] for a in one["attendees"]]
