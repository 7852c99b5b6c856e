"""A community (park, market or town) and the grid zones that tile it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base

if TYPE_CHECKING:
    from gridsvc.models.enterprise import Enterprise
    from gridsvc.models.user import User

COMMUNITY_KINDS = ("industrial_park", "market", "town")

# Polygon or MultiPolygon, enforced by the database as well as the API.
POLYGONAL = "ST_GeometryType({col}) IN ('ST_Polygon', 'ST_MultiPolygon')"


class Community(Audited, Base):
    __tablename__ = "community"
    __table_args__ = (
        CheckConstraint(f"kind IN {COMMUNITY_KINDS!r}", name="kind"),
        CheckConstraint(POLYGONAL.format(col="boundary"), name="boundary_polygonal"),
        CheckConstraint("enterprise_count >= 0", name="enterprise_count"),
        CheckConstraint("worker_count >= 0", name="worker_count"),
        CheckConstraint("car_commuter_share >= 0 AND car_commuter_share <= 1", name="car_commuter_share"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    boundary: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
    enterprise_count: Mapped[int | None] = mapped_column(Integer)
    worker_count: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), server_default="Asia/Shanghai")
    # Share of workers who drive to work: parking demand = workers x share.
    car_commuter_share: Mapped[float] = mapped_column(Float, server_default="0.1")

    zones: Mapped[list[Zone]] = relationship(back_populates="community", passive_deletes=True, order_by="Zone.code")
    enterprises: Mapped[list[Enterprise]] = relationship(back_populates="community", passive_deletes=True)


class Zone(Audited, Base):
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
    # The person answerable for the zone: an account with the liaison role.
    liaison_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"), index=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))

    community: Mapped[Community] = relationship(back_populates="zones")
    liaison: Mapped[User | None] = relationship(foreign_keys=[liaison_id])
