"""Refresh tokens are rotated: each is exchanged once.

A refresh token stayed good for its whole 30 days however often it was
used, so a stolen one was never found out. Now an exchange records the
token's id; a second exchange of the same token (after a short grace for
a phone retrying a lost answer) revokes every token of the account
(RFC 9700, 4.14.2: refresh token rotation for public clients).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_token_use",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_refresh_token_use_user_id_app_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_refresh_token_use")),
    )
    op.create_index(op.f("ix_refresh_token_use_user_id"), "refresh_token_use", ["user_id"])
    op.create_index(op.f("ix_refresh_token_use_expires_at"), "refresh_token_use", ["expires_at"])


def downgrade() -> None:
    op.drop_table("refresh_token_use")
