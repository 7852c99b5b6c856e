"""An enterprise of a community, placed in the zone that holds its location."""
from __future__ import annotations

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base
from gridsvc.models.community import Community, Zone


class Enterprise(Audited, Base):
    __tablename__ = "enterprise"
    __table_args__ = (
        CheckConstraint("workers >= 0", name="workers"),
        CheckConstraint("car_commuter_share IS NULL OR (car_commuter_share >= 0 AND car_commuter_share <= 1)",
                        name="car_commuter_share"),
        CheckConstraint("parking_demand IS NULL OR parking_demand >= 0", name="parking_demand"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    # Derived by point-in-polygon; recomputed whenever the zones change.
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    workers: Mapped[int] = mapped_column(Integer, server_default="0")
    # Parking demand: an explicit figure, else workers x (this share, else the community's).
    car_commuter_share: Mapped[float | None] = mapped_column(Float)
    parking_demand: Mapped[int | None] = mapped_column(Integer)

    community: Mapped[Community] = relationship(back_populates="enterprises")
    zone: Mapped[Zone | None] = relationship()
