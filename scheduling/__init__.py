"""Time: telework policies, holidays, requests, approvals, reports, calendars, meetings, the indicator."""
