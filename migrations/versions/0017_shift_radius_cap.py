"""A point shift's radius is at most 5,000 m in the database too.

The API always refused more; the shift search near a point now relies on it
to find point shifts through their GiST index (a box of the search radius
plus the largest geofence radius), so the database keeps it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_shift_radius"), "shift", type_="check")
    op.create_check_constraint(op.f("ck_shift_radius"), "shift", "radius_m IS NULL OR (radius_m > 0 AND radius_m <= 5000)")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_shift_radius"), "shift", type_="check")
    op.create_check_constraint(op.f("ck_shift_radius"), "shift", "radius_m IS NULL OR radius_m > 0")
