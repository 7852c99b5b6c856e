"""A skill can be retired: kept by whoever holds it, offered to nobody new.

A skill in use could not leave the managed list (DELETE is a 409 while a
volunteer, shift or service type holds it), so a skill the park stopped
asking for ("epidemic checks" after the campaign) stayed on every sign-up
form. A retired skill (``retired_at``) is left out of the list, and a
volunteer's skills or a shift's requirements may keep it but not take it up
anew; un-retiring it brings it back.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("skill", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("skill", "retired_at")
