"""What `scheduling` contributes to the app (routes, menu, templates, jobs); wired by `app.main`."""

from __future__ import annotations

from app.modules import Module

MODULE = Module(name="scheduling")
