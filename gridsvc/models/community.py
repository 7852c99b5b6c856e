"""A community (park, market or town) and the grid zones that tile it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Base, Timestamped

if TYPE_CHECKING:
    from gridsvc.models.enterprise import Enterprise

COMMUNITY_KINDS = ("industrial_park", "market", "town")

# Polygon or MultiPolygon, enforced by the database as well as the API.
POLYGONAL = "ST_GeometryType({col}) IN ('ST_Polygon', 'ST_MultiPolygon')"


class Community(Timestamped, Base):
    __tablename__ = "community"
    __table_args__ = (
        CheckConstraint(f"kind IN {COMMUNITY_KINDS!r}", name="kind"),
        CheckConstraint(POLYGONAL.format(col="boundary"), name="boundary_polygonal"),
        CheckConstraint("enterprise_count >= 0", name="enterprise_count"),
        CheckConstraint("worker_count >= 0", name="worker_count"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    boundary: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
    enterprise_count: Mapped[int | None] = mapped_column(Integer)
    worker_count: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), server_default="Asia/Shanghai")

    zones: Mapped[list[Zone]] = relationship(back_populates="community", passive_deletes=True, order_by="Zone.code")
    enterprises: Mapped[list[Enterprise]] = relationship(back_populates="community", passive_deletes=True)


class Zone(Timestamped, Base):
    """One grid (网格) of a community, answerable to one liaison."""

    __tablename__ = "zone"
    __table_args__ = (
        UniqueConstraint("community_id", "code"),
        CheckConstraint(POLYGONAL.format(col="geom"), name="geom_polygonal"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    liaison: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))

    community: Mapped[Community] = relationship(back_populates="zones")
