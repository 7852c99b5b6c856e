"""The liaisons' review queue (GET /api/v1/hours) reads pending hours oldest first.

Most entries are approved at once (both ends inside the geofence); the few
pending ones were found by reading every entry. A partial index holds only
those, in the queue's order.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_service_hours_pending_started_at", "service_hours", ["started_at"],
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("ix_service_hours_pending_started_at", table_name="service_hours")
