"""Time: telework policies, holidays, requests and approvals, reports, calendars, meetings, the KPI indicator."""
