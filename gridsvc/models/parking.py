"""Parking inventory (停车场 / 车位) as geometries, and occupancy observations."""
from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, Computed, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base

if TYPE_CHECKING:
    from gridsvc.models.community import Zone
    from gridsvc.models.enterprise import Enterprise

PARKING_ACCESS = ("public", "employees", "customers", "private")
PARKING_KINDS = ("surface", "multi-storey", "underground", "street_side")
SPACE_TYPES = ("car", "accessible", "ev_charging", "truck", "ebike")
# Spaces a commuter's car can use: what the supply/demand gap counts.
CAR_USABLE = ("car", "accessible", "ev_charging")
SPACE_STATUSES = ("free", "occupied", "reserved", "out_of_service")


class ParkingLot(Audited, Base):
    __tablename__ = "parking_lot"
    __table_args__ = (
        CheckConstraint(f"access IN {PARKING_ACCESS!r}", name="access"),
        CheckConstraint(f"kind IN {PARKING_KINDS!r}", name="kind"),
        CheckConstraint("ST_GeometryType(geom) IN ('ST_Point', 'ST_Polygon', 'ST_MultiPolygon')", name="geom_type"),
        CheckConstraint("capacity_car >= 0 AND capacity_accessible >= 0 AND capacity_ev_charging >= 0 "
                        "AND capacity_truck >= 0 AND capacity_ebike >= 0", name="capacity"),
        UniqueConstraint("community_id", "ref"),
        Index("ix_parking_lot_geom", "geom", postgresql_using="gist"),
        Index("ix_parking_lot_geom_3857", "geom_3857", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    # Derived: the zone holding most of the lot's area (or its point).
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id", ondelete="SET NULL"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id", ondelete="SET NULL"), index=True)
    ref: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    operator: Mapped[str | None] = mapped_column(String(200))
    access: Mapped[str] = mapped_column(String(12), server_default="public")
    kind: Mapped[str] = mapped_column(String(14), server_default="surface")
    capacity_car: Mapped[int] = mapped_column(Integer, server_default="0")
    capacity_accessible: Mapped[int] = mapped_column(Integer, server_default="0")
    capacity_ev_charging: Mapped[int] = mapped_column(Integer, server_default="0")
    capacity_truck: Mapped[int] = mapped_column(Integer, server_default="0")
    capacity_ebike: Mapped[int] = mapped_column(Integer, server_default="0")
    opening_hours: Mapped[str | None] = mapped_column(String(200))
    fee: Mapped[str | None] = mapped_column(String(100))
    opened_on: Mapped[date | None] = mapped_column(Date)  # NULL: in use since before records began
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False))
    # How many spaces the lot has on record and how many of them are occupied
    # or reserved: kept by statement-level triggers on parking_space
    # (migrations 0010, 0012), exact and transactional like the spaces, so
    # maps and tiles read a lot's fill with the lot instead of counting spaces.
    spaces_on_record: Mapped[int] = mapped_column(Integer, server_default="0")
    spaces_occupied: Mapped[int] = mapped_column(Integer, server_default="0")
    # The lot's latest occupancy observation (by observed_at), kept by
    # triggers on occupancy_observation (migration 0013), for the same readers.
    observed_occupied: Mapped[int | None] = mapped_column(Integer)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Kept by PostgreSQL, for vector tiles (migration 0011); never loaded unless asked for.
    geom_3857: Mapped[WKBElement] = mapped_column(
        Geometry("GEOMETRY", srid=3857, spatial_index=False), Computed("ST_Transform(geom, 3857)", persisted=True),
        deferred=True)

    zone: Mapped[Zone | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()

    @property
    def capacity(self) -> dict[str, int]:
        return {t: getattr(self, f"capacity_{t}") for t in SPACE_TYPES}

    @property
    def capacity_total(self) -> int:
        return sum(self.capacity.values())


class ParkingSpace(Audited, Base):
    """One stall; inside a lot it carries the lot's live status, alone it adds to supply."""

    __tablename__ = "parking_space"
    __table_args__ = (
        CheckConstraint(f"space_type IN {SPACE_TYPES!r}", name="space_type"),
        CheckConstraint(f"status IN {SPACE_STATUSES!r}", name="status"),
        CheckConstraint("ST_GeometryType(geom) IN ('ST_Point', 'ST_Polygon')", name="geom_type"),
        UniqueConstraint("community_id", "ref"),
        Index("ix_parking_space_geom", "geom", postgresql_using="gist"),
        Index("ix_parking_space_lot_id_status", "lot_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id", ondelete="SET NULL"), index=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("parking_lot.id", ondelete="CASCADE"))
    ref: Mapped[str | None] = mapped_column(String(64))
    space_type: Mapped[str] = mapped_column(String(12), server_default="car")
    status: Mapped[str] = mapped_column(String(16), server_default="free")
    status_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    opened_on: Mapped[date | None] = mapped_column(Date)
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False))


class OccupancyObservation(Base):
    """A count of vehicles in a lot at a moment (a counter, a warden's tally)."""

    __tablename__ = "occupancy_observation"
    __table_args__ = (
        CheckConstraint("occupied >= 0", name="occupied"),
        Index("ix_occupancy_observation_lot_id_observed_at", "lot_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("parking_lot.id", ondelete="CASCADE"))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    occupied: Mapped[int] = mapped_column(Integer)
    by_type: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

