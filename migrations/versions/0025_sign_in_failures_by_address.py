"""Failed sign-ins record the client's address, which has its own throttle.

The throttle counted failures per username only: one client could try a
common password on every account, and five wrong passwords a minute kept
any account locked for as long as someone cared to send them. Now each
failure keeps the client's address (an IPv6 client's /64), and too many
failures from one address within a window answer 429 before the guess
counts.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("login_failure", sa.Column("address", sa.String(length=64), nullable=True))
    op.create_index("ix_login_failure_address_at", "login_failure", ["address", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_failure_address_at", table_name="login_failure")
    op.drop_column("login_failure", "address")
