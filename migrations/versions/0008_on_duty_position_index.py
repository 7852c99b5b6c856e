"""A partial GiST index on the positions of volunteers on duty, for dispatch's KNN search.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_volunteer_last_position_on_duty ON volunteer USING gist (last_position) "
               "WHERE on_duty_shift_id IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX ix_volunteer_last_position_on_duty")
