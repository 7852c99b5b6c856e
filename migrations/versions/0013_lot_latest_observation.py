"""A lot's latest occupancy observation, kept on the lot's row by triggers on occupancy_observation.

Maps and tiles show a lot's latest fresh count; looking it up was an index
probe per lot (a dense tile holds ~800 lots), now it is read with the lot.
Only when the latest count is dated after the moment asked about (a clock
ahead, a count entered for later) do readers still search the history.

Locking as for the space tally (0012): each statement locks the lots it
changes in lot order, then recomputes their latest count from the table, so
the last of two concurrent writers always sees the other's rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The lots ({lots}) get their latest count again, from the table (none: NULL).
SET_LATEST = """
    UPDATE parking_lot AS l SET (observed_occupied, observed_at) = (
        SELECT ob.occupied, ob.observed_at FROM occupancy_observation ob
        WHERE ob.lot_id = l.id ORDER BY ob.observed_at DESC, ob.id DESC LIMIT 1)
    WHERE l.id IN ({lots})"""
REFRESH = "PERFORM FROM parking_lot WHERE id IN ({lots}) ORDER BY id FOR NO KEY UPDATE;" + SET_LATEST


def upgrade() -> None:
    op.add_column("parking_lot", sa.Column("observed_occupied", sa.Integer(), nullable=True))
    op.add_column("parking_lot", sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(SET_LATEST.format(lots="SELECT lot_id FROM occupancy_observation"))
    inserted = REFRESH.format(lots="SELECT lot_id FROM inserted")
    deleted = REFRESH.format(lots="SELECT lot_id FROM deleted")
    updated = REFRESH.format(lots="SELECT lot_id FROM old_rows UNION SELECT lot_id FROM new_rows")
    op.execute(f"""
        CREATE FUNCTION lot_observation_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {inserted}; RETURN NULL; END $$;
        CREATE FUNCTION lot_observation_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {deleted}; RETURN NULL; END $$;
        CREATE FUNCTION lot_observation_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {updated}; RETURN NULL; END $$;
        CREATE FUNCTION lot_observation_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE parking_lot SET observed_occupied = NULL, observed_at = NULL WHERE observed_at IS NOT NULL;
              RETURN NULL; END $$;
    """)
    op.execute("CREATE TRIGGER occupancy_observation_latest_insert AFTER INSERT ON occupancy_observation "
               "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION lot_observation_inserted()")
    op.execute("CREATE TRIGGER occupancy_observation_latest_delete AFTER DELETE ON occupancy_observation "
               "REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION lot_observation_deleted()")
    op.execute("CREATE TRIGGER occupancy_observation_latest_update AFTER UPDATE ON occupancy_observation "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION lot_observation_updated()")
    op.execute("CREATE TRIGGER occupancy_observation_latest_truncate AFTER TRUNCATE ON occupancy_observation "
               "FOR EACH STATEMENT EXECUTE FUNCTION lot_observation_truncated()")


def downgrade() -> None:
    for event in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER occupancy_observation_latest_{event} ON occupancy_observation")
    for name in ("inserted", "deleted", "updated", "truncated"):
        op.execute(f"DROP FUNCTION lot_observation_{name}()")
    op.drop_column("parking_lot", "observed_at")
    op.drop_column("parking_lot", "observed_occupied")
