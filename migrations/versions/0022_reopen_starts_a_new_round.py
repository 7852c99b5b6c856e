"""A reopened request is dispatched afresh, to who declined it before too.

Reopening reset the refusal count ("dispatched again from the start") but
whoever had declined or let an offer lapse stayed excluded for good: the
nearest volunteer, busy the first time and free now, was never asked again.
The request now remembers its last offer before the latest reopen; only
later offers exclude.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("service_request", sa.Column("last_offer_before_reopen_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("service_request", "last_offer_before_reopen_id")
