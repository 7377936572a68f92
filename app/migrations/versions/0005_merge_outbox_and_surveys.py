"""merge outbox and surveys

0003 (outbox) and 0004 (surveys) were written side by side on 0002. A merge rather than re-parenting
0004 keeps databases already at 0004 correct: upgrading them applies 0003 and records both.

Revision ID: 0005
Revises: 0003, 0004
Create Date: 2026-11-27
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = ('0003', '0004')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
