"""A volunteer can hand back a request they took and cannot finish.

A volunteer who accepted a request and then could not do it (called away, the
wrong tools, the shift over) had no way to say so: the request stayed theirs,
its requester waiting, until a liaison noticed and reassigned it. They may now
hand it back: their accepted offer is marked ``returned`` (the trail keeps
that they took it), it counts as a refusal, and the request is dispatched again
to the next volunteer, not to them.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-01
"""
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

BEFORE = ("pending", "accepted", "declined", "expired", "withdrawn")
AFTER = BEFORE + ("returned",)


def _outcomes(outcomes: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_request_offer_outcome"), "request_offer", type_="check")
    op.create_check_constraint(op.f("ck_request_offer_outcome"), "request_offer", f"outcome IN {outcomes!r}")


def upgrade() -> None:
    _outcomes(AFTER)


def downgrade() -> None:
    # the nearest the old list has: they said no after all
    op.execute("UPDATE request_offer SET outcome = 'declined' WHERE outcome = 'returned'")
    _outcomes(BEFORE)
