"""An enterprise of a community, placed in the zone that holds its location."""
from __future__ import annotations

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base
from gridsvc.models.community import Community, Zone


class Enterprise(Audited, Base):
    __tablename__ = "enterprise"
    __table_args__ = (CheckConstraint("workers >= 0", name="workers"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    # Derived by point-in-polygon; recomputed whenever the zones change.
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    workers: Mapped[int] = mapped_column(Integer, server_default="0")

    community: Mapped[Community] = relationship(back_populates="enterprises")
    zone: Mapped[Zone | None] = relationship()
