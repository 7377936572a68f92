"""Every SQLModel table, imported in one place so Alembic and the drift test see the whole schema."""

from sqlmodel import SQLModel

import app.audit
import app.mail  # noqa: F401
import auth.models  # noqa: F401
import devices.models  # noqa: F401
import rtc.models  # noqa: F401
import scheduling.models  # noqa: F401
import surveys.models  # noqa: F401

metadata = SQLModel.metadata
