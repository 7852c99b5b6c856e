"""A retried write answers as the first time: Idempotency-Key on every write.

The mobile app works on flaky networks: a sign-up whose answer was lost
came back as 409 "already confirmed" on the retry, a withdrawal as 404, a
position fix was recorded twice. Check-in and check-out had their own
keys (in check_event); now any signed-in write that sends an
Idempotency-Key header stores its first successful answer, and a retry
with the same key, method, path and body gets that answer again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotent_request",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_idempotent_request_user_id_app_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotent_request")),
    )
    op.create_index(op.f("ix_idempotent_request_created_at"), "idempotent_request", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotent_request")
