"""A request can be withdrawn while open: a need that went away, or a duplicate.

A worker who solved their own problem, or who raised it twice, could not take
it back: a volunteer was still sent, and the request stayed open (and, unanswered
past its due time, counted against the zone's SLA) until someone resolved what
never needed resolving. The requester, the zone's liaison or an admin may now
withdraw it: status ``withdrawn``, closed at that moment; pending offers are
withdrawn and whoever held it is free for the next one.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-01
"""
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

BEFORE = ("offered", "assigned", "with_liaison", "escalated", "claimed", "in_progress", "resolved", "closed")
AFTER = BEFORE + ("withdrawn",)


def _statuses(statuses: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_service_request_status"), "service_request", type_="check")
    op.create_check_constraint(op.f("ck_service_request_status"), "service_request", f"status IN {statuses!r}")


def upgrade() -> None:
    _statuses(AFTER)


def downgrade() -> None:
    # a withdrawn request was closed without being resolved: closed is the nearest the old list has
    op.execute("UPDATE service_request SET status = 'closed' WHERE status = 'withdrawn'")
    _statuses(BEFORE)
