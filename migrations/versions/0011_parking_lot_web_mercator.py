"""Parking lots' geometry in Web Mercator too, kept by PostgreSQL, for vector tiles.

A tile of a dense area carries hundreds of lots; transforming each from
WGS-84 on every tile was an eighth of the tile's time. The copy is a stored
generated column (it can never disagree with ``geom``) with its own GiST
index, so the tile's envelope needs no transforming either.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE parking_lot ADD COLUMN geom_3857 geometry(Geometry, 3857) "
               "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED")
    op.execute("CREATE INDEX ix_parking_lot_geom_3857 ON parking_lot USING gist (geom_3857)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_parking_lot_geom_3857")
    op.execute("ALTER TABLE parking_lot DROP COLUMN geom_3857")
